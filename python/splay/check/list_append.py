"""Transactions over append-only lists (Maelstrom's txn-list-append; Elle's list-append checker).

An operation ``txn`` has as value a list of micro-operations ``["r", key, None]`` and
``["append", key, value]``; its ``ok`` completion carries the same list with every read filled in
(the list the key held). Appended values are unique per key. Because every read returns the
whole list, the reads reveal each key's *version order* (the order of its appends): the longest
read of a key, which every other read must be a prefix of.

From the version orders come the dependencies between committed transactions (Adya's):

* ``ww`` -- T1 appended the element just before T2's in a key's order;
* ``wr`` -- T2 read a list whose last element T1 appended;
* ``rw`` -- T1 read a list, and T2 appended the next element (T1 did not see it).

Anomalies (``valid`` when none is found):

* ``G0`` (write cycle: ww edges only), ``G1c`` (a cycle of ww and wr edges, at least one wr),
  ``G2`` (a cycle with at least one rw edge: not serializable) -- each instance names the
  transactions of the cycle and the edges between them, shortest cycle first;
* ``G1a`` (aborted read: a read holds an element a failed transaction appended),
  ``G1b`` (intermediate read: a read ends at an element its writer appended to the same key
  before another one);
* ``incompatible-order`` (two reads of a key that are not prefixes of one another),
  ``duplicate-elements`` (an element twice in one read), ``internal`` (a transaction's read
  after its own appends does not end with them), ``unexpected`` (an element nobody appended).

Transactions of unknown outcome (``info``) join the graph when one of their appends was read.
"""
from collections import deque

from .models import freeze
from .ops import HistoryError
from .result import INVALID, VALID, Result, counts_of, latency_table

CYCLE_LEVELS = (("G0", {"ww"}, "ww"), ("G1c", {"ww", "wr"}, "wr"), ("G2", {"ww", "wr", "rw"}, "rw"))
#: Edges of the needed kind tried per strongly connected component when looking for a cycle.
MAX_EDGES_TRIED = 200


def _micro_ops(op):
    mops = op.result if op.status == "ok" else op.value
    if not isinstance(mops, (list, tuple)):
        raise HistoryError(f"operation {op.id} ({op.describe()}): a txn's value is a list of "
                           f"[f, key, value] micro-operations")
    out = []
    for mop in mops:
        if not isinstance(mop, (list, tuple)) or len(mop) != 3 or mop[0] not in ("r", "append"):
            raise HistoryError(f"operation {op.id}: micro-operations are [\"r\", key, list] or "
                               f"[\"append\", key, value], not {mop!r}")
        out.append((mop[0], freeze(mop[1]), mop[2]))
    return out


def describe_txn(op):
    """``T12 (process 0.1 ok): r(x)=[1,2] append(y,5)``."""
    parts = []
    mops = op.result if op.status == "ok" and isinstance(op.result, (list, tuple)) else op.value
    for f, key, value in mops:
        if f == "r":
            parts.append(f"r({key})" + ("" if value is None else "=" + _short_list(value)))
        else:
            parts.append(f"append({key},{value})")
    return f"T{op.id} (process {op.process} {op.status}): " + " ".join(parts)


def _short_list(values, keep=4):
    """``[1,2,3]``, or ``[...12 more,13,14,15,16]`` for a long list (its end is what matters)."""
    values = list(values)
    if len(values) <= keep + 1:
        return "[" + ",".join(map(str, values)) + "]"
    return f"[...{len(values) - keep} more," + ",".join(map(str, values[-keep:])) + "]"


def check(ops, model_name="list-append"):
    """Check a list-append transaction history (``ops`` from :func:`splay.check.ops.load`)."""
    anomalies = {}

    def found(name, item):
        anomalies.setdefault(name, []).append(item)

    txns, writer, failed, intermediate, reads = [], {}, {}, {}, []
    for op in ops:
        if op.f != "txn":
            raise HistoryError(f"operation {op.id} ({op.describe()}): a list-append history has "
                               f"txn operations, not {op.f!r}")
        mops = _micro_ops(op)
        txns.append(op)
        own = {}                                   # key -> values this txn appended so far
        for f, key, value in mops:
            if f == "append":
                element = (key, freeze(value))
                if op.status == "fail":
                    failed[element] = op
                elif element in writer and writer[element] is not op:
                    found("duplicate-appends", {"key": key, "value": value,
                                                "ops": [writer[element].id, op.id]})
                else:
                    writer[element] = op
                own.setdefault(key, []).append(freeze(value))
            elif op.status == "ok" and value is not None:
                if not isinstance(value, (list, tuple)):
                    raise HistoryError(f"operation {op.id}: a read's value is a list, not {value!r}")
                seen = [freeze(v) for v in value]
                mine = own.get(key, [])
                if mine and seen[-len(mine):] != mine:
                    found("internal", {"op": op.id, "key": key, "read": list(value),
                                       "own appends": mine})
                reads.append((op, key, seen, len(seen) - len(mine)))
        if op.status != "fail":
            for key, values in own.items():
                for value in values[:-1]:
                    intermediate[(key, value)] = op

    # Version orders: per key, the longest read; every read must be a prefix of it.
    order = {}
    for op, key, seen, _ in reads:
        if len(set(seen)) != len(seen):
            found("duplicate-elements", {"op": op.id, "key": key, "read": seen})
        if len(seen) > len(order.get(key, ())):
            order[key] = seen
    for op, key, seen, _ in reads:
        longest = order[key]
        if longest[:len(seen)] != seen:
            found("incompatible-order", {"key": key, "op": op.id, "read": seen,
                                         "longest read": longest})
    for op, key, seen, _ in reads:
        for value in seen:
            if (key, value) in failed:
                found("G1a", {"op": op.id, "key": key, "value": value,
                              "aborted writer": failed[(key, value)].id,
                              "reader": describe_txn(op)})
            elif (key, value) not in writer:
                found("unexpected", {"op": op.id, "key": key, "value": value})
        if seen and (key, seen[-1]) in intermediate and intermediate[(key, seen[-1])] is not op:
            found("G1b", {"op": op.id, "key": key, "value": seen[-1],
                          "writer": intermediate[(key, seen[-1])].id, "reader": describe_txn(op)})

    # The dependency graph over the transactions that count.
    edges = {}                                     # a -> {b: {(kind, key)}}

    def edge(a, b, kind, key):
        if a is not b:
            edges.setdefault(a.id, {}).setdefault(b.id, set()).add((kind, key))

    for key, versions in order.items():
        writers = [writer.get((key, v)) for v in versions]
        for a, b in zip(writers, writers[1:]):
            if a is not None and b is not None:
                edge(a, b, "ww", key)
    for op, key, seen, before_own in reads:
        # The read's view before this txn's own appends decides its dependencies.
        seen = seen[:before_own]
        if seen and (key, seen[-1]) in writer:
            edge(writer[(key, seen[-1])], op, "wr", key)
        versions = order.get(key, [])
        if len(versions) > len(seen) and (key, versions[len(seen)]) in writer:
            edge(op, writer[(key, versions[len(seen)])], "rw", key)

    by_id = {op.id: op for op in txns}
    covered = set()
    counterexample = None
    for name, kinds, needed in CYCLE_LEVELS:
        for component in _components(edges, kinds):
            if component <= covered:
                continue                      # already explained by a stronger anomaly
            cycle = _shortest_cycle(edges, component, kinds, needed)
            if cycle is None:
                continue
            covered |= component
            item = _cycle_item(cycle, by_id)
            found(name, item)
            if counterexample is None:
                counterexample = {
                    "ops": [by_id[i].to_dict() for i in dict.fromkeys(i for i, _ in cycle)],
                    "order": [i for i, _ in cycle], "blocked": None,
                    "explanation": [f"{name}: a cycle of {len(cycle)} transactions"]
                    + item["transactions"] + ["edges: " + item["cycle"]]}
    result = Result(model_name, INVALID if anomalies else VALID, counts_of(ops), latency_table(ops), anomalies=anomalies,
                    counterexample=counterexample, ops=list(ops),
                    details={"committed transactions": sum(op.status == "ok" for op in txns),
                             "keys": len(order),
                             "dependency edges": sum(len(v) for v in edges.values())})
    return result


def _components(edges, kinds):
    """Strongly connected components (of two or more transactions) of the graph restricted to
    edges of ``kinds`` (Tarjan's algorithm, iterative)."""
    graph = {a: [b for b, labels in out.items() if any(k in kinds for k, _ in labels)]
             for a, out in edges.items()}
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _shortest_cycle(edges, component, kinds, needed):
    """The shortest cycle inside ``component`` using edges of ``kinds`` and at least one of kind
    ``needed``: ``[(txn id, label of the edge to the next), ...]``, or None."""
    def labels(a, b):
        return sorted(label for label in edges.get(a, {}).get(b, ()) if label[0] in kinds)

    best = None
    tried = 0
    for a in sorted(component):
        for b, all_labels in sorted(edges.get(a, {}).items()):
            if b not in component or not any(k == needed for k, _ in all_labels):
                continue
            tried += 1
            if tried > MAX_EDGES_TRIED:
                return best
            path = _path(edges, component, kinds, b, a)
            if path is not None and (best is None or len(path) + 1 < len(best)):
                first = next(label for label in sorted(all_labels) if label[0] == needed)
                cycle = [(a, first)]
                for x, y in zip(path, path[1:]):
                    cycle.append((x, labels(x, y)[0]))
                best = cycle
    return best


def _path(edges, component, kinds, start, goal):
    """The shortest path of transaction ids from ``start`` to ``goal`` within ``component``."""
    previous = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = previous[node]
            return path[::-1]
        for nxt, labels in sorted(edges.get(node, {}).items()):
            if nxt in component and nxt not in previous and any(k in kinds for k, _ in labels):
                previous[nxt] = node
                queue.append(nxt)
    return None


def _cycle_item(cycle, by_id):
    text = " ".join(f"T{a} -{kind}({key})->" for a, (kind, key) in cycle) + f" T{cycle[0][0]}"
    return {"cycle": text, "ops": [a for a, _ in cycle],
            "transactions": [describe_txn(by_id[a]) for a, _ in cycle]}

"""The workloads: what the clients ask of the nodes, how each answer becomes a history record,
and which checker judges the history. Each is Maelstrom's workload of the same name.

========== ======================================== ======================================
workload   operations (request bodies)              checker (``splay check`` model)
========== ======================================== ======================================
echo       echo {echo}                              echo: every answer echoes its request
unique-ids generate                                 unique-ids: no id given twice
broadcast  topology once; broadcast {message}; read broadcast: every acknowledged message
                                                    read by every node at the end
g-counter  add {delta >= 0}; read                   g-counter: reads within the adds' bounds
pn-counter add {delta}; read                        pn-counter
lin-kv     read/write/cas {key, value, from, to}    lin-kv: linearizable, key by key
kafka      send {key, msg}; poll {offsets};         kafka: offsets unique, no lost send,
           commit_offsets; list_committed_offsets   one order per key
txn-list-  txn {txn: [["r", k, null],               list-append: no G0, G1a, G1b, G1c, G2
append     ["append", k, v], ...]}                  (Elle's anomalies), orders compatible
========== ======================================== ======================================
"""
import random

from .messages import definite


class Workload:
    """The common part: an error reply completes the operation as ``fail`` when its code is
    definite, else ``info``; a missing reply (timeout) as ``info``."""
    name = model = None
    final_read = False           # a read by every client once the faults are over

    def __init__(self, options):
        self.options = options

    def setup(self, node_id, node_ids):
        """Request bodies each client sends its node before the operations (answers unused)."""
        return []

    def operation(self, rng, client_index, seq):
        """``(f, value, request body)`` of the next operation."""
        raise LookupError(self.name)    # every workload below defines it

    def final(self):
        """``(f, value, request body)`` of the final read."""
        return "read", None, {"type": "read"}

    def outcome(self, f, value, reply):
        """``(type, value or error)`` of a completed operation from the reply body."""
        if reply.get("type") == "error":
            code = reply.get("code")
            kind = "fail" if definite(code) else "info"
            return kind, f"error {code}: {reply.get('text', '')}"
        return "ok", self.result(f, value, reply)

    def result(self, f, value, reply):
        return value


class Echo(Workload):
    name = model = "echo"

    def operation(self, rng, client_index, seq):
        text = f"please echo {client_index}.{seq} {rng.randrange(10**6)}"
        return "echo", text, {"type": "echo", "echo": text}

    def result(self, f, value, reply):
        return reply.get("echo")


class UniqueIds(Workload):
    name = model = "unique-ids"

    def operation(self, rng, client_index, seq):
        return "generate", None, {"type": "generate"}

    def result(self, f, value, reply):
        return reply.get("id")


def topology(shape, node_ids):
    """Neighbours of each node: ``grid`` (Maelstrom's default), ``line``, ``tree4`` or ``total``."""
    n = len(node_ids)
    if shape == "total":
        return {a: [b for b in node_ids if b != a] for a in node_ids}
    if shape == "line":
        return {a: [node_ids[j] for j in (i - 1, i + 1) if 0 <= j < n] for i, a in enumerate(node_ids)}
    if shape == "tree4":
        out = {a: [] for a in node_ids}
        for i in range(1, n):
            parent = (i - 1) // 4
            out[node_ids[i]].append(node_ids[parent])
            out[node_ids[parent]].append(node_ids[i])
        return out
    if shape == "grid":
        side = max(1, int(round(n ** 0.5)))
        out = {}
        for i, a in enumerate(node_ids):
            row, col = divmod(i, side)
            near = []
            for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)):
                j = r * side + c
                if 0 <= c < side and 0 <= j < n and r >= 0:
                    near.append(node_ids[j])
            out[a] = near
        return out
    raise ValueError(f"unknown topology shape {shape!r}: use grid, line, tree4 or total")


class Broadcast(Workload):
    name = model = "broadcast"
    final_read = True

    def setup(self, node_id, node_ids):
        return [{"type": "topology",
                 "topology": topology(self.options.get("topology", "grid"), node_ids)}]

    def operation(self, rng, client_index, seq):
        if rng.random() < 0.5:
            message = client_index * 1_000_000 + seq
            return "broadcast", message, {"type": "broadcast", "message": message}
        return "read", None, {"type": "read"}

    def result(self, f, value, reply):
        return sorted(reply.get("messages", [])) if f == "read" else value


class GCounter(Workload):
    name = model = "g-counter"
    final_read = True
    low = 0

    def operation(self, rng, client_index, seq):
        if rng.random() < 0.5:
            delta = rng.randint(self.low, 5)
            return "add", delta, {"type": "add", "delta": delta}
        return "read", None, {"type": "read"}

    def result(self, f, value, reply):
        return reply.get("value") if f == "read" else value


class PNCounter(GCounter):
    name = model = "pn-counter"
    low = -5


class LinKV(Workload):
    name = model = "lin-kv"

    def operation(self, rng, client_index, seq):
        key = rng.randrange(int(self.options.get("keys", 3)))
        kind = rng.choice(("read", "write", "cas"))
        if kind == "read":
            return "read", {"key": key}, {"type": "read", "key": key}
        if kind == "write":
            value = rng.randrange(5)
            return "write", {"key": key, "value": value}, {"type": "write", "key": key, "value": value}
        old, new = rng.randrange(5), rng.randrange(5)
        return "cas", {"key": key, "from": old, "to": new}, \
            {"type": "cas", "key": key, "from": old, "to": new}

    def outcome(self, f, value, reply):
        if f == "read" and reply.get("type") == "error" and reply.get("code") == 20:
            return "ok", {"key": value["key"], "value": None}    # a missing key reads as empty
        return super().outcome(f, value, reply)

    def result(self, f, value, reply):
        if f == "read":
            return {"key": value["key"], "value": reply.get("value")}
        return value


class Kafka(Workload):
    """Maelstrom's kafka: ``send`` a message to a key's log, ``poll`` each key from the offset
    after the last one this client saw, ``commit_offsets`` of what it saw,
    ``list_committed_offsets``; at the end every client polls every key from offset 0."""
    name = "kafka"
    model = "kafka"
    final_read = True

    def __init__(self, options):
        super().__init__(options)
        self.keys = [str(k) for k in range(int(options.get("keys", 3)))]
        self.next_offset = {}             # key -> the offset this client polls from

    def operation(self, rng, client_index, seq):
        draw = rng.random()
        if draw < 0.5:
            key, msg = rng.choice(self.keys), client_index * 1_000_000 + seq
            return "send", [key, msg], {"type": "send", "key": key, "msg": msg}
        if draw < 0.85:
            offsets = {key: self.next_offset.get(key, 0) for key in self.keys}
            return "poll", offsets, {"type": "poll", "offsets": offsets}
        if draw < 0.95:
            offsets = {key: offset - 1 for key, offset in self.next_offset.items() if offset}
            return "commit_offsets", offsets, {"type": "commit_offsets", "offsets": offsets}
        return "list_committed_offsets", self.keys, \
            {"type": "list_committed_offsets", "keys": self.keys}

    def final(self):
        offsets = {key: 0 for key in self.keys}
        return "poll", offsets, {"type": "poll", "offsets": offsets}

    def result(self, f, value, reply):
        if f == "send":
            return reply.get("offset")
        if f == "poll":
            msgs = reply.get("msgs") or {}
            for key, pairs in msgs.items():
                if pairs and isinstance(pairs[-1], list) and isinstance(pairs[-1][0], int):
                    self.next_offset[key] = max(self.next_offset.get(key, 0), pairs[-1][0] + 1)
            return msgs
        if f == "list_committed_offsets":
            return reply.get("offsets") or {}
        return value


class TxnListAppend(Workload):
    """Maelstrom's txn-list-append: transactions of 1 to ``max_txn_length`` (4) micro-ops
    ``["r", key, None]`` and ``["append", key, value]`` over ``keys`` keys; the ok value is the
    transaction as the node completed it (reads filled in). Values appended are unique."""
    name = "txn-list-append"
    model = "list-append"

    def operation(self, rng, client_index, seq):
        keys = int(self.options.get("keys", 3))
        txn = []
        for index in range(rng.randint(1, int(self.options.get("max_txn_length", 4)))):
            key = rng.randrange(keys)
            if rng.random() < 0.5:
                txn.append(["r", key, None])
            else:
                txn.append(["append", key, (client_index * 1_000_000 + seq) * 10 + index])
        return "txn", txn, {"type": "txn", "txn": txn}

    def result(self, f, value, reply):
        return reply.get("txn")


WORKLOADS = {w.name: w for w in (Echo, UniqueIds, Broadcast, GCounter, PNCounter, LinKV, Kafka,
                                 TxnListAppend)}


def get(name, options=None):
    """The workload called ``name``; ValueError names the known ones."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown Maelstrom workload {name!r}: use one of "
                         f"{', '.join(sorted(WORKLOADS))}")
    return WORKLOADS[name](options or {})


def rng_for(seed, index):
    """The random generator of client ``index`` (reproducible from ``seed``)."""
    return random.Random(f"{seed}/{index}")

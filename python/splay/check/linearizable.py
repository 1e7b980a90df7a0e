"""Linearizability: is there one order of the operations, each taking effect at an instant between
its invocation and its completion, that the sequential model accepts?

The search is Wing and Gong's, with Lowe's memoisation (as in Porcupine and Knossos' "wgl"):
walk the invocations and completions in time order; at an invocation, try to make that operation
take effect now (the model must accept it) and start again from the first entry; at a
completion whose operation has not taken effect yet, this order cannot work: undo the last
choice. A set of ``(operations done, model state)`` pairs already explored cuts repeated work.

Unknown outcomes (``info``) complete at infinity and may take effect or not; ``fail`` operations
never happened and are left out. A key-value history is checked key by key.

When a history is not linearizable the answer carries a counterexample: the operations of the
failing key invoked before the blocked completion, reduced while they stay non-linearizable
(each removal checked), with the longest order the search found and the operation that no order
could place.
"""
import math
import time

from . import models as M
from .ops import Op
from .result import INVALID, UNKNOWN, VALID, Result, counts_of, latency_table

DEFAULT_MAX_STEPS = 5_000_000


class _Search:
    """One search over one register history; ``run()`` returns VALID, INVALID or UNKNOWN."""

    def __init__(self, model, ops, max_steps):
        self.model = model
        self.ops = ops
        self.max_steps = max_steps
        self.steps = 0
        self.deepest = None       # (depth, linearized op indexes, blocked op index, state)

    def run(self):
        ops = self.ops
        n = len(ops)
        if n == 0:
            return VALID
        # Entries 1..2n: (time, 0 for call / 1 for return, op) -- calls first at equal times,
        # which lets operations that touch in time overlap (the permissive reading).
        events = sorted([(op.call, 0, i) for i, op in enumerate(ops)] +
                        [(op.ret, 1, i) for i, op in enumerate(ops)])
        size = 2 * n + 1
        nxt = [0] * size
        prv = [0] * size
        is_call = [False] * size
        op_of = [0] * size
        call_entry = [0] * n
        ret_entry = [0] * n
        for k, (_, kind, i) in enumerate(events, 1):
            is_call[k] = kind == 0
            op_of[k] = i
            if kind == 0:
                call_entry[i] = k
            else:
                ret_entry[i] = k
        for k in range(size):
            nxt[k] = k + 1 if k + 1 < size else -1
            prv[k] = k - 1
        required = [op.status == "ok" for op in ops]
        remaining = sum(required)

        step = self.model.step
        state = self.model.init()
        done = 0              # bitset of operations that took effect
        cache = set()
        stack = []            # (call entry, state before, done before)
        entry = nxt[0]
        steps = 0
        max_steps = self.max_steps

        while True:
            if remaining == 0:
                self.steps = steps
                return VALID
            steps += 1
            if steps > max_steps:
                self.steps = steps
                return UNKNOWN
            if entry != -1 and is_call[entry]:
                i = op_of[entry]
                possible, new_state = step(state, ops[i])
                if possible:
                    new_done = done | (1 << i)
                    memo = (new_done, new_state)
                    if memo not in cache:
                        cache.add(memo)
                        stack.append((entry, state, done))
                        state, done = new_state, new_done
                        if required[i]:
                            remaining -= 1
                        # lift the operation out of the list: its call and its return
                        r = ret_entry[i]
                        nxt[prv[entry]] = nxt[entry]
                        if nxt[entry] != -1:
                            prv[nxt[entry]] = prv[entry]
                        nxt[prv[r]] = nxt[r]
                        if nxt[r] != -1:
                            prv[nxt[r]] = prv[r]
                        entry = nxt[0]
                        continue
                entry = nxt[entry]
                continue
            if entry != -1 and not required[op_of[entry]]:
                entry = nxt[entry]       # an unknown outcome need not take effect
                continue
            # A completion whose operation has not taken effect (or the end): back up.
            if entry != -1 and (self.deepest is None or len(stack) > self.deepest[0]):
                self.deepest = (len(stack), [op_of[e] for e, _, _ in stack], op_of[entry], state)
            if not stack:
                self.steps = steps
                return INVALID
            entry, state, done = stack.pop()
            i = op_of[entry]
            if required[i]:
                remaining += 1
            r = ret_entry[i]         # put the operation back, return first (reverse of lifting)
            nxt[prv[r]] = r
            if nxt[r] != -1:
                prv[nxt[r]] = r
            nxt[prv[entry]] = entry
            if nxt[entry] != -1:
                prv[nxt[entry]] = entry
            entry = nxt[entry]


def _register_ops(model, ops):
    """The operations that matter to a register search: failed ones never happened, and an
    operation of unknown outcome that writes a value nobody reads (nor expects in a cas) may be
    taken as never having happened -- any order that includes it stays valid without it, since
    nothing between it and the next change observes its value."""
    for op in ops:
        model.check_op(op)
    observed = {M.freeze(op.result) for op in ops if op.f == "read" and op.status == "ok"}
    observed |= {M.freeze(op.value[0]) for op in ops if op.f == "cas" and op.status != "fail"}
    kept = []
    for op in ops:
        if op.status == "fail" or not model.constrains(op):
            continue
        if op.status == "info" and op.f != "read":
            written = op.value if op.f == "write" else op.value[1]
            if M.freeze(written) not in observed:
                continue
        kept.append(op)
    return kept


def _by_key(ops):
    """Per-key register operations of a key-value history (ids are kept: they name the op)."""
    keys = {}
    for op in ops:
        key, arg, result = M.kv_key_and_op(op)
        keys.setdefault(key, []).append(
            Op(op.id, op.process, op.f, arg, result, op.status, op.call, op.ret, op.node,
               op.error, {"key": key}))
    return keys


def _search(model, ops, max_steps):
    s = _Search(model, ops, max_steps)
    return s.run(), s


def _minimise(model, ops, blocked, max_steps, budget_s=2.0):
    """A smaller non-linearizable history: first the operations invoked before the blocked
    completion, then each other operation dropped when the rest stays non-linearizable."""
    window = [op for op in ops if op.call <= blocked.ret]
    if _search(model, window, max_steps)[0] != INVALID:
        window = list(ops)
    deadline = time.monotonic() + budget_s
    if len(window) > 400:
        return window
    # The writers of values that kept operations read stay: without them the counterexample
    # would only say "a value nobody wrote", which hides the real anomaly.
    read = {M.freeze(op.result) for op in window if op.f == "read" and op.status == "ok"}
    read |= {M.freeze(op.value[0]) for op in window if op.f == "cas"}

    def writes_a_read_value(op):
        written = op.value if op.f == "write" else op.value[1] if op.f == "cas" else None
        return op.f != "read" and M.freeze(written) in read

    kept = list(window)
    for op in sorted(window, key=lambda o: -o.call):
        if op is blocked or writes_a_read_value(op) or time.monotonic() > deadline:
            continue
        trial = [o for o in kept if o is not op]
        if _search(model, trial, max_steps)[0] == INVALID:
            kept = trial
    return kept


def _explain(model, ops, key):
    verdict, s = _search(model, ops, DEFAULT_MAX_STEPS)
    lines = []
    if key is not None:
        lines.append(f"key {key!r}:")
    lines.append("operations (invocation -> completion, seconds):")
    t0 = min(op.call for op in ops)
    for op in sorted(ops, key=lambda o: o.call):
        end = "never" if math.isinf(op.ret) else f"{op.ret - t0:.6f}"
        lines.append(f"  [{op.id}] {op.describe():<40} {op.call - t0:.6f} -> {end}")
    deepest = s.deepest
    order, blocked = [], None
    if deepest is not None:
        _, order_idx, blocked_idx, state = deepest
        order = [ops[i] for i in order_idx]
        blocked = ops[blocked_idx]
        if order:
            lines.append("longest order found: " + ", then ".join(
                f"[{op.id}] {op.f}" for op in order) + f"  (state then: {state!r})")
        lines.append(f"no order lets [{blocked.id}] {blocked.describe()} complete: every "
                     f"operation that could take effect before it leads to a state that "
                     f"contradicts a result")
    return lines, order, blocked


def check(ops, model_name="register", max_steps=DEFAULT_MAX_STEPS, minimise=True):
    """Check ``ops`` (from :func:`splay.check.ops.load`) against ``"register"`` or ``"kv"``."""
    model = M.Register()
    if model_name in ("kv", "lin-kv"):
        groups = _by_key(ops)
    else:
        groups = {None: list(ops)}
    verdict, failing = VALID, None
    steps = 0
    for key in sorted(groups, key=repr):
        sub = _register_ops(model, groups[key])
        result, s = _search(model, sub, max_steps)
        steps += s.steps
        if result == INVALID:
            verdict, failing = INVALID, (key, sub, s)
            break
        if result == UNKNOWN:
            verdict = UNKNOWN
    out = Result(model_name, verdict, counts_of(ops), latency_table(ops), ops=list(ops),
                 details={"keys": len(groups), "search steps": steps})
    if failing is not None:
        key, sub, s = failing
        blocked = sub[s.deepest[2]] if s.deepest else sub[-1]
        small = _minimise(model, sub, blocked, max_steps) if minimise else sub
        explanation, order, blocked = _explain(model, small, key)
        out.counterexample = {
            "key": key, "ops": [op.to_dict() for op in small],
            "order": [op.id for op in order], "blocked": None if blocked is None else blocked.id,
            "explanation": explanation}
        out.anomalies["not-linearizable"] = [{"key": key, "op": None if blocked is None else
                                              blocked.describe()}]
    if verdict == UNKNOWN:
        out.details["bound"] = (f"the search stopped after {max_steps} steps on some key: "
                                f"raise max_steps to decide")
    return out

"""Counters: reads lie within what the adds around them allow.

Operations: ``add`` with the delta as value (``g-counter``: never negative); ``read`` whose
``ok`` value is the counter. For a read, the adds acknowledged before it was invoked certainly
count; the adds invoked before it completed whose outcome is unknown or which overlap it may
count or not. The read must lie between the lowest and the highest sum these allow.

* ``counter`` checks every read so (a linearizable counter, as Jepsen's counter checker does);
* ``g-counter`` and ``pn-counter`` are Maelstrom's eventually consistent counters: only each
  node's *final* read (its last) must be within bounds; earlier reads out of bounds are counted
  as ``stale reads`` in the details, not as errors.
"""
from .ops import HistoryError
from .result import INVALID, VALID, Result, counts_of, latency_table


def _number(op, value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HistoryError(f"operation {op.id} ({op.describe()}): {what} must be a number, "
                           f"not {value!r}")
    return value


def check(ops, model_name="pn-counter"):
    """Check a counter history; ``model_name`` ``"g-counter"`` refuses negative adds."""
    adds, reads = [], []
    for op in ops:
        if op.f == "add":
            delta = op.value.get("delta") if isinstance(op.value, dict) else op.value
            delta = _number(op, delta, "an add's delta")
            if model_name == "g-counter" and delta < 0:
                raise HistoryError(f"operation {op.id} ({op.describe()}): a g-counter only "
                                   f"grows; use pn-counter for negative adds")
            if op.status != "fail":
                adds.append((op, delta))
        elif op.f == "read":
            if op.status == "ok":
                value = op.result.get("value") if isinstance(op.result, dict) else op.result
                reads.append((op, _number(op, value, "a read's value")))
        else:
            raise HistoryError(f"operation {op.id} ({op.describe()}): a counter has add and "
                               f"read, not {op.f!r}")
    out_of_bounds, stale = [], 0
    final = {}
    for read, value in reads:
        who = read.node if read.node is not None else read.process
        if who not in final or read.call >= final[who][0].call:
            final[who] = (read, value)
    final_ids = {read.id for read, _ in final.values()}
    for read, value in reads:
        low = high = 0
        for add, delta in adds:
            if add.status == "ok" and add.ret < read.call:
                low += delta
                high += delta
            elif add.call < read.ret:
                low += min(0, delta)
                high += max(0, delta)
        if not low <= value <= high:
            if model_name != "counter" and read.id not in final_ids:
                stale += 1
                continue
            out_of_bounds.append({"read": read.id, "process": read.process, "value": value,
                                  "lower": low, "upper": high})
    result = Result(model_name, INVALID if out_of_bounds else VALID, counts_of(ops),
                    latency_table(ops), ops=list(ops),
                    details={"acknowledged sum": sum(d for a, d in adds if a.status == "ok"),
                             "reads checked": len(reads) if model_name == "counter" else len(final)})
    if model_name != "counter":
        result.details["stale reads"] = stale
    if out_of_bounds:
        result.anomalies["read-out-of-bounds"] = out_of_bounds
    return result

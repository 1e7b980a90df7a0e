"""Counters: every read lies within what the adds around it allow (Maelstrom's g-counter and
pn-counter checkers).

Operations: ``add`` with the delta as value (``g-counter``: never negative); ``read`` whose
``ok`` value is the counter. For a read, the adds acknowledged before it was invoked certainly
count; the adds invoked before it completed whose outcome is unknown or which overlap it may
count or not. The read must lie between the lowest and the highest sum these allow.
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
    out_of_bounds = []
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
            out_of_bounds.append({"read": read.id, "process": read.process, "value": value,
                                  "lower": low, "upper": high})
    result = Result(model_name, INVALID if out_of_bounds else VALID, counts_of(ops),
                    latency_table(ops), ops=list(ops),
                    details={"acknowledged sum": sum(d for a, d in adds if a.status == "ok"),
                             "reads checked": len(reads)})
    if out_of_bounds:
        result.anomalies["read-out-of-bounds"] = out_of_bounds
    return result

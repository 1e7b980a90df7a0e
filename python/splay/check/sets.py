"""Sets and broadcast: every acknowledged element is eventually read by everyone, and nothing is
read that nobody added (Jepsen's set checker, Maelstrom's broadcast checker).

Operations: ``add`` (or ``broadcast``) with the element as value; ``read`` whose ``ok`` value is
the list of elements the node holds. The *final read* of a node (or of a process when records
carry no node) is its last ``ok`` read. Anomalies:

* ``lost`` -- an element whose add was acknowledged before a final read was invoked, missing from
  that read;
* ``unexpected`` -- an element read that no add (other than a failed one) ever tried to add;
* ``never-read`` -- acknowledged, absent from every read (reported, and counted in ``lost`` when
  a final read came after the acknowledgement).

``valid`` when no element is lost or unexpected; ``unknown`` when no node read at the end.
"""
from .models import freeze
from .ops import HistoryError
from .result import INVALID, UNKNOWN, VALID, Result, counts_of, latency_table

ADDS = ("add", "broadcast")


def check(ops, model_name="set"):
    """Check a set/broadcast history (``ops`` from :func:`splay.check.ops.load`)."""
    attempted, acked = {}, {}
    reads = []
    for op in ops:
        if op.f in ADDS:
            element = freeze(op.value)
            if op.status != "fail":
                attempted[element] = op
            if op.status == "ok":
                acked[element] = op
        elif op.f == "read":
            if op.status == "ok":
                if not isinstance(op.result, (list, tuple)):
                    raise HistoryError(f"operation {op.id} ({op.describe()}): a read's value is "
                                       f"the list of elements read")
                reads.append(op)
        else:
            raise HistoryError(f"operation {op.id} ({op.describe()}): a {model_name} has "
                               f"add/broadcast and read, not {op.f!r}")
    final = {}
    for op in reads:
        who = op.node if op.node is not None else op.process
        if who not in final or op.call >= final[who].call:
            final[who] = op
    seen_anywhere = set()
    for op in reads:
        seen_anywhere.update(freeze(v) for v in op.result)
    lost, unexpected = [], []
    for who, op in sorted(final.items(), key=lambda item: repr(item[0])):
        have = {freeze(v) for v in op.result}
        missing = sorted((e for e, add in acked.items() if add.ret < op.call and e not in have),
                         key=repr)
        if missing:
            lost.append({"reader": who, "read": op.id, "missing": missing[:50],
                         "count": len(missing)})
    for element in sorted(seen_anywhere - set(attempted), key=repr):
        unexpected.append({"element": element})
    never_read = sorted((e for e in acked if e not in seen_anywhere), key=repr)
    verdict = VALID if final else UNKNOWN
    if lost or unexpected:
        verdict = INVALID
    result = Result(model_name, verdict, counts_of(ops), latency_table(ops), ops=list(ops),
                    details={"acknowledged": len(acked), "attempted": len(attempted),
                             "final reads": len(final)})
    if lost:
        result.anomalies["lost"] = lost
    if unexpected:
        result.anomalies["unexpected"] = unexpected
    if never_read:
        result.anomalies["never-read"] = [{"element": e} for e in never_read[:100]]
    if not final:
        result.details["why unknown"] = "no node read the set at the end"
    return result

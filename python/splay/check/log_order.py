"""A replicated log with offsets (Maelstrom's Kafka-style workload): offsets unique per key, no
acknowledged write lost, one order agreed by every reader.

Operations: ``send`` with value ``[key, msg]`` (or ``{"key", "msg"}``) whose ``ok`` value is the
offset given (or ``{"offset": o}``); ``poll`` whose ``ok`` value maps keys to lists of
``[offset, msg]`` (or ``{"msgs": {...}}``). Other operations (``commit_offsets``,
``list_committed_offsets``) are counted and not judged. Anomalies:

* ``duplicate-offset`` -- two acknowledged sends of one key were given the same offset;
* ``inconsistent-offset`` -- one offset of a key seen holding different messages;
* ``nonmonotonic-poll`` -- a poll returned a key's offsets out of increasing order;
* ``lost-write`` -- an acknowledged send below the highest offset ever polled on its key, which
  no poll ever returned.
"""
from .models import freeze
from .ops import HistoryError
from .result import INVALID, VALID, Result, counts_of, latency_table

OTHERS = ("commit_offsets", "list_committed_offsets")


def _send_parts(op):
    value = op.value
    if isinstance(value, dict):
        key, msg = value.get("key"), value.get("msg")
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        key, msg = value
    else:
        raise HistoryError(f"operation {op.id} ({op.describe()}): a send's value is [key, msg]")
    offset = None
    if op.status == "ok":
        offset = op.result.get("offset") if isinstance(op.result, dict) else op.result
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise HistoryError(f"operation {op.id} ({op.describe()}): an acknowledged send's "
                               f"value is its offset, an integer")
    return freeze(key), freeze(msg), offset


def check(ops, model_name="log"):
    """Check a Kafka-style log history."""
    holder = {}           # (key, offset) -> (msg, op id)
    acked = {}            # (key, offset) -> send op
    polled = {}           # key -> set of offsets returned
    anomalies = {"duplicate-offset": [], "inconsistent-offset": [], "nonmonotonic-poll": [],
                 "lost-write": []}

    def saw(key, offset, msg, op):
        where = (key, offset)
        if where in holder and holder[where][0] != msg:
            anomalies["inconsistent-offset"].append(
                {"key": key, "offset": offset, "messages": [holder[where][0], msg],
                 "ops": [holder[where][1], op.id]})
        holder.setdefault(where, (msg, op.id))

    for op in ops:
        if op.f == "send":
            key, msg, offset = _send_parts(op)
            if offset is None:
                continue
            if (key, offset) in acked and acked[(key, offset)][0] != msg:
                anomalies["duplicate-offset"].append(
                    {"key": key, "offset": offset, "ops": [acked[(key, offset)][1].id, op.id]})
            acked.setdefault((key, offset), (msg, op))
            saw(key, offset, msg, op)
        elif op.f == "poll":
            if op.status != "ok":
                continue
            reply = op.result.get("msgs", op.result) if isinstance(op.result, dict) else None
            if not isinstance(reply, dict):
                raise HistoryError(f"operation {op.id} ({op.describe()}): a poll's value maps "
                                   f"keys to [[offset, msg], ...]")
            for key, pairs in reply.items():
                key = freeze(key)
                last = None
                for pair in pairs:
                    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or \
                            isinstance(pair[0], bool) or not isinstance(pair[0], int):
                        raise HistoryError(f"operation {op.id}: poll entries are "
                                           f"[offset, msg], not {pair!r}")
                    offset, msg = pair[0], freeze(pair[1])
                    if last is not None and offset <= last:
                        anomalies["nonmonotonic-poll"].append(
                            {"op": op.id, "key": key, "offsets": [last, offset]})
                    last = offset
                    polled.setdefault(key, set()).add(offset)
                    saw(key, offset, msg, op)
        elif op.f not in OTHERS:
            raise HistoryError(f"operation {op.id} ({op.describe()}): a log has send, poll, "
                               f"commit_offsets and list_committed_offsets, not {op.f!r}")
    for (key, offset), (msg, op) in sorted(acked.items(), key=repr):
        seen = polled.get(key, ())
        if seen and offset < max(seen) and offset not in seen:
            anomalies["lost-write"].append({"key": key, "offset": offset, "msg": msg,
                                            "send": op.id})
    anomalies = {k: v for k, v in anomalies.items() if v}
    result = Result(model_name, INVALID if anomalies else VALID, counts_of(ops),
                    latency_table(ops), anomalies=anomalies, ops=list(ops),
                    details={"acknowledged sends": len(acked), "keys": len(polled)})
    return result

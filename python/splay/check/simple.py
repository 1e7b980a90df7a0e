"""The small checkers of Maelstrom's first workloads: ``echo`` (every answer repeats its request)
and ``unique-ids`` (no identifier handed out twice)."""
import json

from .result import INVALID, VALID, Result, counts_of, latency_table


def echo(ops, model_name="echo"):
    """Every ``ok`` echo's result equals the value sent."""
    wrong = [{"op": op.id, "sent": op.value, "got": op.result}
             for op in ops if op.status == "ok" and op.result != op.value]
    result = Result(model_name, INVALID if wrong else VALID, counts_of(ops), latency_table(ops),
                    ops=list(ops))
    if wrong:
        result.anomalies["wrong-echo"] = wrong
    return result


def unique_ids(ops, model_name="unique-ids"):
    """No two ``ok`` generate operations returned the same id (ids compared as JSON)."""
    first, duplicates = {}, []
    for op in ops:
        if op.status != "ok":
            continue
        key = json.dumps(op.result, sort_keys=True)
        if op.result is None:
            duplicates.append({"op": op.id, "id": None, "why": "no id in the reply"})
        elif key in first:
            duplicates.append({"id": op.result, "ops": [first[key], op.id]})
        else:
            first[key] = op.id
    result = Result(model_name, INVALID if duplicates else VALID, counts_of(ops),
                    latency_table(ops), ops=list(ops), details={"ids": len(first)})
    if duplicates:
        result.anomalies["duplicate-id"] = duplicates
    return result

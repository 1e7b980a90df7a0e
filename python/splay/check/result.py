"""What a checker answers: a verdict, counts, latencies, and the evidence for an invalid verdict."""
import json
from dataclasses import dataclass, field

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"


def percentile(sorted_values, q):
    """The ``q`` quantile (0..1) of an ascending list, by the nearest-rank method; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def latency_table(ops):
    """Per operation name: count, ok/fail/info counts, and p50/p95/p99/max latency of ``ok``."""
    table = {}
    for op in ops:
        row = table.setdefault(op.f, {"count": 0, "ok": 0, "fail": 0, "info": 0, "_lat": []})
        row["count"] += 1
        row[op.status] += 1
        if op.status == "ok":
            row["_lat"].append(op.ret - op.call)
    for row in table.values():
        lat = sorted(row.pop("_lat"))
        row.update({"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95),
                    "p99": percentile(lat, 0.99), "max": lat[-1] if lat else None})
    return table


@dataclass
class Result:
    """A checker's answer. ``valid`` is ``"valid"``, ``"invalid"`` or ``"unknown"`` (the search
    hit its bound). ``anomalies`` maps an anomaly's name to its instances (data);
    ``counterexample`` (linearizability) holds the smallest history found that shows the
    violation, in :meth:`splay.check.ops.Op.to_dict` form."""
    model: str
    valid: str
    counts: dict
    latencies: dict
    anomalies: dict = field(default_factory=dict)
    counterexample: dict = None
    details: dict = field(default_factory=dict)
    ops: list = field(default_factory=list, repr=False)

    def __bool__(self):
        return self.valid == VALID

    def to_dict(self):
        """The result as JSON data."""
        return {"model": self.model, "valid": self.valid, "counts": self.counts,
                "latencies": self.latencies, "anomalies": self.anomalies,
                "counterexample": self.counterexample, "details": self.details}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=repr)

    def text(self):
        """A report for people: the verdict first, then what supports it."""
        lines = [f"{self.model}: {self.valid.upper()}"]
        c = self.counts
        lines.append(f"  {c.get('ops', 0)} operations: {c.get('ok', 0)} ok, {c.get('fail', 0)} "
                     f"failed, {c.get('info', 0)} unknown")
        width = max([10] + [len(name) for name in self.latencies])
        for name, row in sorted(self.latencies.items()):
            if row["p50"] is None:
                lines.append(f"  {name:<{width}} {row['count']:>7} ops, no completed call")
                continue
            lines.append(f"  {name:<{width}} {row['count']:>7} ops  latency p50 {_ms(row['p50'])}  "
                         f"p95 {_ms(row['p95'])}  p99 {_ms(row['p99'])}  max {_ms(row['max'])}")
        for key, value in sorted(self.details.items()):
            lines.append(f"  {key}: {value}")
        for name, instances in sorted(self.anomalies.items()):
            lines.append(f"  anomaly {name}: {len(instances)}")
            for item in instances[:10]:
                lines.append(f"    {json.dumps(item, default=repr, sort_keys=True)}")
            if len(instances) > 10:
                lines.append(f"    ... {len(instances) - 10} more")
        if self.counterexample:
            lines.append("  counterexample:")
            lines.extend("    " + line for line in self.counterexample["explanation"])
        return "\n".join(lines)


def _ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def counts_of(ops):
    """How many operations, and how many of each completion."""
    counts = {"ops": len(ops), "ok": 0, "fail": 0, "info": 0}
    for op in ops:
        counts[op.status] += 1
    return counts

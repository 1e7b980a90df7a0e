"""Run-data documents built from the contract (splay.observatory.rundata) for the page and
report tests: a churned run whose figures are known exactly (no tests here)."""
import random

from splay.observatory import buckets, rundata

CALLS_PER_SECOND = 20      # calls each running node makes per second


def churned_run(nodes=8, seconds=30, seed=1):
    """A run of ``nodes`` nodes over ``seconds`` s, node ``nodes-1`` crashing at half time and a
    churn event at a third; each running node makes CALLS_PER_SECOND calls a second (2 % errors)
    and serves as many, and reports an app counter ``lookups`` and histogram ``hops``."""
    rng = random.Random(seed)
    run = {"id": "run-1", "mode": "processes", "app": "chord.py", "app_sha256": "ab" * 32,
           "command": f"splay run chord.py -n {nodes} --seed {seed}", "args": [], "seed": seed,
           "nodes": nodes, "started": 1_760_000_000.0, "ended": 1_760_000_000.0 + seconds,
           "state": "ENDED", "pysplay": "0.1.0", "python": "3.13.5",
           "churn": "at 10s leave 25%\nat 20s join 25%", "topology": None, "partitions": [],
           "interval": 1.0}
    crash_at = seconds // 2
    node_list, samples, events, logs = [], [], [], []
    for n in range(nodes):
        crashed = n == nodes - 1
        node_list.append({"node": n, "address": f"127.0.0.1:{20000 + n}", "daemon": None,
                          "state": "EXITED", "started": run["started"] + 0.1 * n,
                          "ended": run["started"] + (crash_at if crashed else seconds),
                          "exit_code": 1 if crashed else 0})
        events.append({"t": 0.1 * n, "kind": "node_start", "node": n, "detail": "started"})
    events.append({"t": seconds / 3, "kind": "churn", "node": None, "detail": "leave 25%"})
    events.append({"t": crash_at, "kind": "node_crash", "node": nodes - 1, "detail": "exit 1"})
    state = {n: {"made": 0, "served": 0, "errors": 0, "latency": buckets.empty(), "sent": 0,
                 "received": 0, "lookups": 0, "hops": buckets.empty([1, 2, 4, 8, 16])}
             for n in range(nodes)}
    for t in range(1, seconds + 1):
        for n in range(nodes):
            if n == nodes - 1 and t > crash_at:
                continue
            s = state[n]
            s["made"] += CALLS_PER_SECOND
            s["served"] += CALLS_PER_SECOND
            s["errors"] += 1 if t % 3 == 0 else 0
            for _ in range(CALLS_PER_SECOND):
                buckets.observe(s["latency"], rng.lognormvariate(-7 + t / seconds, 0.5))
                buckets.observe(s["hops"], rng.randint(1, 6), [1, 2, 4, 8, 16])
            s["sent"] += 3000 + 100 * n
            s["received"] += 2900 + 100 * n
            s["lookups"] += CALLS_PER_SECOND
            samples.append({"t": float(t), "node": n, "bytes_sent": s["sent"],
                            "bytes_received": s["received"], "threads": 4, "rss": 30_000_000,
                            "cpu": 0.01 * t,
                            "rpc": {"rpc/find_successor": {
                                "made": s["made"], "served": s["served"], "errors": s["errors"],
                                "timeouts": 0, "latency": list(s["latency"])}},
                            "app": {"lookups": {"type": "counter", "value": float(s["lookups"])},
                                    "view": {"type": "gauge", "value": 4.0},
                                    "hops": {"type": "histogram", "counts": list(s["hops"]),
                                             "sum": 0.0, "bounds": [1, 2, 4, 8, 16]}}})
            if t % 5 == 0:
                logs.append({"t": t + 0.5, "node": n, "line": f"node {n} ring size {nodes} at {t}"})
    for n in range(nodes - 1):
        events.append({"t": float(seconds), "kind": "node_stop", "node": n, "detail": "exit 0"})
    events.sort(key=lambda e: e["t"])
    doc = rundata.new(run, node_list, samples, events, logs)
    rundata.validate(doc)
    return doc

"""The run-data document of a deployed job, read from the controller (for the page and reports).

The controller's database knows the job, its instances (node, address, daemon, state, start and
end times) and its log lines; the node metrics (samples) and the nodes' events (every start, stop
and crash, churn actions) come from the controller's metrics store
(:mod:`splay.deploy.metrics_store`). The job's states are events derived from its own times.
"""
import hashlib
import json
import platform
import shlex

from splay.observatory import rundata

LOG_TAIL = 2000     # log lines a document carries at most (the newest)
NODE_EVENTS = {"node_start", "node_stop", "node_crash"}


def job_run(job, daemons):
    """The ``run`` part of a deployed job's document (``job`` a database row with its code)."""
    settings = job["settings"] if isinstance(job["settings"], dict) else json.loads(job["settings"] or "{}")
    args = list(settings.get("app_args", []))
    churn = job.get("churn")
    from splay import __version__ as pysplay_version
    return {"id": str(job["id"]), "mode": "deployed", "app": job["name"],
            "app_sha256": hashlib.sha256(job["code"].encode()).hexdigest(),
            "command": shlex.join(["splay", "submit", job["name"], "-n", str(job["nb_nodes"]),
                                   *(["--"] + args if args else [])]),
            "args": args, "seed": settings.get("seed"), "nodes": job["nb_nodes"],
            "started": job["running_at"] or job["created_at"], "ended": job["ended_at"],
            "state": job["state"], "pysplay": pysplay_version,
            "python": platform.python_version(),
            "churn": json.dumps(churn) if churn is not None and not isinstance(churn, str) else churn,
            "topology": settings.get("topology_text"), "partitions": [],
            "interval": 1.0}


def job_nodes(instances, daemon_names):
    """The ``nodes`` part: one entry per placed instance, by position."""
    nodes = []
    for i in sorted((i for i in instances if i["position"] is not None), key=lambda i: i["position"]):
        nodes.append({"node": i["position"], "address": f"{i['ip']}:{i['port']}",
                      "daemon": daemon_names.get(i["daemon_id"]), "state": i["state"],
                      "started": i["started_at"], "ended": i["ended_at"],
                      "exit_code": i["exit_code"]})
    return nodes


def job_events(job, instances, t0):
    """Events derived from the database: job states and each node's start and end."""
    events = []

    def add(ts, kind, node, detail):
        if ts is not None:
            events.append({"t": round(ts - t0, 6), "kind": kind, "node": node, "detail": detail})
    add(job["created_at"], "job_state", None, "QUEUED")
    add(job["running_at"], "job_state", None, "RUNNING")
    add(job["ended_at"], "job_state", None, job["state"] + (f": {job['reason']}" if job["reason"] else ""))
    for i in instances:
        if i["position"] is None:
            continue
        add(i["started_at"], "node_start", i["position"], f"{i['ip']}:{i['port']}")
        if i["ended_at"] is not None:
            crashed = i["exit_code"] not in (None, 0) or i["state"] in ("LOST", "FAILED")
            add(i["ended_at"], "node_crash" if crashed else "node_stop", i["position"],
                i["state"] + (f" (exit {i['exit_code']})" if i["exit_code"] is not None else "")
                + (f": {i['reason']}" if i["reason"] else ""))
    events.sort(key=lambda e: e["t"])
    return events


def tail_logs(db, job_id, count=LOG_TAIL):
    """The newest ``count`` log lines of a job, oldest first (ids are shared by all jobs, so the
    window grows until it holds ``count`` of this job's lines or reaches the first line)."""
    last = db.last_log_id(job_id)
    window = count
    while True:
        after = max(0, last - window)
        rows = db.logs(job_id, after=after, limit=10 ** 9)
        if len(rows) >= count or after == 0:
            return rows[-count:]
        window *= 4


def job_logs(rows, t0):
    """Log rows as the document's ``logs`` entries."""
    return [{"t": round(r["ts"] - t0, 6), "node": r["position"], "line": r["line"]} for r in rows]


def run_data(controller, job_id, since=None):
    """The run-data document of job ``job_id``: only the samples, events and logs newer than
    ``since`` (seconds since the run started) when it is given."""
    db = controller.db
    job = db.job(job_id)
    instances = db.instances(job_id)
    daemons = {d["id"]: d["name"] for d in db.daemons()}
    run = job_run(job, daemons)
    t0 = run["started"]
    events = job_events(job, instances, t0)
    logs = job_logs(tail_logs(db, job_id), t0)
    from splay.faults.deployed import fault_events
    events = sorted(events + fault_events(logs), key=lambda e: e["t"])     # --faults actions
    samples, dropped = [], {"samples": 0, "logs": 0}
    store = getattr(controller, "metrics_store", None)
    if store is not None:
        stored = store.run_data(job_id, t0, since=since)
        samples, dropped = stored["samples"], stored["dropped"]
        recorded = {e["kind"] for e in stored["events"]}
        # The store has every start and end of a node (several under churn); the instances'
        # rows only the last ones. Jobs stored before the store existed keep the derived ones.
        if recorded & NODE_EVENTS:
            events = [e for e in events if e["kind"] not in NODE_EVENTS]
        events = sorted(events + [e for e in stored["events"] if e["kind"] != "job_state"],
                        key=lambda e: e["t"])
    if since is not None:
        events = [e for e in events if e["t"] > since]
        logs = [entry for entry in logs if entry["t"] > since]
    doc = rundata.new(run, job_nodes(instances, daemons), samples, events, logs,
                      dropped["samples"], dropped["logs"])
    return doc

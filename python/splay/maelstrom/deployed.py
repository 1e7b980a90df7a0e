"""The controller's part of a deployed Maelstrom job: check its history once it is over.

A job submitted by ``splay submit --maelstrom`` carries the setting ``maelstrom`` (``workload``,
``model``). When it reaches a final state, the controller calls :func:`start_check`: in a worker
thread (a linearizability search may take seconds), the ``[history]`` records are extracted from
the job's stored log lines, judged by the workload's checker, and the verdict is stored in the
job's settings as ``maelstrom.check`` (the API shows it as the job's ``check``) and noted in
the job's log. While it runs, ``check`` is ``{"valid": "checking"}``.

The verdict is ``unknown`` when the daemons' log limits dropped lines of the job (records may be
missing, so no verdict would be honest) or when no operation was recorded.
"""
import logging
import time

from splay.history import extract

log = logging.getLogger("splay.controller")

#: Log lines read per query when gathering a job's history.
PAGE = 20000
#: Anomaly instances kept in the stored verdict (the full history stays in the logs).
KEPT_ANOMALIES = 20
#: How far back, at controller start, ended Maelstrom jobs without a verdict are checked again.
RESUME_WITHIN = 24 * 3600.0


def spec_of(job):
    """The ``maelstrom`` setting of ``job`` (a dict), or None for other jobs."""
    spec = (job.get("settings") or {}).get("maelstrom")
    return spec if isinstance(spec, dict) else None


def history_lines(database, job_id):
    """The job's node log lines, in time order."""
    after_time, after = -1.0, 0
    while True:
        rows = database.logs(job_id, after, PAGE, after_time)
        for row in rows:
            if row["instance_id"] is not None:
                yield row["line"]
        if len(rows) < PAGE:
            return
        after_time, after = rows[-1]["ts"], rows[-1]["id"]


def verdict(database, job_id, model, dropped_lines=0):
    """The stored form of the checker's verdict on job ``job_id``'s history: ``valid``,
    ``model``, ``counts``, ``anomalies`` (the first few of each), ``counterexample`` and
    ``text`` (the report for people)."""
    from splay.check import check
    from splay.check.ops import HistoryError
    try:
        records = extract(history_lines(database, job_id))
    except ValueError as e:
        return _unknown(model, f"the history cannot be read: {e}")
    if dropped_lines:
        return _unknown(model, f"the daemons' log limits dropped {dropped_lines} output lines of "
                               "this job, so operations may be missing from its history; run "
                               "fewer operations (--rate) or raise the daemons' log limits")
    if not records:
        return _unknown(model, "no operation was recorded (see the job's log: did the nodes "
                               "start their programs?)")
    try:
        result = check(model, records)
    except HistoryError as e:
        return _unknown(model, f"the history cannot be checked: {e}")
    data = result.to_dict()
    return {"valid": result.valid, "model": model, "counts": data["counts"],
            "records": len(records),
            "anomalies": {name: found[:KEPT_ANOMALIES] for name, found in data["anomalies"].items()},
            "counterexample": data["counterexample"], "text": result.text()}


def _unknown(model, why):
    return {"valid": "unknown", "model": model, "counts": {}, "anomalies": {},
            "counterexample": None, "why": why, "text": f"{model}: UNKNOWN\n  {why}"}


def start_check(controller, job_id):
    """Called by the controller when job ``job_id`` ends: if it is a Maelstrom job, check its
    history in a worker thread and store the verdict."""
    job = controller.db.job(job_id)
    spec = spec_of(job) if job else None
    if spec is None:
        return
    _store(controller.db, job_id, dict(spec, check={"valid": "checking"}))
    dropped = controller.logs.dropped.get(job_id, 0)

    def work():
        try:
            result = verdict(controller.db, job_id, spec.get("model"), dropped)
        except Exception as e:               # a checker bug must not leave "checking" forever
            log.exception("checking the history of job %d failed", job_id)
            result = _unknown(spec.get("model"), f"the checker failed: {type(e).__name__}: {e}")
        _store(controller.db, job_id, dict(spec, check=result))
        controller.logs.note(job_id, "maelstrom check: " + result["text"].splitlines()[0]
                             + (f" ({result['why']})" if "why" in result else ""))
        log.info("job %d: maelstrom check %s", job_id, result["valid"])

    controller.loop.run_in_executor(None, work)


def resume_checks(controller, within=RESUME_WITHIN):
    """At controller start: check again the Maelstrom jobs that ended in the last ``within``
    seconds and still have no verdict (the previous run stopped before storing it)."""
    from splay.deploy import models as m
    since = time.time() - within
    for row in controller.db.jobs(states=list(m.JOB_FINAL)):
        if (row["ended_at"] or 0) < since:
            continue
        job = controller.db.job(row["id"])
        spec = spec_of(job)
        if spec is not None and (spec.get("check") or {}).get("valid") in (None, "checking"):
            start_check(controller, row["id"])


def _store(database, job_id, spec):
    job = database.job(job_id)
    database.update_job_settings(job_id, dict(job["settings"], maelstrom=spec))


def check_of(job):
    """The verdict shown with a job: ``maelstrom.check`` of its settings, or None."""
    spec = spec_of(job)
    return None if spec is None else spec.get("check")

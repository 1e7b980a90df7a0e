"""The controller's figures in the Prometheus exposition format (``GET /metrics``).

Until the metrics store is wired (splay.observatory.prometheus), this serves what the controller
itself knows: its own figures, the daemons by state and each job's nodes by state.
"""
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import models as m


def exposition(api):
    """``(body, content_type)`` of the controller's figures (``api`` an API)."""
    registry = CollectorRegistry()
    status = api.in_loop(api.controller.status)
    Gauge("splay_controller_daemons_connected", "daemons connected now",
          registry=registry).set(status["daemons_connected"])
    Gauge("splay_controller_log_lines_ingested", "log lines stored since the controller started",
          registry=registry).set(status["log_lines_ingested"])
    Gauge("splay_controller_max_rss_bytes", "the controller's peak resident memory",
          registry=registry).set(status["max_rss_kib"] * 1024)
    daemons = Gauge("splay_daemons", "daemons by state", ["state"], registry=registry)
    for state in (m.D_CONNECTED, m.D_DISCONNECTED, m.D_LOST):
        daemons.labels(state).set(0)
    for daemon in api.db.daemons():
        daemons.labels(daemon["state"]).inc()
    nodes = Gauge("splay_nodes", "a job's nodes by state", ["job", "state"], registry=registry)
    for job in api.db.jobs(states=sorted(m.JOB_ACTIVE)):
        for instance in api.db.instances(job["id"]):
            nodes.labels(str(job["id"]), instance["state"]).inc()
    return generate_latest(registry), CONTENT_TYPE_LATEST

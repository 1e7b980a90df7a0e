"""The controller's figures in the Prometheus exposition format (``GET /metrics``).

What the controller itself knows (its own figures, the daemons by state) plus, from the metrics
store (:mod:`.metrics_store`), per job active or recently ended: its nodes by state and the sums
of its nodes' newest samples, as :mod:`splay.observatory.prometheus` names them
(``splay_rpc_calls_total{job,mode,function,side}``, ``splay_rpc_latency_seconds``,
``splay_nodes{job,state}``, ``splay_app_<name>{job}``...; docs/metrics.md lists them).
Written by ``prometheus_client``.
"""
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from splay.observatory.prometheus import families

from . import models as m


class _StoreCollector:
    """The metrics store's view (taken in the controller's loop) as metric families."""

    def __init__(self, view):
        self.view = view

    def collect(self):
        return families(self.view)


def exposition(api):
    """``(body, content_type)`` of the controller's figures (``api`` an API)."""
    registry = CollectorRegistry(auto_describe=False)
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
    registry.register(_StoreCollector(api.in_loop(api.controller.metrics_store.prometheus_view)))
    return generate_latest(registry), CONTENT_TYPE_LATEST

"""Prometheus exposition of the observatory: ``GET /metrics`` of the controller and of
``splay run --metrics-port P``, written by ``prometheus_client`` (not by hand).

:func:`exposition` takes a *source*: a ``prometheus_client.CollectorRegistry`` (exposed as is), or
any object with ``prometheus_view()`` returning::

    {"controller": [(name, "gauge" | "counter", help, value), ...],   # may be empty
     "jobs": [{"job": "name", "nodes": {state: count}, "latest": [newest sample of each node]}]}

(:class:`splay.observatory.collector.RunCollector` for a local run, ``MetricsStore`` for the
controller). Per job, the newest cumulative sample of each node is summed into:

- ``splay_rpc_calls_total{job,mode,function,side="made"|"served"}``,
  ``splay_rpc_errors_total{job,mode,function}``, ``splay_rpc_timeouts_total{job,mode,function}``
- ``splay_rpc_latency_seconds{job,mode,function}`` -- a histogram of the calls made, over
  :data:`splay.observatory.buckets.LATENCY_BOUNDS`
- ``splay_nodes{job,state}``, ``splay_threads{job}``, ``splay_rss_bytes{job}``,
  ``splay_cpu_seconds_total{job}``, ``splay_bytes_sent_total{job}``,
  ``splay_bytes_received_total{job}``
- ``splay_app_<name>{job}`` -- the application's metrics (counters and gauges summed over the
  nodes, histograms merged)
"""
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import MetricsHandler

from .buckets import LATENCY_BOUNDS, merge

__all__ = ["exposition", "serve", "families", "DocumentSource"]


def _histogram_buckets(counts, bounds):
    """prometheus_client's cumulative ``[(le, count), ...]`` from non-cumulative counts."""
    out, total = [], 0
    for bound, c in zip(bounds, counts):
        total += c
        out.append((repr(float(bound)), total))
    out.append(("+Inf", total + counts[-1]))
    return out


def _job_families(view):
    job = view["job"]
    calls = CounterMetricFamily("splay_rpc_calls", "RPC calls made and served",
                                labels=["job", "mode", "function", "side"])
    errors = CounterMetricFamily("splay_rpc_errors", "RPC calls that failed (made or served)",
                                 labels=["job", "mode", "function"])
    timeouts = CounterMetricFamily("splay_rpc_timeouts", "RPC calls made that timed out",
                                   labels=["job", "mode", "function"])
    latency = HistogramMetricFamily("splay_rpc_latency_seconds", "latency of the RPC calls made",
                                    labels=["job", "mode", "function"])
    rpc, totals, app = {}, dict.fromkeys(("threads", "rss", "cpu", "bytes_sent",
                                          "bytes_received"), 0), {}
    for s in view["latest"]:
        for key, e in s["rpc"].items():
            acc = rpc.get(key)
            if acc is None:
                rpc[key] = {"made": e["made"], "served": e["served"], "errors": e["errors"],
                            "timeouts": e["timeouts"], "latency": list(e["latency"]),
                            "latency_sum": e.get("latency_sum", 0.0)}
            else:
                for f in ("made", "served", "errors", "timeouts"):
                    acc[f] += e[f]
                acc["latency"] = merge(acc["latency"], e["latency"])
                acc["latency_sum"] += e.get("latency_sum", 0.0)
        for f in totals:
            totals[f] += s[f]
        for name, e in s["app"].items():
            acc = app.get(name)
            if acc is None:
                app[name] = dict(e, counts=list(e["counts"])) if "counts" in e else dict(e)
            elif acc["type"] != e["type"]:
                continue                       # nodes disagree on the kind: the first one wins
            elif "counts" in e:
                if len(acc["counts"]) == len(e["counts"]):
                    acc["counts"] = merge(acc["counts"], e["counts"])
                    acc["sum"] += e["sum"]
            else:
                acc["value"] += e["value"]
    for key in sorted(rpc):
        mode, _, function = key.partition("/")
        e = rpc[key]
        calls.add_metric([job, mode, function, "made"], e["made"])
        calls.add_metric([job, mode, function, "served"], e["served"])
        errors.add_metric([job, mode, function], e["errors"])
        timeouts.add_metric([job, mode, function], e["timeouts"])
        latency.add_metric([job, mode, function], _histogram_buckets(e["latency"], LATENCY_BOUNDS),
                           e["latency_sum"])
    nodes = GaugeMetricFamily("splay_nodes", "nodes of the job by state", labels=["job", "state"])
    for state, count in sorted(view["nodes"].items()):
        nodes.add_metric([job, state], count)
    out = [calls, errors, timeouts, latency, nodes]
    for name, kind, text, value in (
            ("splay_threads", GaugeMetricFamily, "live threads of the job's nodes", totals["threads"]),
            ("splay_rss_bytes", GaugeMetricFamily, "resident memory of the job's nodes", totals["rss"]),
            ("splay_cpu_seconds", CounterMetricFamily, "CPU time of the job's nodes", totals["cpu"]),
            ("splay_bytes_sent", CounterMetricFamily, "bytes the job's nodes sent", totals["bytes_sent"]),
            ("splay_bytes_received", CounterMetricFamily, "bytes the job's nodes received",
             totals["bytes_received"])):
        f = kind(name, text, labels=["job"])
        f.add_metric([job], value)
        out.append(f)
    for name in sorted(app):
        e = app[name]
        metric = f"splay_app_{name}"
        if e["type"] == "counter":
            f = CounterMetricFamily(metric, f"application counter {name}", labels=["job"])
            f.add_metric([job], e["value"])
        elif e["type"] == "gauge":
            f = GaugeMetricFamily(metric, f"application gauge {name} (sum over the nodes)",
                                  labels=["job"])
            f.add_metric([job], e["value"])
        else:
            f = HistogramMetricFamily(metric, f"application histogram {name}", labels=["job"])
            f.add_metric([job], _histogram_buckets(e["counts"], e.get("bounds", LATENCY_BOUNDS)),
                         e["sum"])
        out.append(f)
    return out


def _merge_families(groups):
    """One family per name: the jobs' families of the same name become one with all samples."""
    merged = {}
    for fam in groups:
        have = merged.get(fam.name)
        if have is None:
            merged[fam.name] = fam
        else:
            have.samples.extend(fam.samples)
    return list(merged.values())


def families(view):
    """The metric families of a ``prometheus_view()`` (see the module docstring)."""
    out = []
    for name, kind, text, value in view.get("controller", ()):
        f = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text)
        f.add_metric([], value)
        out.append(f)
    jobs = []
    for job in view.get("jobs", ()):
        jobs.extend(_job_families(job))
    return out + _merge_families(jobs)


class _ViewCollector:
    def __init__(self, source):
        self.source = source

    def collect(self):
        return families(self.source.prometheus_view())


def _registry(source):
    if isinstance(source, CollectorRegistry):
        return source
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(source))
    return registry


def exposition(source):
    """``(body bytes, content type)`` of the Prometheus text format for ``source``."""
    return generate_latest(_registry(source)), CONTENT_TYPE_LATEST


def serve(source, port, host="127.0.0.1"):
    """Serve ``source`` on ``http://host:port/metrics`` from a background thread (prometheus_client's
    own handler); returns the server (``shutdown()`` then ``server_close()`` to stop it)."""
    handler = MetricsHandler.factory(_registry(source))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise OSError(e.errno, f"cannot serve metrics on {host}:{port}: {e.strerror}; "
                               "pick another --metrics-port") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="splay-prometheus", daemon=True).start()
    return server


class DocumentSource:
    """A run-data document as a source for :func:`exposition`: one job, the newest sample of
    each node (``splay report`` tools and tests expose a finished run this way)."""

    def __init__(self, doc):
        self.doc = doc

    def prometheus_view(self):
        """The document's run as one job (see the module docstring)."""
        latest, states = {}, {}
        for s in self.doc["samples"]:
            latest[s["node"]] = s
        for n in self.doc["nodes"]:
            states[n["state"]] = states.get(n["state"], 0) + 1
        return {"controller": [],
                "jobs": [{"job": self.doc["run"]["id"], "nodes": states,
                          "latest": list(latest.values())}]}

"""The run-data document: everything observed during one run, as JSON (see README.md here).

``splay run`` writes it as ``<log dir>/metrics.json``; the controller builds it from its database
(``MetricsStore.run_data``). Reports and the live page read it. :func:`validate` checks its shape
and says what is wrong; :func:`load` and :func:`dump` read and write the file (validated).
"""
import json
import os

from splay.observatory.buckets import LATENCY_BOUNDS

VERSION = 1
"""Version of the document format written by this code."""

RPC_MODES = ("rpc", "rpcq", "urpc")
"""The RPC modes a sample's ``rpc`` keys start with (``"<mode>/<function>"``)."""

EVENT_KINDS = ("node_start", "node_stop", "node_crash", "churn", "partition", "topology",
               "job_state", "fault")
"""The kinds of events on a run's timeline."""

RUN_MODES = ("processes", "in-process", "deployed")
"""How the run was made: ``splay run`` (process per node, or ``--in-process``) or a deployed job."""

_RUN_FIELDS = {"id": str, "mode": str, "app": str, "app_sha256": str, "command": str,
               "args": list, "seed": (int, type(None)), "nodes": int, "started": (int, float),
               "ended": (int, float, type(None)), "state": str, "pysplay": str, "python": str,
               "churn": (str, type(None)), "topology": (str, type(None)), "partitions": list,
               "interval": (int, float)}
_NODE_FIELDS = {"node": int, "address": str, "daemon": (str, type(None)), "state": str,
                "started": (int, float, type(None)), "ended": (int, float, type(None)),
                "exit_code": (int, type(None))}
_SAMPLE_FIELDS = {"t": (int, float), "node": int, "rpc": dict, "bytes_sent": int,
                  "bytes_received": int, "threads": int, "rss": int, "cpu": (int, float),
                  "app": dict}
_RPC_FIELDS = ("made", "served", "errors", "timeouts")


def new(run, nodes=(), samples=(), events=(), logs=(), dropped_samples=0, dropped_logs=0):
    """A run-data document from its parts (lists are copied); not validated here."""
    return {"version": VERSION, "run": dict(run), "nodes": list(nodes), "samples": list(samples),
            "events": list(events), "logs": list(logs),
            "dropped": {"samples": dropped_samples, "logs": dropped_logs}}


def _fields(where, obj, spec):
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be an object, not {type(obj).__name__}")
    for name, kind in spec.items():
        if name not in obj:
            raise ValueError(f"{where} lacks the field {name!r}")
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{where}.{name} has the wrong type {type(value).__name__} "
                             f"(value {value!r:.60})")


def _counts(where, counts, n):
    if not isinstance(counts, list) or len(counts) != n:
        raise ValueError(f"{where} must be a list of {n} bucket counts")
    for c in counts:
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"{where} holds {c!r}; bucket counts are non-negative integers")


def validate_sample(s, where="sample"):
    """Check one sample (see the module docstring); ValueError says what is wrong."""
    _fields(where, s, _SAMPLE_FIELDS)
    for key, entry in s["rpc"].items():
        mode, sep, function = key.partition("/")
        if not sep or mode not in RPC_MODES or not function:
            raise ValueError(f"{where}.rpc key {key!r} must be '<mode>/<function>' with mode "
                             f"one of {', '.join(RPC_MODES)}")
        _fields(f"{where}.rpc[{key!r}]", entry, {f: int for f in _RPC_FIELDS} | {"latency": list})
        _counts(f"{where}.rpc[{key!r}].latency", entry["latency"], len(LATENCY_BOUNDS) + 1)
    for name, entry in s["app"].items():
        w = f"{where}.app[{name!r}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind in ("counter", "gauge"):
            _fields(w, entry, {"value": (int, float)})
        elif kind == "histogram":
            _fields(w, entry, {"counts": list, "sum": (int, float)})
            bounds = entry.get("bounds", LATENCY_BOUNDS)
            _counts(f"{w}.counts", entry["counts"], len(bounds) + 1)
        else:
            raise ValueError(f"{w} must have type 'counter', 'gauge' or 'histogram'")


def validate(doc):
    """Check that ``doc`` is a run-data document; raise ValueError saying what is wrong.

    Returns ``doc`` so that ``validate(json.load(f))`` reads naturally.
    """
    if not isinstance(doc, dict):
        raise ValueError(f"a run-data document is a JSON object, not {type(doc).__name__}")
    if doc.get("version") != VERSION:
        raise ValueError(f"run-data version {doc.get('version')!r} is not supported "
                         f"(this pysplay reads version {VERSION})")
    for part in ("run", "nodes", "samples", "events", "logs", "dropped"):
        if part not in doc:
            raise ValueError(f"the run-data document lacks {part!r}")
    _fields("run", doc["run"], _RUN_FIELDS)
    if doc["run"]["mode"] not in RUN_MODES:
        raise ValueError(f"run.mode {doc['run']['mode']!r} must be one of {', '.join(RUN_MODES)}")
    for part in ("nodes", "samples", "events", "logs"):
        if not isinstance(doc[part], list):
            raise ValueError(f"{part} must be a list")
    for i, n in enumerate(doc["nodes"]):
        _fields(f"nodes[{i}]", n, _NODE_FIELDS)
    last = None
    for i, s in enumerate(doc["samples"]):
        validate_sample(s, f"samples[{i}]")
        if last is not None and s["t"] < last:
            raise ValueError(f"samples[{i}].t = {s['t']} goes back in time; samples are t-ascending")
        last = s["t"]
    last = None
    for i, e in enumerate(doc["events"]):
        _fields(f"events[{i}]", e, {"t": (int, float), "kind": str, "node": (int, type(None)),
                                    "detail": str})
        if e["kind"] not in EVENT_KINDS:
            raise ValueError(f"events[{i}].kind {e['kind']!r} must be one of "
                             f"{', '.join(EVENT_KINDS)}")
        if last is not None and e["t"] < last:
            raise ValueError(f"events[{i}].t = {e['t']} goes back in time; events are t-ascending")
        last = e["t"]
    for i, line in enumerate(doc["logs"]):
        _fields(f"logs[{i}]", line, {"t": (int, float), "node": (int, type(None)), "line": str})
    _fields("dropped", doc["dropped"], {"samples": int, "logs": int})
    return doc


def dump(doc, path, check=True):
    """Validate ``doc`` and write it to ``path`` as JSON, atomically (a reader never sees half).

    ``check=False`` skips the validation, for a writer that validated each part as it came in
    (:class:`~splay.observatory.collector.RunCollector` checks every sample it accepts): at
    100,000 nodes the document holds millions of samples, and checking them all again at every
    periodic write took most of the launcher's time."""
    if check:
        validate(doc)
    tmp = f"{path}.tmp{os.getpid()}"
    text = json.dumps(doc, separators=(",", ":"))     # the C encoder (dump streams in Python)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def load(path):
    """Read and validate the run-data document at ``path``; ValueError says what is wrong."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON ({e}); expected a run-data document") from None
    try:
        return validate(doc)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None

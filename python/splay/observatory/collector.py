"""The collecting side of the metrics pipeline for one run: samples, events and logs of its nodes.

``splay run`` feeds a :class:`RunCollector` with what the nodes' metrics pipes carry
(:meth:`RunCollector.feed`, one JSON batch per line, see :mod:`.sampler`), with the node events it
sees (start, stop, crash, churn) and the node output lines; :meth:`RunCollector.document` is the
run-data document (:mod:`.rundata`) written as ``metrics.json``.

A source that sends garbage -- a line that is not a batch, a malformed sample, a line longer than
:data:`MAX_BATCH_BYTES` -- is cut off: :meth:`feed` returns the reason, the caller closes that
pipe and logs it, and the other nodes (and the run) go on.
"""
import collections
import json
import time

from . import rundata

MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Longest batch line accepted from a node; a longer one cuts the node's metrics off."""

MAX_SAMPLES = 2_000_000
"""Samples kept for one local run; more are dropped (and counted) rather than exhausting memory."""

MAX_LOGS = 10_000
"""Log lines kept (the newest)."""


class CutOff(Exception):
    """A metrics source sent something that is not a valid batch: the message says what."""


class RunCollector:
    """Samples, events and logs of one run, as a run-data document (see the module docstring)."""

    def __init__(self, run, nodes, max_samples=MAX_SAMPLES, max_logs=MAX_LOGS):
        self.run = dict(run)
        self.started = self.run["started"]
        self.nodes = [dict(n) for n in nodes]
        self.samples = []
        self.latest = {}                  # node -> its newest sample
        self.events = []
        self.logs = collections.deque(maxlen=max_logs)
        self.max_samples = max_samples
        self.dropped_samples = 0          # dropped by the nodes (reported) or here
        self.node_dropped = {}            # source -> what it last reported dropping
        self.logs_seen = 0
        self.partial = {}                 # source -> bytes of an unfinished line
        self.cut = {}                     # source -> why its metrics were cut off

    def now(self):
        """Seconds since the run started (the documents' ``t``)."""
        return round(time.time() - self.started, 6)

    # -- node data -----------------------------------------------------------------------------

    def feed(self, source, data, node=None):
        """Add bytes read from the metrics pipe of ``source``; ``node`` forces the samples' node
        index (a process that hosts one node), else each sample names its node.

        Returns None, or the reason why ``source`` is cut off from now on (its later data is
        ignored).
        """
        if source in self.cut:
            return None
        buf = self.partial.setdefault(source, bytearray())
        buf += data
        try:
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > MAX_BATCH_BYTES:
                        raise CutOff(f"a metrics batch longer than {MAX_BATCH_BYTES} bytes")
                    return None
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                if len(line) > MAX_BATCH_BYTES:
                    raise CutOff(f"a metrics batch longer than {MAX_BATCH_BYTES} bytes")
                self._batch(source, line, node)
        except CutOff as e:
            self.cut[source] = str(e)
            self.partial.pop(source, None)
            return str(e)

    def _batch(self, source, line, node):
        try:
            batch = json.loads(line)
        except ValueError:
            raise CutOff(f"a metrics batch that is not JSON ({line[:60]!r})") from None
        if not isinstance(batch, dict) or not isinstance(batch.get("samples"), list) \
                or isinstance(batch.get("dropped"), bool) \
                or not isinstance(batch.get("dropped"), int):
            raise CutOff("a metrics batch that is not {\"samples\": [...], \"dropped\": n}")
        accepted = []
        for s in batch["samples"]:
            if not isinstance(s, dict) or isinstance(s.get("ts"), bool) \
                    or not isinstance(s.get("ts"), (int, float)):
                raise CutOff("a sample without its time 'ts'")
            s = dict(s)
            s["t"] = round(s.pop("ts") - self.started, 6)
            if node is not None:
                s["node"] = node
            try:
                rundata.validate_sample(s)
            except ValueError as e:
                raise CutOff(f"an invalid sample: {e}") from None
            if not 0 <= s["node"] < len(self.nodes):
                raise CutOff(f"a sample of node {s['node']}, not a node of this run")
            accepted.append(s)
        self.dropped_samples += max(0, batch["dropped"] - self.node_dropped.get(source, 0))
        self.node_dropped[source] = max(batch["dropped"], self.node_dropped.get(source, 0))
        for s in accepted:
            if len(self.samples) >= self.max_samples:
                self.dropped_samples += 1
                continue
            self.samples.append(s)
            self.latest[s["node"]] = s

    def event(self, kind, node=None, detail=""):
        """Note an event of ``kind`` (see :data:`.rundata.EVENT_KINDS`) now."""
        self.events.append({"t": self.now(), "kind": kind, "node": node, "detail": detail})

    def node_state(self, node, state, exit_code=None):
        """Node ``node`` is now ``state`` ("running", "ended", "failed", "stopped")."""
        entry = self.nodes[node]
        entry["state"] = state
        if state == "running":
            entry["started"], entry["ended"], entry["exit_code"] = self.now(), None, None
        else:
            entry["ended"], entry["exit_code"] = self.now(), exit_code

    def log(self, node, line):
        """A line of output of ``node`` (None: the launcher's own)."""
        self.logs_seen += 1
        self.logs.append({"t": self.now(), "node": node, "line": line})

    # -- the document --------------------------------------------------------------------------

    def document(self, state=None, ended=None):
        """The run-data document of everything collected so far."""
        run = dict(self.run)
        if state is not None:
            run["state"] = state
        if ended is not None:
            run["ended"] = ended
        samples = sorted(self.samples, key=lambda s: s["t"])
        return rundata.new(run, self.nodes, samples, sorted(self.events, key=lambda e: e["t"]),
                           self.logs, self.dropped_samples, self.logs_seen - len(self.logs))

    def prometheus_view(self):
        """The run as one job for :func:`splay.observatory.prometheus.exposition`."""
        states = collections.Counter(n["state"] for n in self.nodes)
        return {"controller": [],
                "jobs": [{"job": self.run["id"], "nodes": dict(states),
                          "latest": list(self.latest.values())}]}

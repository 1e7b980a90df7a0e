"""The metrics of a ``splay run``: the launcher's side of the observatory (issue #11).

Each node process (or the one process of ``--in-process`` nodes) gets a metrics pipe
(:mod:`splay.observatory.sampler` writes its samples there); :class:`LocalMetrics` reads the pipes,
notes the nodes' start, stop and crash, the churn actions, partitions and the run's state, keeps
the nodes' output lines, and writes the run-data document ``metrics.json`` beside the merged log
(every :data:`WRITE_INTERVAL` seconds or less often for a large document, and at the end); with ``--report FILE.html`` it also writes
the run's HTML report (:mod:`splay.observatory.report`) at the end. With ``--metrics-port P`` it serves the
run's figures to Prometheus on ``127.0.0.1:P`` (:mod:`splay.observatory.prometheus`).
"""
import hashlib
import os
import selectors
import platform
import shlex
import sys
import time

import splay
from splay.pacing import wait_after
from splay.emulation.partitions import format_positions
from splay.observatory import rundata
from splay.observatory.collector import RunCollector
from splay.observatory.sampler import INTERVAL_ENV

WRITE_INTERVAL = 5.0
"""Seconds between two writes of ``metrics.json`` during a run, at least."""

WRITE_SHARE = 0.05
"""The largest share of the launcher's time spent writing ``metrics.json`` during a run: after a
write that took ``d`` seconds, the next waits ``d / WRITE_SHARE - d`` seconds if that is longer
than :data:`WRITE_INTERVAL` (:func:`splay.pacing.wait_after`) (the document of a 100,000-node run grows to hundreds of megabytes)."""

_READ = 65536


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_text(path):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


class LocalMetrics:
    """The observatory of one local run (see the module docstring)."""

    def __init__(self, opts, plan, mux):
        self.opts = opts
        self.mux = mux
        self.path = os.path.join(os.path.dirname(opts.log), "metrics.json")
        self.interval = opts.metrics_interval
        run = {"id": plan.ref, "mode": "in-process" if opts.in_process else "processes",
               "app": os.path.basename(opts.app), "app_sha256": _sha256(opts.app),
               "command": shlex.join(["splay", "run", *getattr(opts, "argv", [opts.app])]),
               "args": list(opts.app_args), "seed": getattr(opts, "seed", None), "nodes": opts.nodes,
               "started": time.time(), "ended": None, "state": "running",
               "pysplay": splay.__version__, "python": platform.python_version(),
               "churn": _read_text(opts.churn), "topology": _read_text(opts.topology),
               "partitions": list(getattr(opts, "partition", []) or []),
               "interval": self.interval}
        nodes = [{"node": i, "address": f"{a.ip}:{a.port}", "daemon": None, "state": "pending",
                  "started": None, "ended": None, "exit_code": None}
                 for i, a in enumerate(plan.nodes)]
        self.collector = RunCollector(run, nodes)
        self.collector.event("job_state", None, "running")
        # Each partition is an event when it cuts and when it heals (at the times it is applied).
        self.partition_events = partition_events(plan.settings, run["started"])
        if run["topology"] is not None:
            self.collector.event("topology", None, os.path.basename(opts.topology))
        self.next_write = time.monotonic() + WRITE_INTERVAL
        self.server = None
        if opts.metrics_port is not None:
            from splay.observatory.prometheus import serve
            self.server = serve(self.collector, opts.metrics_port)

    @staticmethod
    def environment(opts):
        """Variables every node process of the run gets (the sampling interval)."""
        return {INTERVAL_ENV: repr(opts.metrics_interval)}

    # -- node processes ------------------------------------------------------------------------

    def started(self, proc, sel):
        """``proc`` has started: watch its metrics pipe, note the start of its node(s) (under
        churn, a node starts when the replay releases it: see :meth:`churn`)."""
        if proc.metrics_fd is not None:
            sel.register(proc.metrics_fd, selectors.EVENT_READ, lambda: self.readable(proc, sel))
        if self.opts.schedule is not None:
            return
        for i in self._indexes(proc):
            self.collector.node_state(i, "running")
            self.collector.event("node_start", i)

    def readable(self, proc, sel):
        """Read what ``proc`` sent on its metrics pipe; cut it off if it sent garbage."""
        fd = proc.metrics_fd
        if fd is None:
            return
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(proc, sel)
            return
        reason = self.collector.feed(proc.index, data,
                                     node=proc.index if isinstance(proc.index, int) else None)
        if reason is not None:
            self.mux.note(f"[splay] metrics of {self._label(proc)} cut off: it sent {reason}")
            self.collector.event("fault", proc.index if isinstance(proc.index, int) else None,
                                 f"metrics cut off: {reason}")
            self._close(proc, sel)

    def ended(self, proc, sel, rc, failed):
        """``proc`` ended with status ``rc``: read its last samples, note the end of its node(s)."""
        while proc.metrics_fd is not None:
            self.readable(proc, sel)
        for i in self._indexes(proc):
            if self.collector.nodes[i]["state"] != "running":
                continue
            state = "failed" if failed else ("stopped" if proc.stop_requested else "ended")
            self.collector.node_state(i, state, rc)
            self.collector.event("node_crash" if failed else "node_stop", i,
                                 f"exit status {rc}")

    def node_failed(self, index, how):
        """An ``--in-process`` node failed (a control line of the host)."""
        if isinstance(index, int) and 0 <= index < len(self.collector.nodes):
            self.collector.node_state(index, "failed", 1)
            self.collector.event("node_crash", index, how or "")

    def churn(self, record):
        """A churn action of the replay (``{"churn": "up"|"down", "node": i, "acted": bool}``):
        a "churn" event, and the node's start (or, ``--in-process``, its stop: a process's end
        is noted by :meth:`ended`)."""
        index = record.get("node")
        if not isinstance(index, int) or not 0 <= index < len(self.collector.nodes):
            return
        action = str(record.get("churn"))
        self.collector.event("churn", index, action)
        if not record.get("acted", True):
            return
        if action == "up":
            self.collector.node_state(index, "running")
            self.collector.event("node_start", index, "churn")
        elif action == "down" and self.opts.in_process:
            self.collector.node_state(index, "stopped")
            self.collector.event("node_stop", index, "churn")

    def line(self, index, text):
        """A line of output of node ``index``."""
        self.collector.log(index if isinstance(index, int) else None, text)

    def _indexes(self, proc):
        if isinstance(proc.index, int):
            return [proc.index]
        if getattr(proc, "node_indexes", None) is not None:
            return proc.node_indexes        # a worker of --workers: the nodes it hosts
        # The host of --in-process nodes: under churn the replay reports each node's up time;
        # the nodes still up when the host ends end with it.
        if self.opts.schedule is not None:
            return [i for i, n in enumerate(self.collector.nodes) if n["state"] == "running"]
        return range(len(self.collector.nodes))

    def _close(self, proc, sel):
        try:
            sel.unregister(proc.metrics_fd)
        except (KeyError, ValueError):
            pass
        os.close(proc.metrics_fd)
        proc.metrics_fd = None

    @staticmethod
    def _label(proc):
        return f"node {proc.index}" if isinstance(proc.index, int) else "the --in-process host"

    # -- the file ------------------------------------------------------------------------------

    def tick(self):
        """Note the partitions due; write ``metrics.json`` when :data:`WRITE_INTERVAL` has passed
        since the last write."""
        self._partitions_due()
        if time.monotonic() >= self.next_write:
            self.write()

    def _partitions_due(self):
        now = self.collector.now()
        while self.partition_events and self.partition_events[0]["t"] <= now:
            self.collector.events.append(self.partition_events.pop(0))

    def write(self, state=None, ended=None):
        """Write the run-data document now; returns it. The last write (``state`` given)
        validates the whole document; the periodic ones trust the collector's checks."""
        began = time.monotonic()
        doc = self.collector.document(state, ended)
        try:
            rundata.dump(doc, self.path, check=state is not None)
        except OSError as e:
            self.mux.note(f"[splay] cannot write {self.path}: {e.strerror}")
        took = time.monotonic() - began
        self.next_write = began + took + wait_after(took, WRITE_SHARE, at_least=WRITE_INTERVAL)
        return doc

    def close(self, state):
        """The run is over (``state``: "ended", "failed", "stopped"): last write, the report of
        ``--report``, stop serving."""
        self._partitions_due()
        self.collector.event("job_state", None, state)
        doc = self.write(state, time.time())
        if self.opts.report is not None:
            from splay.observatory import report
            try:
                report.write(doc, self.opts.report)
            except OSError as e:
                self.mux.note(f"[splay] cannot write the report {self.opts.report}: {e.strerror}")
            else:
                self.mux.note(f"[splay] report: {self.opts.report}", show=not self.opts.quiet)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()



def partition_events(settings, started):
    """The "partition" events of the job settings' partitions (``splay run --partition``), at
    their times since ``started``: one when a partition cuts, one when it heals; t-ascending."""
    settings = settings or {}
    epoch = settings.get("partition_epoch", started)
    events = []
    for spec in settings.get("partitions", []):
        sides = f"{format_positions(spec['a'])} | {format_positions(spec['b']) if spec['b'] else 'the others'}"
        events.append({"t": round(epoch + spec["start"] - started, 6), "kind": "partition",
                       "node": None, "detail": f"cut {sides}"})
        if spec.get("end") is not None:
            events.append({"t": round(epoch + spec["end"] - started, 6), "kind": "partition",
                           "node": None, "detail": f"healed {sides}"})
    return sorted(events, key=lambda e: e["t"])

"""``splay run --faults FILE``: the launcher's side of a fault timeline.

The launcher gives every node the timeline in its job settings (:func:`job_settings`): each node
applies the in-node kinds itself (:mod:`splay.faults.inside`) on the shared epoch. With one process
per node the launcher applies the rest to the node processes (:class:`ProcessControl`: pause is
SIGSTOP/SIGCONT of the node's process group, kill is SIGKILL, restart starts a fresh process with
the same job, slow is a SIGSTOP/SIGCONT duty cycle, see :mod:`splay.faults.slow`). With
``--in-process`` the host process applies them all (:mod:`splay.faults.host`) and reports each
action on a control line.

Either way :class:`LauncherFaults` writes every action to the run's log --
``fault: pause 3 at 10s for 5s: begins at 10.002`` -- and to the run's data as an event of kind
``fault``.
"""
import signal
import time

from . import clock as _clock
from .engine import FaultEngine
from .inside import SETTINGS_KEY
from .lang import load_faults
from .errors import FaultError

__all__ = ["load_for_run", "job_settings", "check_with_churn", "LauncherFaults", "ProcessControl"]



def load_for_run(path, count):
    """The timeline of ``--faults PATH`` for ``count`` nodes; :class:`FaultError` (file:line:col)
    or OSError."""
    timeline = load_faults(path)
    timeline.check_nodes(count)
    return timeline


def job_settings(timeline, count, epoch):
    """The job settings that carry ``timeline`` to the nodes (time 0 at ``epoch``)."""
    return {SETTINGS_KEY: {"text": timeline.text, "name": timeline.filename, "epoch": epoch,
                           "nodes": count},
            "topology_nodes": count}


class ProcessControl:
    """Pause, kill, restart and slow of the launcher's node processes (one per node)."""

    def __init__(self, launcher):
        self.launcher = launcher

    def _proc(self, i):
        return self.launcher.procs[i]

    def freeze(self, i):
        """SIGSTOP to node i's process group."""
        self._proc(i).signal_group(signal.SIGSTOP)

    def thaw(self, i):
        """SIGCONT to node i's process group."""
        self._proc(i).signal_group(signal.SIGCONT)

    def kill(self, i, comes_back=False):
        """SIGKILL to node i's process group (not a failure of the node: the launcher did it;
        its process object stays, ready for a restart whether or not one is planned)."""
        proc = self._proc(i)
        if proc.state == "running":
            proc.signal_group(signal.SIGCONT)
            proc.kill()

    def restart(self, i):
        """Start node i afresh unless it runs; a killed process not yet reaped is reaped first."""
        proc, launcher = self._proc(i), self.launcher
        if proc.state == "running" and not proc.stop_requested:
            return
        if proc.state == "running":
            proc.kill()
            launcher._on_exit(proc)
        if launcher._start(proc):
            launcher.write_nodes_file()


class LauncherFaults:
    """The launcher's side of ``--faults`` (see the module docstring): ``step``/``next_wakeup``
    from the launcher's loop, ``on_control`` for the reports of an ``--in-process`` host."""

    def __init__(self, launcher, timeline, epoch, in_process):
        self.launcher = launcher
        self.timeline = timeline
        self.epoch = epoch
        self.engine = None
        self.noted = set()          # the "seq" of the host's reports already noted
        if not in_process:
            self.engine = FaultEngine(timeline, launcher.opts.nodes, epoch,
                                      control=ProcessControl(launcher), report=self.report,
                                      clock=_clock.real_time)

    def next_wakeup(self):
        """The monotonic time of the next action, or None."""
        if self.engine is None:
            return None
        upcoming = self.engine.next_time()
        if upcoming is None:
            return None
        return time.monotonic() + upcoming - (_clock.real_time() - self.epoch)

    def step(self):
        """Apply what is due."""
        if self.engine is not None:
            self.engine.step()

    def awaits_restart(self):
        """True while a killed node waits for its restart (the run must go on)."""
        return self.engine is not None and self.engine.awaits_restart()

    def release(self):
        """The run stops: no node may stay stopped by a pause or slow."""
        if self.engine is not None:
            self.engine.release_all()

    def report(self, action, at):
        """Note ``action`` (applied ``at`` seconds from the start) in the log and the run's data."""
        self._record(action.describe(), action.fault.targets(self.launcher.opts.nodes), at, action.t)

    def on_control(self, record):
        """A fault the ``--in-process`` host applied: ``{"fault": text, "nodes", "at", "scheduled"}``.
        Each worker of ``--workers`` applies every action to its own nodes and reports it: the
        first report of an action is noted."""
        nodes = record.get("nodes")
        if not isinstance(nodes, list):
            nodes = []
        at, scheduled = record.get("at"), record.get("scheduled")
        key = record.get("seq", len(self.noted))
        if key in self.noted:
            return
        self.noted.add(key)
        if isinstance(at, (int, float)) and isinstance(scheduled, (int, float)):
            self._record(str(record["fault"]), nodes, float(at), float(scheduled))

    def _record(self, text, nodes, at, scheduled):
        launcher = self.launcher
        launcher.mux.note(f"fault: {text} at {at:.3f} (scheduled {scheduled:.3f})",
                          show=not launcher.opts.quiet)
        if launcher.metrics is not None:
            node = nodes[0] if len(nodes) == 1 else None
            launcher.metrics.collector.event("fault", node, text)


def check_with_churn(timeline, churn):
    """``--faults`` with ``--churn``: kill and restart belong to the churn trace; FaultError."""
    if churn is None:
        return
    for fault in timeline.faults:
        if fault.kind in ("kill", "restart"):
            raise FaultError(f"'{fault.text}': with --churn the trace starts and stops the nodes; "
                             "put kills and restarts in the trace, or drop --churn",
                             timeline.filename, fault.line, fault.column)
    for spec in timeline.randoms:
        if "kill" in spec.kinds:
            raise FaultError(f"'{spec.text}': with --churn the trace starts and stops the nodes; "
                             "drop 'kill' from the kinds, or drop --churn",
                             timeline.filename, spec.line, spec.column)



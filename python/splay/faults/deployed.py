"""``splay submit --faults FILE``: a fault timeline on a deployed job.

- ``splay submit`` checks the file against ``-n`` (errors with file:line:col) and sends its text
  in the job's settings (:func:`submit_settings`); the controller's API checks it again
  (:func:`validate`, a bad request names the line).
- When the controller starts the job's nodes it puts time 0 at that instant
  (:func:`stamp`): each daemon gets the epoch on its own clock (:func:`for_daemon`, corrected by
  the clock offset the controller measures), and every node's settings carry the timeline, so
  each node applies the in-node kinds (partition, skew, drift, delay, loss, duplicate, reorder)
  itself, as in ``splay run``. The controller notes every action in the job's log at its time
  (:func:`note_actions`): ``fault: pause 1 at 2s for 2s: begins at 2.001 (scheduled 2.000)``.
- Each daemon applies pause, slow, kill and restart to its own instances
  (:class:`DaemonControl`, :func:`start_for_daemon`): SIGSTOP/SIGCONT of the instance's process
  group, SIGKILL, and a fresh process with the same job, address and port. An instance killed for
  a while (``kill N at T for D``, or a ``restart N`` later in the file) is reported down (a
  ``churn`` message: the controller shows it DOWN and drops it from the others' lists) and up
  again at its restart; a kill that nothing undoes ends the instance (KILLED).
"""
import asyncio
import json
import re
import signal

from . import clock as _clock
from .engine import FaultEngine
from .errors import FaultError
from .inside import SETTINGS_KEY, job_timeline
from .lang import parse_faults

__all__ = ["submit_settings", "validate", "stamp", "for_daemon", "note_actions", "fault_events",
           "DaemonControl", "start_for_daemon"]

def submit_settings(path, count):
    """The job settings of ``splay submit --faults PATH`` for ``count`` nodes (FaultError or
    OSError when the file is bad or unreadable)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    timeline = parse_faults(text, str(path))
    timeline.check_nodes(count)
    return {SETTINGS_KEY: {"text": text, "name": str(path), "nodes": count}}


def validate(settings, count, churn):
    """Check the ``faults`` setting of a submitted job of ``count`` nodes; ValueError saying
    what is wrong (with the file's line) -- the API's bad request."""
    spec = settings.get(SETTINGS_KEY)
    if spec is None:
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("text"), str):
        raise ValueError("'settings.faults' must be {\"text\": the fault file's text, \"name\": "
                         "its name}")
    try:
        timeline = parse_faults(spec["text"], str(spec.get("name") or "<faults>"))
        timeline.check_nodes(count)
    except FaultError as e:
        raise ValueError(f"'settings.faults': {e}") from None
    if churn and timeline.uses("kill", "restart"):
        raise ValueError("'settings.faults': with a churn trace the trace starts and stops the "
                         "nodes; drop the kills and restarts from the fault file")


def stamp(settings, nodes, now):
    """The settings of a job about to start with its ``faults`` timed: time 0 at ``now`` (the
    controller's clock), the node count and every position's address (the nodes' emulation)."""
    if SETTINGS_KEY not in settings:
        return settings
    spec = dict(settings[SETTINGS_KEY], epoch=now, nodes=len(nodes))
    stamped = dict(settings, **{SETTINGS_KEY: spec})
    stamped.setdefault("topology_nodes", nodes)
    return stamped


def for_daemon(job_spec, offset):
    """``job_spec`` (the start message's job) with the epoch on a daemon's clock (``offset``:
    the daemon's clock minus the controller's)."""
    settings = job_spec.get("settings") or {}
    if SETTINGS_KEY not in settings:
        return job_spec
    spec = dict(settings[SETTINGS_KEY])
    spec["epoch"] = float(spec["epoch"]) + offset
    return dict(job_spec, settings=dict(settings, **{SETTINGS_KEY: spec}))


async def note_actions(settings, note, still_running):
    """The controller's side: note every action of the job's timeline in its log at its time
    (``note(text)``), while ``still_running()``."""
    timeline, epoch, count = job_timeline(settings)

    def report(action, at):
        note(f"fault: {action.describe()} at {at:.3f} (scheduled {action.t:.3f})")
    engine = FaultEngine(timeline, count, epoch, report=report, clock=_clock.real_time)
    while still_running():
        upcoming = engine.step()
        if upcoming is None:
            return
        await asyncio.sleep(max(0.0, upcoming - (_clock.real_time() - epoch)))


_NOTE = re.compile(r"^fault: (.*) at -?\d+\.\d+ \(scheduled -?\d+\.\d+\)$")


def fault_events(logs):
    """The run-data events (kind ``fault``) of the controller's notes among a job's ``logs``
    entries (``{"t", "node", "line"}``), for the live page and reports."""
    events = []
    for entry in logs:
        match = _NOTE.match(entry["line"]) if entry["node"] is None else None
        if match is not None:
            events.append({"t": entry["t"], "kind": "fault", "node": None, "detail": match.group(1)})
    return events


class DaemonControl:
    """Pause, slow, kill and restart of one job's instances on this daemon (see the module
    docstring). ``instances``: position -> :class:`splay.deploy.instances.Instance`;
    ``respawn(instance)`` starts a fresh process for an instance (a coroutine)."""

    def __init__(self, manager, instances, respawn, timeline):
        self.manager = manager
        self.instances = instances
        self.respawn = respawn
        # Positions a kill leaves down until a later restart line (others end for good).
        self.restarted = {i for f in timeline.faults if f.kind == "restart" for i in (f.nodes or ())}
        self.restart_all = any(f.kind == "restart" and f.nodes is None for f in timeline.faults)

    def _running(self, i):
        instance = self.instances.get(i)
        if instance is None or instance.state != "RUNNING" or instance.process is None:
            return None
        return instance

    def freeze(self, i):
        """SIGSTOP to the instance's process group."""
        instance = self._running(i)
        if instance is not None:
            self.manager._signal_group(instance.process.pid, signal.SIGSTOP)

    def thaw(self, i):
        """SIGCONT to the instance's process group."""
        instance = self._running(i)
        if instance is not None:
            self.manager._signal_group(instance.process.pid, signal.SIGCONT)

    def kill(self, i, comes_back=False):
        """SIGKILL to the instance's group; down until its restart when ``comes_back`` (or a
        restart line names it), else ended for good."""
        instance = self._running(i)
        if instance is None:
            return
        if comes_back or self.restart_all or i in self.restarted:
            instance.fault_down = True
            self.manager.emit({"type": "churn", "id": instance.id, "change": "down",
                               "at": self.manager.clock(), "scheduled": self.manager.clock(),
                               "reason": "fault: kill"})
        else:
            instance.stop_requested = True
        self.manager._signal_group(instance.process.pid, signal.SIGCONT)
        self.manager._signal_group(instance.process.pid, signal.SIGKILL)

    def restart(self, i):
        """A fresh process for an instance a fault killed (running ones are left alone)."""
        instance = self.instances.get(i)
        if instance is not None and getattr(instance, "fault_down", False):
            self.manager._track(self.respawn(instance))


def start_for_daemon(manager, job, nodes, entries):
    """Apply the job's timeline to this daemon's instances of it (pause, slow, kill, restart),
    from an asyncio task; None when the job has none."""
    found = job_timeline(job.get("settings"))
    if found is None:
        return None
    timeline, epoch, count = found
    by_position = {int(e["position"]): manager.instances[int(e["id"])] for e in entries
                   if int(e["id"]) in manager.instances}
    entry_of = {int(e["id"]): e for e in entries}
    app = manager._write_app(job)
    head_view = json.dumps(nodes[:job["list_size"]])
    base_env = manager._base_env()

    async def respawn(instance):
        old = instance.process
        while old is not None and old.returncode is None and instance.state == "RUNNING":
            await asyncio.sleep(0.01)          # the killed process must be gone (its port)
        instance.fault_down = False
        instance.stop_requested = False
        instance.process = await manager.spawn(instance, job, app, nodes, entry_of[instance.id],
                                               head_view, base_env)
        instance.state = "RUNNING"
        manager.emit({"type": "churn", "id": instance.id, "change": "up", "pid": instance.process.pid,
                      "at": manager.clock(), "scheduled": manager.clock()})
        manager._track(manager.follow(instance))

    control = DaemonControl(manager, by_position, respawn, timeline)
    engine = FaultEngine(timeline, count, epoch, control=control, clock=manager.clock)

    async def drive():
        while True:
            upcoming = engine.step()
            live = any(i.state in ("RUNNING", "DOWN") or getattr(i, "fault_down", False)
                       for i in by_position.values())
            if upcoming is None or not live:
                engine.release_all()
                return
            await asyncio.sleep(max(0.0, upcoming - (manager.clock() - epoch)))
    return manager._track(drive())

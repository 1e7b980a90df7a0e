"""The fault engine: applies the actions of a timeline, on time, through the effects of one place.

One :class:`FaultEngine` runs wherever faults act, each with the effects it can apply:

- the launcher of ``splay run`` (one process per node): ``control`` = the node processes
  (SIGSTOP/SIGCONT, SIGKILL, restart: :mod:`splay.faults.local`); it also reports every action
  to the run's log and data;
- each node process: ``inside`` = its clock and links (:mod:`splay.faults.inside`): skew, drift,
  partitions, delay, loss, duplicate, reorder;
- the host of ``--in-process`` nodes: both (:mod:`splay.faults.host`);
- a daemon: ``control`` over its instances (:mod:`splay.faults.deployed`).

An engine with no ``control`` leaves pause, kill, restart and slow to another; with no ``inside``,
the in-node kinds. Times count from ``epoch`` (a ``time.time()`` reading shared by every place).
``step()`` applies what is due and returns when to call it next.
"""
import time

from .schedule import BEGIN, actions
from . import slow as _slow

__all__ = ["FaultEngine", "CONTROL_KINDS", "INSIDE_KINDS"]

#: Kinds applied by the place that controls the nodes' processes (or threads).
CONTROL_KINDS = ("pause", "kill", "restart", "slow")
#: Kinds applied inside the nodes (their clock and links).
INSIDE_KINDS = ("partition", "skew", "drift", "delay", "loss", "duplicate", "reorder")


class FaultEngine:
    """Applies ``timeline`` (:class:`~splay.faults.lang.FaultTimeline`) to a run of ``count``
    nodes. ``control`` has ``freeze(i)``, ``thaw(i)``, ``kill(i, comes_back)`` (``comes_back``:
    the fault restarts it after a while) and ``restart(i)``; ``inside``
    has ``partition(groups)`` -> handle, ``heal(handle)``, ``clock(i)`` (a
    :class:`~splay.faults.clock.NodeClock` or None when node i is not here) and
    ``messages(i, delay, loss, duplicate, reorder)``. ``report(action, at)`` is called after
    each action with the time (from the epoch) it was applied."""

    def __init__(self, timeline, count, epoch, control=None, inside=None, report=None,
                 clock=time.time):
        self.count = count
        self.epoch = float(epoch)
        self.control, self.inside, self.report = control, inside, report
        self.clock = clock
        self._actions = actions(timeline, count)
        self._next = next(self._actions, None)
        self.paused = {}            # node -> how many pauses hold it
        self.slowed = {}            # node -> [(factor, since), ...] of the slows in force
        self.frozen = set()         # nodes frozen now (by a pause or the off part of a slow)
        self.partitions = {}        # id(fault) -> handles of its cuts
        self.message_faults = {}    # node -> {kind: [values in force]}
        self.drifts = {}            # node -> [rates in force]
        self.killed = set()         # nodes killed by a fault and not restarted since
        self.applied = 0

    @property
    def finished(self):
        """True once every action has been applied and no slow needs its duty cycle."""
        return self._next is None and not self.slowed

    def awaits_restart(self):
        """True while a node killed by a fault is down and actions remain (a restart may come):
        the run must not end because no node runs."""
        return bool(self.killed) and self._next is not None

    def next_time(self):
        """The next time (seconds from the epoch) :meth:`step` has something to do, or None."""
        times = [] if self._next is None else [self._next.t]
        now = self.clock() - self.epoch
        for node, slows in self.slowed.items():
            factor, since = max(slows)
            times.append(_slow.next_toggle(factor, since, now))
        return min(times, default=None)

    def step(self):
        """Apply every action due now and the slow duty cycles; returns :meth:`next_time`."""
        now = self.clock() - self.epoch
        while self._next is not None and self._next.t <= now:
            action, self._next = self._next, next(self._actions, None)
            self._apply(action)
            self.applied += 1
            if self.report is not None:
                self.report(action, self.clock() - self.epoch)
        self._update_freezing(self.clock() - self.epoch)
        return self.next_time()

    # -- the kinds --------------------------------------------------------------------------

    def _apply(self, action):
        fault, begin = action.fault, action.what == BEGIN
        kind = fault.kind
        if kind in CONTROL_KINDS and self.control is None:
            return
        if kind in INSIDE_KINDS and self.inside is None:
            return
        targets = fault.targets(self.count)
        if kind == "pause":
            for i in targets:
                self.paused[i] = self.paused.get(i, 0) + (1 if begin else -1)
                if self.paused[i] <= 0:
                    del self.paused[i]
        elif kind == "slow":
            for i in targets:
                slows = self.slowed.setdefault(i, [])
                if begin:
                    slows.append((fault.value, action.t))
                else:
                    slows.remove((fault.value, fault.start))
                    if not slows:
                        del self.slowed[i]
        elif kind == "kill" or kind == "restart":
            restart = kind == "restart" or not begin
            for i in targets:
                # A new process (or node object) is not frozen: the next update freezes it again
                # when a pause or slow still holds.
                self.frozen.discard(i)
                if restart:
                    self.killed.discard(i)
                    self.control.restart(i)
                else:
                    self.killed.add(i)
                    self.control.kill(i, fault.end is not None)
        elif kind == "partition":
            if begin:
                groups = [list(g) for g in fault.groups]
                self.partitions[id(fault)] = self.inside.partition(groups)
            elif id(fault) in self.partitions:
                self.inside.heal(self.partitions.pop(id(fault)))
        elif kind in ("skew", "drift"):
            for i in targets:
                clock = self.inside.clock(i)
                if clock is None:
                    continue
                if kind == "skew":
                    clock.skew(fault.value if begin else -fault.value)
                else:
                    rates = self.drifts.setdefault(i, [])
                    if begin:
                        rates.append(fault.value)
                    else:
                        rates.remove(fault.value)
                    rate = 1.0
                    for r in rates:
                        rate *= r
                    clock.set_rate(rate, self.epoch + action.t)     # from its scheduled instant
        else:                       # delay, loss, duplicate, reorder
            for i in targets:
                values = self.message_faults.setdefault(i, {}).setdefault(kind, [])
                if begin:
                    values.append(fault.value)
                else:
                    values.remove(fault.value)
                self.inside.messages(i, **self.message_state(i))

    def message_state(self, i):
        """Node i's message faults in force: ``{"delay", "loss", "duplicate", "reorder"}``."""
        faults = self.message_faults.get(i, {})

        def combined(kind):
            kept = 1.0
            for p in faults.get(kind, ()):
                kept *= 1.0 - p
            return 1.0 - kept
        return {"delay": sum(faults.get("delay", ())), "loss": combined("loss"),
                "duplicate": combined("duplicate"), "reorder": combined("reorder")}

    def _update_freezing(self, now):
        if self.control is None:
            return
        wanted = set(self.paused)
        for node, slows in self.slowed.items():
            factor, since = max(slows)
            if not _slow.running(factor, since, now):
                wanted.add(node)
        wanted -= self.killed           # a dead process needs no SIGSTOP; its restart is frozen
        for node in sorted(wanted - self.frozen):
            self.control.freeze(node)
        for node in sorted(self.frozen - wanted):
            self.control.thaw(node)
        self.frozen = wanted

    def release_all(self):
        """Thaw every frozen node (the run is ending: no node may stay stopped)."""
        if self.control is not None:
            for node in sorted(self.frozen):
                self.control.thaw(node)
        self.frozen = set()

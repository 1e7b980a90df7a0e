"""``splay run APP.py --churn TRACE``: start and stop nodes when a churn trace says so.

The trace (see :mod:`splay.churn.trace`) gives each node its up intervals. Node ``i`` runs only
during them: at each up time it starts afresh -- a new process, or with ``--in-process`` a new node
object running the application's source anew in a fresh namespace -- with the same job (position,
address, port); at each down time it is stopped (SIGTERM to its process group, SIGKILL after
``--grace`` seconds; in one process: the node's threads are killed and its sockets closed). The
nodes file follows every change (:class:`~splay.launch.membership_file.MembershipFile`; in one
process the nodes read the host's list instead), so ``job.nodes()`` of every running node lists
the nodes alive now. A node that crashes while up is reported as a failure as usual and, like any node that
ended early, starts again at its next up time.

Times run on the launcher's monotonic clock from the moment the replay starts (t = 0), divided by
``--churn-speed``. A node's process is created ahead of its up time and waits (:func:`gate_main`)
until the launcher releases it, so that the fork and the interpreter's start-up do not delay the
schedule. Every action is noted (``churn: node 3 up at 12.004 (scheduled 12.000)``) with the time
it was *issued* -- the release, the SIGTERM -- and the summary gives the largest and the median
lag behind the schedule.

- :class:`Timeline`: the trace's events on the replay clock, consumed in order;
- :class:`Accuracy`: the lags of the actions, and their summary;
- :class:`ChurnReplay`: drives the launcher's :class:`~splay.launch.processes.NodeProcess`
  objects from the launcher's own selector loop (one process per node);
- :class:`HostChurnReport`: the launcher's side of ``--in-process`` replays, whose actions happen
  in the host process (:func:`replay_in_host`, run there as a thread of its scheduler) and are
  reported to the launcher as control lines.
"""
import importlib
import json
import os
import statistics
import sys
import time

from splay.churn.trace import DOWN, UP, Schedule, format_time

__all__ = ["Timeline", "Accuracy", "ChurnReplay", "HostChurnReport", "replay_in_host",
           "write_churn_file", "read_churn_file", "gate_main", "CHURN_ENV", "PRESTART"]

#: Environment variable of an ``--in-process`` host naming the JSON file of its churn replay.
CHURN_ENV = "SPLAY_CHURN_FILE"

#: A node's process is created this many seconds before its up time and waits to be released.
PRESTART = 3.0

#: A process is created ahead of time only if the next event is at least this far (or twice the
#: recent creation time, if longer): waiting for its exec must not delay that event.
CREATE_MARGIN = 0.05

#: How much a churn replay lowers the launcher's niceness (raises its priority), when it may.
LAUNCHER_BOOST = 10

#: What a waiting node process reads on its stdin when its up time comes.
GO = b"go\n"


class Timeline:
    """The events of a :class:`~splay.churn.Schedule` on the replay clock, in order.

    Each event is ``(t, node, change, trace_t)``: ``t`` the replay time in seconds (``trace_t``
    divided by ``speed``), ``change`` ``"up"`` or ``"down"``. At one instant downs come first, so
    a node that goes down while another comes up never makes the population overshoot.
    """

    def __init__(self, schedule, speed=1.0):
        if not speed > 0:
            raise ValueError(f"churn speed must be a positive factor, got {speed!r}")
        self.speed = speed
        self.events = [(t / speed, node, change, t) for t, node, change in schedule.events()]
        self.position = 0

    @property
    def finished(self):
        """``True`` once every event has been taken."""
        return self.position >= len(self.events)

    def next_time(self):
        """Replay time of the next event, ``None`` when there is none left."""
        return None if self.finished else self.events[self.position][0]

    def due(self, elapsed):
        """Take and return the events whose time is at most ``elapsed`` (replay seconds)."""
        start = self.position
        while self.position < len(self.events) and self.events[self.position][0] <= elapsed:
            self.position += 1
        return self.events[start:self.position]


class Accuracy:
    """How late the replay's actions were issued compared with the schedule."""

    def __init__(self):
        self.lags = {UP: [], DOWN: []}

    def record(self, change, lag):
        """One action (``"up"`` or ``"down"``) issued ``lag`` seconds after its scheduled time."""
        self.lags[change].append(lag)

    @property
    def all_lags(self):
        """Every lag, starts and stops together."""
        return self.lags[UP] + self.lags[DOWN]

    def summary(self):
        """``"schedule accuracy: 75 action(s) (...): lag ... max 4.1 ms, median 0.6 ms"``."""
        lags = self.all_lags
        if not lags:
            return "schedule accuracy: no start or stop action was due"
        return (f"schedule accuracy: {len(lags)} action(s) ({len(self.lags[UP])} start(s), "
                f"{len(self.lags[DOWN])} stop(s)): lag behind the schedule max {max(lags) * 1000:.1f} ms, "
                f"median {statistics.median(lags) * 1000:.1f} ms")


def describe_action(node, change, at, scheduled, trace_t, speed, extra=""):
    """The note of one churn action: ``churn: node 3 up at 12.004 (scheduled 12.000)``."""
    when = f"(scheduled {scheduled:.3f}"
    if speed != 1:
        when += f", trace time {format_time(trace_t)}"
    return f"churn: node {node} {change} at {at:.3f} {when}){extra}"


class ChurnReplay:
    """Replays a schedule with one process per node, inside the launcher's loop.

    The launcher calls :meth:`begin` once its loop is ready, :meth:`step` at every turn of its
    loop (it acts on what is due) and waits at most until :meth:`next_wakeup`. The nodes are the
    launcher's ``procs``: restartable, *gated* :class:`~splay.launch.processes.NodeProcess` objects
    whose command is this module (:func:`gate_main`). A node's process is created
    :data:`PRESTART` seconds before its up time (or as soon as its previous process has ended),
    waits, and is released at the up time: the fork, the exec and the interpreter's start-up are
    off the schedule's path. When no waiting process is ready at the up time, one is created and
    released at once. The launcher's own ``_start`` and ``_on_exit`` register and reap the
    processes, so output, crash reports and the merged log work as in every run.
    """

    def __init__(self, launcher, schedule, speed=1.0, trace_name="trace"):
        self.launcher = launcher
        self.schedule = schedule
        self.timeline = Timeline(schedule, speed)
        self.trace_name = trace_name
        self.accuracy = Accuracy()
        self.t0 = None
        self.kill_at = {}             # index of a node stopped by the trace -> when it gets SIGKILL
        # The up events, for creating their processes ahead of time: (replay time, index).
        self.ups = [(t, index) for t, index, change, _ in self.timeline.events if change == UP]
        self.ups_position = 0
        self.to_prestart = set()      # (up time, node) near: create the node's process when it is free
        self.waiting = set()          # nodes whose process is created and waits for its up time
        self.starts = 0
        self.prestarted = 0
        self.stops = 0
        self.start_durations = []     # how long creating each process took (fork + exec)

    @property
    def finished(self):
        """Every event of the trace has been acted on."""
        return self.timeline.finished

    def begin(self):
        """t = 0 of the replay: now, once the processes of the first :data:`PRESTART` seconds wait."""
        boost = self._raise_priority()
        self.t0 = time.monotonic()
        # Before t = 0, with all the time needed (the clock starts afterwards).
        self._prestart(self.t0, before_start=True)
        self.t0 = time.monotonic()
        speed = self.timeline.speed
        self._note(
            f"churn: replaying {self.trace_name}: {self.schedule.nodes} node(s), "
            f"{len(self.timeline.events)} up/down event(s), the last at "
            f"{format_time(self.schedule.end_time)} s{'' if speed == 1 else f' of trace time (speed x{speed:g})'}; "
            f"t = 0 now")
        self._note(boost, show=False)

    def _raise_priority(self):
        """Give the launcher a higher scheduling priority than its nodes, when it may.

        On a loaded machine, an action is late when the launcher waits for a CPU; a higher
        priority (lower niceness) lets it act at once. The nodes keep the user's priority. Without
        the right to do so (CAP_SYS_NICE), nothing changes and the note says so.
        """
        base = os.getpriority(os.PRIO_PROCESS, 0)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, max(-20, base - LAUNCHER_BOOST))
        except OSError:
            return (f"churn: the launcher cannot raise its scheduling priority (niceness {base}): on a "
                    "loaded machine its actions may be late (see the accuracy summary)")
        for proc in self.launcher.procs:
            proc.niceness = base
        return (f"churn: the launcher runs at niceness {os.getpriority(os.PRIO_PROCESS, 0)}, "
                f"its nodes at {base}")

    def alive(self, procs):
        """The processes that count as alive: released, running and not being stopped."""
        return [p for p in procs if p.state == "running" and not p.stop_requested and p.index not in self.waiting]

    def next_wakeup(self):
        """The monotonic time of the next event, process creation or SIGKILL, ``None`` if none."""
        times = list(self.kill_at.values())
        t = self.timeline.next_time()
        if t is not None:
            times.append(self.t0 + t)
        if self.ups_position < len(self.ups):
            times.append(self.t0 + self.ups[self.ups_position][0] - PRESTART)
        return min(times, default=None)

    def step(self, now):
        """Act on every event due by ``now``, then kill overdue nodes and create waiting processes."""
        procs = self.launcher.procs
        notes = []
        cold = []
        for t, index, change, trace_t in self.timeline.due(now - self.t0):
            if self.launcher.stopping:
                break
            if change == DOWN:
                notes.append(self._down(procs[index], t, trace_t))
            elif not self._release(procs[index], t, trace_t, notes):
                cold.append((procs[index], t, trace_t))
        # Nodes without a waiting process last: creating one makes the launcher wait for its exec.
        for proc, t, trace_t in cold:
            if not self.launcher.stopping:
                notes.append(self._cold_start(proc, t, trace_t))
        if notes:
            # One rewrite for the actions of one instant, once they are all issued.
            self.launcher.write_nodes_file()
            for text in notes:
                self._note(text)
        for index, deadline in list(self.kill_at.items()):
            proc = procs[index]
            if proc.state != "running":
                del self.kill_at[index]
            elif now >= deadline:
                del self.kill_at[index]
                self._note(f"churn: node {index} still running {self.launcher.opts.grace:g} s after "
                           "SIGTERM: killing it", show=True)
                proc.kill()
        self._prestart(now)
        if self.timeline.finished and self.waiting:
            # Cannot happen with a consistent trace; never let a waiting process hold the run.
            for index in sorted(self.waiting):
                procs[index].stop()
            self.waiting.clear()

    def _prestart(self, now, before_start=False):
        elapsed = now - self.t0
        while self.ups_position < len(self.ups) and self.ups[self.ups_position][0] - PRESTART <= elapsed:
            t, index = self.ups[self.ups_position]
            if before_start or t > elapsed:     # not already started by this step
                self.to_prestart.add((t, index))
            self.ups_position += 1
        for t, index in sorted(self.to_prestart):
            proc = self.launcher.procs[index]
            if proc.state == "running" or self.launcher.stopping:
                continue                 # its previous process is still up, or ending: later
            if not before_start and not self._time_to_create(t):
                break
            self.to_prestart.discard((t, index))
            began = time.monotonic()
            if self.launcher._start(proc):
                took = time.monotonic() - began
                self.start_durations.append(took)
                self.waiting.add(index)
                self._note(f"churn: node {index}'s process for its up at {t:.3f} created at "
                           f"{began - self.t0:.3f} (in {took * 1000:.1f} ms); it waits", show=False)

    def _time_to_create(self, up_time):
        """Is there time to create a process (the launcher waits for its exec) before the next event?

        The margin is twice the median of the last creations (the machine's load shows in it). A
        process not created in time is created at its up time, after the instant's other actions.
        """
        upcoming = self.timeline.next_time()
        if upcoming is None:
            return True
        recent = self.start_durations[-5:]
        margin = max(CREATE_MARGIN, 2 * statistics.median(recent)) if recent else CREATE_MARGIN
        return self.t0 + upcoming - time.monotonic() > margin

    def _note(self, text, show=None):
        quiet = self.launcher.opts.quiet
        self.launcher.mux.note(text, show=(not quiet) if show is None else show)

    def _release(self, proc, t, trace_t, notes):
        """Up time of a node whose process waits: let it run. ``False`` when none waits."""
        index = proc.index
        self.to_prestart.discard((t, index))
        if index in self.waiting and proc.state == "running" and not proc.stop_requested:
            self.waiting.discard(index)
            issued = time.monotonic()
            if proc.release():
                self.prestarted += 1
                notes.append(self._started(proc, t, trace_t, issued))
                return True
        self.waiting.discard(index)
        return False

    def _cold_start(self, proc, t, trace_t):
        """Up time of a node without a waiting process: create one and let it run at once."""
        index = proc.index
        if proc.state == "running":
            # Its last process is still ending after its down (within its grace time), or its
            # waiting process is broken: it must be gone before its successor takes the port.
            self.kill_at.pop(index, None)
            proc.kill()
            self.launcher._on_exit(proc)
        began = time.monotonic()
        if not self.launcher._start(proc):
            return f"churn: node {index} could not be started"
        issued = time.monotonic()            # the node runs from its release: the lag counts the creation
        self.start_durations.append(issued - began)
        proc.release()
        return self._started(proc, t, trace_t, issued, ", created at its up time")

    def _started(self, proc, t, trace_t, issued, how=""):
        self.starts += 1
        self._observe(UP, proc.index)
        self.accuracy.record(UP, issued - (self.t0 + t))
        return describe_action(proc.index, UP, issued - self.t0, t, trace_t, self.timeline.speed,
                               f", pid {proc.pid}{how}")

    def _down(self, proc, t, trace_t):
        if proc.state != "running" or proc.stop_requested or proc.index in self.waiting:
            return describe_action(proc.index, DOWN, time.monotonic() - self.t0, t, trace_t,
                                   self.timeline.speed, ": it had already ended")
        issued = time.monotonic()
        proc.stop()
        self._observe(DOWN, proc.index)
        self.kill_at[proc.index] = issued + self.launcher.opts.grace
        self.stops += 1
        self.accuracy.record(DOWN, issued - (self.t0 + t))
        return describe_action(proc.index, DOWN, issued - self.t0, t, trace_t, self.timeline.speed,
                               ": SIGTERM sent")

    def _observe(self, change, index):
        """Tell the run's observatory (metrics.json, --report) about a churn action."""
        if self.launcher.metrics is not None:
            self.launcher.metrics.churn({"churn": change, "node": index})

    def summary(self):
        """The end-of-run lines: what the replay did and how close to the schedule."""
        lines = [f"churn: {self.starts} start(s) and {self.stops} stop(s) of {self.schedule.nodes} "
                 f"node(s) from {self.trace_name}"
                 + ("" if self.finished else " (the run was stopped before the trace's end)"),
                 "churn: " + self.accuracy.summary()]
        if self.start_durations:
            lines.append(f"churn: {self.prestarted} of {self.starts} start(s) released a process created "
                         f"ahead of time; creating a process took max {max(self.start_durations) * 1000:.1f} ms, "
                         f"median {statistics.median(self.start_durations) * 1000:.1f} ms")
        return lines


class HostChurnReport:
    """The launcher's side of an ``--in-process`` replay: the host acts, the launcher notes.

    The host process reports each action as a control line (see :func:`replay_in_host`); this
    object turns them into notes and the accuracy summary. It has the interface of
    :class:`ChurnReplay` the launcher's loop uses, with nothing to do itself.
    """

    finished = True      # the host's end ends the run

    def __init__(self, launcher, schedule, speed=1.0, trace_name="trace"):
        self.launcher = launcher
        self.schedule = schedule
        self.speed = speed
        self.trace_name = trace_name
        self.accuracy = Accuracy()
        self.starts = 0
        self.stops = 0
        self.events = len(schedule.events())
        self.seen = 0
        self.began = False

    def _where(self):
        workers = getattr(self.launcher, "workers", None)
        return "in one process" if workers is None else f"in {workers.count} worker processes"

    def begin(self):
        """Nothing to do: the host starts the replay's clock when it is ready."""

    def alive(self, procs):
        """Not used: the host writes the nodes file."""
        return []

    def next_wakeup(self):
        return None

    def step(self, now):
        """Nothing to do: the host acts."""

    def on_control(self, record):
        """A control line of the host about churn: note it, count its lag."""
        change = record.get("churn")
        quiet = self.launcher.opts.quiet
        if change == "start":
            if self.began:
                return           # the other workers of --workers: one common t = 0, noted once
            self.began = True
            self.launcher.mux.note(
                f"churn: replaying {self.trace_name} {self._where()}: {self.schedule.nodes} node(s), "
                f"{self.events} up/down event(s), the last at {format_time(self.schedule.end_time)} s; "
                "t = 0 now", show=not quiet)
            return
        if change not in (UP, DOWN):
            return
        self.seen += 1
        index, at, scheduled = record.get("node"), record.get("at", 0.0), record.get("scheduled", 0.0)
        trace_t = record.get("trace_time", scheduled)
        if record.get("acted", True):
            self.accuracy.record(change, at - scheduled)
            if change == UP:
                self.starts += 1
            else:
                self.stops += 1
            extra = ", a fresh namespace" if change == UP else ": its threads killed"
        else:
            extra = ": it had already ended"
        self.launcher.mux.note(describe_action(index, change, at, scheduled, trace_t, self.speed, extra),
                               show=not quiet)

    def summary(self):
        """The end-of-run lines, as :meth:`ChurnReplay.summary`."""
        return [f"churn: {self.starts} start(s) and {self.stops} stop(s) of {self.schedule.nodes} "
                f"node(s) from {self.trace_name} ({self._where()})"
                + ("" if self.seen >= self.events else " (the run was stopped before the trace's end)"),
                "churn: " + self.accuracy.summary()]


def write_churn_file(path, schedule, speed):
    """Write what an ``--in-process`` host needs to replay ``schedule``: its times and speed."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"times": [list(schedule.times(i)) for i in range(schedule.nodes)], "speed": speed}, f)


def read_churn_file(path):
    """``(schedule, speed)`` from a file of :func:`write_churn_file`."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return Schedule(data["times"]), float(data["speed"])


#: Waits for a churn action end this close to its time (seconds): below any clock's resolution.
CLOCK_STEP = 1e-6


def replay_in_host(schedule, speed, start_node, stop_node, after_change, report, t0=None):
    """Body of the churn thread of an ``--in-process`` host (a thread of its scheduler).

    ``start_node(i)`` starts node ``i`` afresh; ``stop_node(i)`` stops it and returns ``False``
    when it was not running; ``after_change()`` is called once after the actions of each instant
    (the nodes' list changed); ``report(record)`` sends a control record to the launcher. t = 0 is ``t0`` (a
    ``time.monotonic()`` reading: the common start of the workers of ``--workers``), or when
    this thread starts, that is once the host is ready.
    """
    from splay import events
    timeline = Timeline(schedule, speed)
    t0 = time.monotonic() if t0 is None else t0
    report({"churn": "start"})
    while not timeline.finished:
        due_at = timeline.next_time()
        target = t0 + due_at
        while True:
            delay = target - time.monotonic()
            if delay <= CLOCK_STEP:
                break
            events.sleep(delay)
        # A wait may end a hair before the target (float rounding; on a simulation's virtual
        # clock a sleep of less than its step does not move it at all): what is due at the target
        # is due now, or this loop would spin without the clock ever reaching it.
        for t, index, change, trace_t in timeline.due(max(time.monotonic() - t0, due_at)):
            issued = time.monotonic() - t0
            if change == UP:
                start_node(index)
                acted = True
            else:
                acted = stop_node(index)
            report({"churn": change, "node": index, "at": issued, "scheduled": t, "trace_time": trace_t,
                    "acted": acted})
        # Once for the actions of one instant: no node runs between them (this thread does not
        # yield), so none can see the list in between.
        after_change()


def gate_main(argv=None):
    """``python -m splay.launch.churn_replay APP.py [ARGS...]``: a node that waits for its up time.

    Loads the node runner and the library, then blocks until the launcher writes the go line on
    its stdin, and runs the node as ``python -m splay.launch.node APP.py ARGS...`` would. End of
    file instead (the launcher gave up on this process, or died) ends it quietly with status 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from splay.launch import node
    importlib.import_module("splay.base")   # loaded now, off the schedule's path (install_job sets its job)
    line = sys.stdin.buffer.readline()
    if line != GO:
        return 0
    # The application gets no stdin, as every node.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    status = node.main(argv)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(gate_main())

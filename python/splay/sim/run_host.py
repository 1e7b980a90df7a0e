"""The process of ``splay run --sim``: every node of an application in one process, on virtual time.

``python -m splay.sim.run_host APP.py [args...]`` is started by ``splay run --sim`` exactly as
:mod:`splay.launch.in_process` is by ``--in-process`` (same jobs file, same churn replay, same
output framing), and runs through it, with these differences:

- the hub's clock is virtual (:mod:`splay.sim.clock`), starting at 0 when the first node's
  module runs, and the real blocking calls are refused (:mod:`splay.sim.blocking`);
- sockets are simulated (:mod:`splay.sim.network`, seeded with the run's seed); a node that goes
  down (churn, a fault's kill) has its connections reset, as a crashed process's are;
- each node's ``random`` functions draw from the node's own stream, seeded from the run's seed
  (``SPLAY_SEED``) and the node's position (:class:`splay.sim.seeding.NodeStreams`);
- before the first output line of each new virtual instant it writes the control line
  ``{"vt": seconds}``: the launcher stamps the merged log with virtual time;
- ``SPLAY_SIM_UNTIL`` (seconds) ends the run when the clock would pass it;
- about once a real second it writes ``{"progress": {"vt": ..., "events": ..., "real": ...}}``
  (virtual seconds reached, threads resumed so far, real seconds since the start), and at the
  end ``{"sim": "end", ...}`` with the same figures, whether ``--until`` stopped the run, and the
  threads left blocked forever when it got stuck (:mod:`splay.sim.deadlock`).

The process must run with ``PYTHONHASHSEED`` fixed (the launcher sets it; see
:func:`splay.sim.run.host_environment`): set and dict-of-set iteration orders then repeat run
after run, and with them the application's choices.
"""
import contextlib
import gc
import json
import os
import resource
import sys
import threading

from splay.launch import in_process

from . import blocking, clock, deadlock, network, seeding

__all__ = ["main", "UNTIL_ENV", "SimTaggedOutput", "STUCK_SHOWN"]

#: Environment variable holding ``--until``'s virtual seconds.
UNTIL_ENV = "SPLAY_SIM_UNTIL"

#: How many blocked threads the end record lists (their total is given too).
STUCK_SHOWN = 20

#: Real seconds between two progress records.
PROGRESS_INTERVAL = 1.0


class SimTaggedOutput(in_process.NodeTaggedOutput):
    """The nodes' output, each new virtual instant announced by a ``{"vt": t}`` control line."""

    def __init__(self, fd):
        super().__init__(fd)
        self.last_vt = None

    def write_raw(self, text):
        """Write ``text``, preceded by the virtual time when it changed since the last write."""
        vt = clock.wall_time() if clock.is_virtual() else self.last_vt
        if vt != self.last_vt and vt is not None:
            self.last_vt = vt
            super().write_raw(f"{in_process.CONTROL}{json.dumps({'vt': vt})}\n")
        super().write_raw(text)

    def control(self, record):
        """Write one control record (outside the virtual-time bookkeeping: any thread may)."""
        in_process.NodeTaggedOutput.write_raw(self, in_process.CONTROL + json.dumps(record) + "\n")


class _Progress:
    """A daemon OS thread that reports how far the simulation got, once per real second."""

    def __init__(self, out, started):
        from splayc import hub
        self.out = out
        self.started = started
        self.events0 = hub.resumptions()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="splay-sim-progress", daemon=True)

    def figures(self):
        """``{"vt", "events", "real"}``: virtual seconds, threads resumed, real seconds."""
        from splayc import hub
        vt = hub.virtual_time()
        return {"vt": vt if vt is not None else self.out.last_vt or 0.0,
                "events": hub.resumptions() - self.events0,
                "real": clock._REAL_MONOTONIC() - self.started}

    def _loop(self):
        while not self.stopped.wait(PROGRESS_INTERVAL):
            self.out.control({"progress": self.figures()})

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()


class SimHost:
    """What a simulation adds around :func:`splay.launch.in_process.main`."""

    def __init__(self, seed, until):
        self.seed = seed
        self.until = until
        self.out = None
        self.stack = contextlib.ExitStack()

    def output(self, fd):
        """The output object in_process.main writes through (kept for the progress reports)."""
        self.out = SimTaggedOutput(fd)
        return self.out

    def begin(self):
        """Virtual time from 0, real blocking calls refused, one random stream per node."""
        from splayc import hub
        started = clock._REAL_MONOTONIC()
        self.stack.enter_context(clock.virtual_time())
        hub.set_virtual_limit(self.until)
        self.stack.callback(hub.set_virtual_limit, None)
        self.stack.enter_context(blocking.guard())
        # Sockets are simulated from here on, before any node applies its topology (the links
        # then take their loss draws from the run's seed).
        network.install(seed=self.seed)
        self.stack.callback(network.uninstall)
        streams = seeding.NodeStreams(self.seed, lambda node: node.index).install()
        self.stack.callback(streams.uninstall)
        seeding.set_run_seed(self.seed)           # the nodes' udp_drop_ratio draws too
        self.stack.callback(seeding.set_run_seed, None)
        self.progress = _Progress(self, started)

    @property
    def last_vt(self):
        return self.out.last_vt if self.out is not None else None

    def control(self, record):
        self.out.control(record)

    def scheduler(self, real_run):
        """``events.run`` for in_process.main: the run on the virtual clock, then the end record."""
        def run():
            from splayc import hub
            # What the nodes' modules built is mostly there to stay: out of the collector's
            # sight, so that its full collections do not rescan every node's state again and
            # again (without it, 100,000 nodes ran 3x slower per event than 10,000).
            gc.freeze()
            self.progress.start()
            try:
                with deadlock.watch() as stuck:
                    real_run()
            finally:
                self.progress.stop()
                end = {"sim": "end", **self.progress.figures(), "max_rss": _peak_rss(),
                       "until": hub.virtual_limit_reached(),
                       "stuck": [list(entry) for entry in stuck.entries[:STUCK_SHOWN]],
                       "stuck_count": len(stuck.entries)}
                self.stack.close()           # real clock again before the metrics' last sample
                self.out.flush_all()
                self.control(end)
        return run


def _peak_rss():
    """The peak resident memory of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    """Run the simulation of the jobs file; returns the exit status (as in_process.main)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        seed = seeding.parse_seed(os.environ.get(seeding.SEED_ENV, "0"))
        until_text = os.environ.get(UNTIL_ENV)
        until = float(until_text) if until_text else None
    except ValueError as e:
        print(f"splay sim: {e}", file=sys.stderr)
        return 2
    from splay import events
    host = SimHost(seed, until)
    host.begin()
    try:
        return in_process.main(argv, output_class=host.output, scheduler=host.scheduler(events.run))
    finally:
        host.stack.close()


if __name__ == "__main__":
    sys.exit(main())

"""``splay run APP -n N --sim``: the launcher's side of a simulation.

A simulation is an ``--in-process`` run whose host process is :mod:`splay.sim.run_host` (virtual
time, per-node random streams, blocking calls refused) instead of
:mod:`splay.launch.in_process`. :class:`SimLauncher` is the ordinary launcher
(:class:`splay.launch.run_cmd.Launcher`: same options, failure reports, churn notes, metrics,
exit statuses) with these differences:

- the merged log is stamped with virtual time, shown as a date from the epoch in UTC
  (``1970-01-01 00:01:40.000000`` is virtual second 100), taken from the host's ``{"vt": t}``
  control lines; the launcher's notes carry the virtual time of the line before them;
- details of this machine's processes (pids, the open-file limit) stay out of the log, and the
  job reference is ``sim-S`` for seed S, so that the same app, arguments, seed, churn trace and
  topology give a byte-identical log;
- progress (virtual time reached, events per second, speed-up over real time) goes to stderr
  once a real second, and the end of the simulation is summed up there and in the log.
"""
import datetime
import re

import splay

from splay.launch.output import OutputMux
from splay.launch.run_cmd import Launcher

from . import run_host

__all__ = ["SimLauncher", "SimOutputMux", "VirtualLogClock", "host_environment", "job_ref",
           "format_rate", "node_addresses"]

# What the merged log of a simulation leaves out of the launcher's notes: facts about this
# machine's processes, which differ run to run and say nothing about the simulated one.
_PROCESS_DETAILS = re.compile(r", pid \d+|; open-file limit \S+")

_EPOCH = datetime.datetime(1970, 1, 1)


class VirtualLogClock:
    """The merged log's clock in a simulation: the virtual time the host last announced."""

    def __init__(self):
        self.t = 0.0

    def now(self):
        """Virtual seconds of the latest announced instant."""
        return self.t

    @staticmethod
    def format(t):
        """Virtual second ``t`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` from 1970-01-01 00:00 UTC."""
        return (_EPOCH + datetime.timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")


class SimOutputMux(OutputMux):
    """The launcher's output of a simulation: virtual timestamps, no process details in the log."""

    def __init__(self, log_path, **kwargs):
        super().__init__(log_path, clock=VirtualLogClock(), **kwargs)

    def note(self, text, show=True):
        """As :meth:`OutputMux.note`; pids and the open-file limit are left out of the log (they
        differ run to run)."""
        if show and self.notes is not None:
            self._write(self.notes, text + "\n")
        super().note(_PROCESS_DETAILS.sub("", text), show=False)


def node_addresses(n, first_port):
    """The addresses of ``n`` simulated nodes: ``127.0.0.1:first_port+i`` as in a real run while
    the ports last, then the same ports on 127.0.0.2, 127.0.0.3... (a simulation has no real
    sockets, so more nodes than one address has ports fit). None when one address is enough."""
    per_ip = 65536 - first_port
    if n <= per_ip:
        return None
    if n > per_ip * 250:
        raise ValueError(f"{n} nodes from port {first_port} need more than 250 addresses")
    return [splay.Node(f"127.0.0.{1 + i // per_ip}", first_port + i % per_ip) for i in range(n)]


def job_ref(seed):
    """The job reference of a simulation seeded with ``seed`` (the same run after run)."""
    return f"sim-{seed}"


def host_environment(opts):
    """The environment a simulation's host process needs besides the nodes' usual one."""
    env = {"PYTHONHASHSEED": "0"}          # set iteration order: the same run after run
    if opts.until is not None:
        env[run_host.UNTIL_ENV] = repr(float(opts.until))
    return env


def format_rate(x):
    """``x`` with a k/M suffix (``1.2M``), for events per second."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= limit:
            return f"{x / limit:.1f}{suffix}"
    return f"{x:.0f}"


def _speed(figures):
    """``(events per second, virtual seconds per real second)`` of a progress record."""
    real = max(figures.get("real", 0.0), 1e-9)
    return figures.get("events", 0) / real, figures.get("vt", 0.0) / real


class SimLauncher(Launcher):
    """``splay run --sim``: the launcher of an ``--in-process`` run, host and log made virtual."""

    host_module = "splay.sim.run_host"
    mux_class = SimOutputMux

    def __init__(self, opts, **kwargs):
        super().__init__(opts, **kwargs)
        self.sim_end = None

    def host_environment(self):
        """Environment of the host process: fixed hash seed, ``--until``."""
        return host_environment(self.opts)

    def node_addresses(self, n, first_port):
        """More nodes than ports: the next loopback addresses (:func:`node_addresses`)."""
        return node_addresses(n, first_port)

    @staticmethod
    def _name(index):
        return f"node {index}" if isinstance(index, int) else "the simulation's host process"

    def _on_control(self, record):
        """The host's virtual time, progress and end records; the rest as for ``--in-process``."""
        if record.get("sim") == "end":
            self.sim_end = record
            self.mux.clock.t = float(record["vt"])
        elif "progress" in record:
            self._show_progress(record["progress"])
        elif "vt" in record:
            self.mux.clock.t = float(record["vt"])
        else:
            super()._on_control(record)

    def _show_progress(self, figures):
        if self.opts.quiet:
            return
        rate, speedup = _speed(figures)
        self.mux._write(self.stderr, f"[splay] sim: virtual time {figures.get('vt', 0.0):.3f} s, "
                                     f"{format_rate(rate)} events/s, x{speedup:.1f} real time\n")

    def _summary(self, started):
        end = self.sim_end
        if end is not None:
            if end.get("until"):
                how = f"stopped at virtual time {end['vt']:g} s (--until)"
            elif self.exit_status is not None or self.stopping:
                how = f"stopped at virtual time {end['vt']:g} s (the run was stopped)"
            else:
                how = f"ended at virtual time {end['vt']:g} s"
            self.mux.note(f"[splay] simulation {how}; {end['events']} events", show=False)
            if end.get("stuck_count"):
                lines = [f"simulation stuck: {end['stuck_count']} thread(s) blocked with nothing "
                         "left to wake them (no deadline, no message in flight):"]
                lines += [f"  {name} (node {node}) waits at {where}"
                          for name, node, where in end["stuck"]]
                if end["stuck_count"] > len(end["stuck"]):
                    lines.append(f"  ... and {end['stuck_count'] - len(end['stuck'])} more")
                self.mux.note("\n".join(lines), show=not self.opts.quiet)
            if not self.opts.quiet:
                rate, speedup = _speed(end)
                self.mux._write(self.stderr, f"[splay] simulation {how} in {end['real']:.2f} s of real "
                                             f"time: {end['events']} events, {format_rate(rate)} "
                                             f"events/s, x{speedup:.1f} real time; peak memory "
                                             f"{end.get('max_rss', 0) / 2**20:.0f} MiB\n")
        super()._summary(started)


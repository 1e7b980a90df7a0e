"""``splay run --in-process --workers K``: the N nodes of a run spread over K processes.

Each worker is a process running :mod:`splay.launch.workers_host`: some of the nodes over a
scheduler of its own, exactly as a one-process ``--in-process`` run hosts all of them. Node ``i``
goes to worker ``i % K`` (round robin: a protocol whose nodes act by position, such as Chord's
join waves, loads every worker alike). Nodes reach each other over real loopback sockets,
whichever worker hosts them.

Addresses: node ``i`` is ``127.0.0.1:FIRST_PORT+i`` while the ports stay below the kernel's
ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``: a port the kernel may hand to an
outgoing connection could be taken when a node wants to listen on it). Beyond, the nodes go on
on ``127.0.0.2``, ``127.0.0.3``, ... from ``FIRST_PORT`` again (:func:`node_addresses`); on
Linux every address of ``127.0.0.0/8`` is the machine's own. In such a run a server a node opens
on "every interface" listens on the node's own address (:data:`splay.node.wildcard_is_own_address`).

Churn and faults (``--churn TRACE``, ``--faults FILE``) act on the worker that holds each node:
worker ``w`` gets the trace's times of its own nodes only (the others are never up in its copy)
and every worker replays its share from one common t = 0, which the launcher gives once every
worker is ready (:meth:`Workers.on_control`); each worker applies every fault of the timeline to
its own nodes, on the timeline's common epoch. The nodes file that ``job.nodes()`` reads is
written by the launcher from the workers' reports of the nodes they started and stopped, so every
node of every worker sees the nodes up in the whole run.

The launcher (:mod:`splay.launch.run_cmd`) treats the workers as it treats the one host process
of ``--in-process``: their output is demultiplexed by node and merged in write order
(:mod:`splay.launch.workers_output`), a node failure is reported by its worker, the run ends when
every worker has ended. A worker that ends otherwise (killed, crashed) takes its nodes with it:
:meth:`Workers.on_exit` stops the run and names the nodes lost.
"""
import json
import os
import time

import splay
from splay.churn.trace import Schedule

from . import churn_replay, in_process
from .processes import NodeProcess, describe_status
from .workers_host import OWN_ADDRESS_ENV

__all__ = ["Workers", "default_workers", "node_addresses", "ports_per_address", "check"]

#: Where the kernel's ephemeral ports are set.
PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def default_workers():
    """The default K of ``--workers``: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ephemeral_low():
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        with open(PORT_RANGE_FILE, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def ports_per_address(first_port):
    """How many nodes fit on one loopback address from ``first_port``: up to the ephemeral
    range when ``first_port`` is below it, else up to 65535."""
    low = ephemeral_low()
    return (low if first_port < low else 65536) - first_port


def node_addresses(n, first_port, per_address=None):
    """The addresses of ``n`` nodes: ``per_address`` ports from ``first_port`` on ``127.0.0.1``,
    the next ones on ``127.0.0.2``, and so on (``per_address``: :func:`ports_per_address`)."""
    per = ports_per_address(first_port) if per_address is None else per_address
    if per < 1:
        raise ValueError(f"no port from {first_port} is free for nodes")
    addresses = -(-n // per)
    if addresses > 254:
        raise ValueError(f"{n} nodes at {per} ports per address need {addresses} loopback "
                         "addresses, more than 127.0.0.1-127.0.0.254: use fewer nodes")
    return [splay.Node(f"127.0.0.{1 + i // per}", first_port + i % per) for i in range(n)]


def check(workers, nodes, in_proc):
    """The error message of a bad ``--workers`` (None when it is good): K must be at least 1,
    at most the number of nodes, and goes with ``--in-process``."""
    if workers is None:
        return None
    if not in_proc:
        return ("--workers K spreads the nodes of an --in-process run over K processes; without "
                "--in-process every node is already a process of its own: add --in-process or "
                "drop --workers")
    if workers < 1:
        return f"--workers must be at least 1 (1: every node in one process), got {workers}"
    if workers > nodes:
        return (f"--workers {workers} is more workers than the {nodes} node(s): a worker would "
                f"have no node; use --workers {nodes} or fewer")
    return None


class Workers:
    """The K worker processes of a run and the nodes each one hosts."""

    def __init__(self, count, plan, command, env, tmpdir, watchdog, schedule=None, churn_speed=1.0):
        self.count = count
        self.plan = plan
        self.nodes_of = {}                # worker index ("worker w") -> node positions
        self.procs = []
        n = len(plan.nodes)
        # The nodes up now, for the nodes file: all of them, or under churn none before t = 0.
        self.alive = set(range(n)) if schedule is None else set()
        self.ready = 0                    # under churn: how many workers wait for t = 0
        several = len({node.ip for node in plan.nodes}) > 1
        for w in range(count):
            positions = list(range(w, n, count))
            jobs_path = os.path.join(tmpdir, f"jobs-{w}.json")
            with open(jobs_path, "w", encoding="utf-8") as f:
                json.dump([plan.job(i).to_dict() for i in positions], f)
            worker_env = dict(env, **{in_process.JOBS_ENV: jobs_path,
                                      OWN_ADDRESS_ENV: "1" if several else "0"})
            if schedule is not None:
                churn_path = os.path.join(tmpdir, f"churn-{w}.json")
                churn_replay.write_churn_file(churn_path, share_of(schedule, positions), churn_speed)
                worker_env[churn_replay.CHURN_ENV] = churn_path
            # Under churn the worker reads its t = 0 on its stdin (gated: a pipe, not /dev/null).
            proc = NodeProcess(f"worker {w}", lambda: None, command, worker_env, watchdog=watchdog,
                               gated=schedule is not None)
            proc.node_indexes = positions
            self.nodes_of[proc.index] = positions
            self.procs.append(proc)

    def describe(self):
        """A note for the log: the workers, their nodes and the nodes' addresses."""
        first, last = self.plan.nodes[0], self.plan.nodes[-1]
        return (f"{self.count} worker processes, node i on worker i % {self.count}; nodes at "
                f"{first.ip}:{first.port} to {last.ip}:{last.port}")

    def on_control(self, launcher, record):
        """A worker's control line about churn or the nodes up: ``{"churn": "ready"}`` (once
        every worker is ready, each gets the common t = 0) or ``{"alive": {"up", "down"}}`` (the
        nodes file follows, as :meth:`Launcher.write_nodes_file` says). Returns True when the record was one of those."""
        if record.get("churn") == "ready":
            self.ready += 1
            if self.ready == self.count:
                self.start_replay()
            return True
        alive = record.get("alive")
        if not isinstance(alive, dict):
            return False
        positions = range(len(self.plan.nodes))
        self.alive.update(i for i in alive.get("up", ()) if type(i) is int and i in positions)
        self.alive.difference_update(alive.get("down", ()))
        launcher.nodes_file.changed(self.alive_nodes)
        return True

    def alive_nodes(self):
        """The nodes up in the whole run (every worker's), in position order."""
        return [self.plan.nodes[i] for i in sorted(self.alive)]

    def start_replay(self):
        """Give every worker the churn replay's t = 0: now, on the machine's monotonic clock."""
        line = f"go {time.monotonic_ns()}\n".encode()
        for proc in self.procs:
            gate, proc.gate = proc.gate, None
            if gate is None or proc.state != "running":
                continue
            try:
                gate.write(line)
                gate.flush()
            except OSError:            # it died while waiting: its end is reported as usual
                pass
            finally:
                try:
                    gate.close()
                except OSError:
                    pass

    def owns(self, index):
        """True when ``index`` names one of the workers."""
        return index in self.nodes_of

    def on_exit(self, launcher, proc, rc):
        """Worker ``proc`` ended with ``rc``: note it, or, when it ended without the run asking
        and not through its nodes (status 0, or 1 after a node failure it reported), stop the
        run naming the nodes it took with it. Returns True (the end is handled)."""
        positions = self.nodes_of[proc.index]
        own_failures = set(positions).intersection(i for i in launcher.failed if isinstance(i, int))
        if proc.stop_requested or rc == 0 or (rc == 1 and own_failures):
            how = "stopped" if proc.stop_requested else "ended"
            launcher.mux.note(f"{proc.index} ({len(positions)} node(s)) {how}: {describe_status(rc)}",
                              show=False)
            return True
        lost = [i for i in positions if i not in own_failures]
        launcher.failed.extend(lost)
        launcher._report_failure(proc.index, describe_status(rc))
        launcher._stop_all(f"{proc.index} (pid {proc.pid}) died: {describe_status(rc)}; "
                           f"its {len(lost)} node(s) are lost ({format_positions(lost)}): "
                           "stopping all nodes")
        return True

    def summary(self, started, n):
        """The summary's first part: how the nodes ran."""
        return f"{n if started else 0}/{n} node(s) ran in {self.count} worker processes"


def share_of(schedule, positions):
    """``schedule`` with only the nodes at ``positions`` ever up (a worker's part of a trace)."""
    mine = set(positions)
    return Schedule([schedule.times(i) if i in mine else () for i in range(schedule.nodes)])


def format_positions(positions, limit=20):
    """``0, 2, 4, ...`` for a note: the first ``limit`` positions, then how many more."""
    shown = ", ".join(f"node {i}" for i in positions[:limit])
    more = len(positions) - limit
    return shown + (f" and {more} more" if more > 0 else "")

"""A pytest plugin for testing SPLAY applications: the ``splay_cluster`` fixture.

Installed with pysplay (entry point ``pytest11``), so a test only asks for the fixture::

    def test_ring(splay_cluster):
        cluster = splay_cluster("examples/chord.py", n=8, args=["demo=0"])
        cluster.wait_until(lambda: cluster.call(1, "predecessor"), timeout=60)  # its variable
        assert cluster.call(0, "find_successor", 0)[0]["id"] >= 0               # a function

``splay_cluster(app, n=5, mode="processes", args=(), partitions=())`` starts ``n`` nodes of
``app`` (a file, a directory or a zip archive, as ``splay run`` takes) on free loopback ports
and returns a :class:`Cluster`: the nodes' ``addresses``, RPC calls into any node
(:meth:`Cluster.call`), each node's output lines (:meth:`Cluster.logs`,
:meth:`Cluster.wait_for_log`), :meth:`Cluster.wait_until` for a condition of the test's own,
:meth:`Cluster.kill` and :meth:`Cluster.restart` of a node, and partitions on a schedule
(``partitions=["0,1|2,3@5-10"]``, the syntax of ``splay run --partition``, seconds counted from
the cluster's start). ``mode="in-process"`` hosts every node in one process (``splay run
--in-process``): kill and restart are then refused. Every process the fixture started is killed
when the test ends, passes or fails or times out; a process whose test session dies is killed by
the kernel (parent-death signal). docs/testing.md has a complete example.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from splay import app_files
from splay.job import ENV_VAR

# The launcher's modules (and the compiled core) are imported when a cluster starts, not when
# pytest loads this plugin in every session of an environment where pysplay is installed.

MODES = ("processes", "in-process")


class ClusterError(Exception):
    """The cluster cannot do what the test asked; the message says why."""


def free_ports(count, rng=random):
    """A first port such that ``count`` consecutive loopback ports are free now (TCP and UDP)."""
    for _ in range(200):
        first = rng.randrange(20000, 60000 - count)
        sockets = []
        try:
            for port in range(first, first + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    sockets.append(s)
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise ClusterError(f"found no {count} consecutive free loopback ports")


def call_node(address, name, args, timeout):
    """``rpc.call(address, [name, *args])`` from ordinary (non-SPLAY) code; raises ClusterError
    when the node does not answer within ``timeout`` seconds."""
    from splay import events, rpc
    outcome = {}

    def main():
        try:
            outcome["ok"], outcome["value"] = rpc.acall(address, [name, *args], timeout)
        except BaseException as e:           # handed to the test, outside the scheduler
            outcome["error"] = e
        finally:
            events.exit()
    events.run(main)
    if "error" in outcome:
        raise outcome["error"]
    if not outcome["ok"]:
        raise ClusterError(f"node {address['ip']}:{address['port']} did not answer "
                           f"{name}({', '.join(map(repr, args))}): {outcome['value']}")
    results = outcome["value"]         # as rpc.call: one value, a tuple for several, None for none
    return results[0] if len(results) == 1 else (tuple(results) if results else None)


class Cluster:
    """N nodes of one application on loopback, started by :func:`splay_cluster`."""

    def __init__(self, app, n=5, mode="processes", args=(), partitions=(), workdir=None):
        if mode not in MODES:
            raise ClusterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if n < 1:
            raise ClusterError(f"a cluster needs at least one node, got n={n}")
        origin = os.path.abspath(app)
        try:
            files = app_files.load(origin)
        except app_files.AppError as e:
            raise ClusterError(str(e)) from None
        self.workdir = workdir or tempfile.mkdtemp(prefix="splay-cluster-")
        os.makedirs(self.workdir, exist_ok=True)
        self.app = os.path.join(origin, app_files.MAIN) if os.path.isdir(origin) else origin
        if not os.path.isdir(origin) and files.main == app_files.MAIN:       # a zip archive
            self.app = app_files.unpack(files, os.path.join(self.workdir, "app"))
        self.mode, self.args, self.n = mode, [str(a) for a in args], n
        settings = None
        if partitions:
            from splay.emulation import parse_partition
            specs = [parse_partition(p) for p in partitions]
            settings = {"topology_nodes": n, "partition_epoch": time.time(),
                        "partitions": [s.as_dict() for s in specs]}
        from splay.launch.processes import NodesFile, node_environment
        from splay.launch.run_cmd import JobPlan
        self.plan = JobPlan(n, free_ports(n), name=os.path.basename(origin), settings=settings,
                            nodes_file=os.path.join(self.workdir, "nodes.json"),
                            inline_limit=0 if mode == "in-process" else 1000)
        NodesFile(self.plan.nodes_file).write(self.plan.nodes)
        self.env = node_environment()
        self.lines = [[] for _ in range(n)]
        self.changed = threading.Condition()
        self.procs = [None] * (1 if mode == "in-process" else n)
        for i in range(len(self.procs)):
            self._start(i)

    # -- what the test sees ----------------------------------------------------------------
    @property
    def addresses(self):
        """The nodes' addresses, ``{"ip": ..., "port": ...}`` by position."""
        return [{"ip": node.ip, "port": node.port} for node in self.plan.nodes]

    def call(self, i, name, *args, timeout=10.0):
        """Call ``name(*args)`` on node ``i`` over RPC (a function, or a variable's value, of the
        application) and return its result; ClusterError when the node does not answer."""
        return call_node(self.addresses[i], name, args, timeout)

    def logs(self, i):
        """The output lines of node ``i`` so far (stdout and stderr, in order)."""
        with self.changed:
            return list(self.lines[i])

    def wait_for_log(self, i, pattern, timeout=30.0):
        """Wait until a line of node ``i`` matches the regular expression ``pattern``; returns
        the match. Raises ClusterError after ``timeout`` seconds, with the node's last lines."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self.changed:
            while True:
                for line in self.lines[i][seen:]:
                    found = regex.search(line)
                    if found:
                        return found
                seen = len(self.lines[i])
                left = deadline - time.monotonic()
                if left <= 0:
                    last = "\n".join(self.lines[i][-10:]) or "(no output)"
                    raise ClusterError(f"no line of node {i} matched {pattern!r} within "
                                       f"{timeout:g} s; its last lines:\n{last}")
                self.changed.wait(left)

    def wait_until(self, condition, timeout=30.0, period=0.2):
        """Call ``condition()`` every ``period`` seconds until it returns a true value, which is
        returned; a node that does not answer yet (ClusterError) counts as false. Raises
        ClusterError after ``timeout`` seconds, with the last error if there was one."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                value = condition()
                if value:
                    return value
            except ClusterError as e:
                last_error = e
            if time.monotonic() > deadline:
                raise ClusterError(f"the condition did not hold within {timeout:g} s"
                                   + (f" (last error: {last_error})" if last_error else ""))
            time.sleep(period)

    def alive(self, i):
        """Whether node ``i``'s process runs."""
        proc = self.procs[0 if self.mode == "in-process" else i]
        return proc is not None and proc.poll() is None

    def wait(self, timeout=30.0):
        """Wait until every process of the cluster ended (the nodes stopped by themselves);
        returns their exit statuses (one per node, or the one host process of "in-process").
        Raises ClusterError after ``timeout`` seconds naming those still running."""
        deadline = time.monotonic() + timeout
        for index, proc in enumerate(self.procs):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise ClusterError(f"{'the host process' if self.mode == 'in-process' else f'node {index}'}"
                                   f" still runs after {timeout:g} s") from None
        return [proc.returncode for proc in self.procs]

    def kill(self, i):
        """Kill node ``i`` at once (SIGKILL), as a crash would."""
        self._own_process(i, "kill")
        proc = self.procs[i]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, i):
        """Start node ``i`` again (killing it first if it still runs), with the same address."""
        self._own_process(i, "restart")
        if self.alive(i):
            self.kill(i)
        self._start(i)

    def stop(self):
        """Kill every process of the cluster (what the fixture does when the test ends)."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            if proc is not None:
                proc.wait()

    # -- processes -------------------------------------------------------------------------
    def _own_process(self, i, what):
        if self.mode == "in-process":
            raise ClusterError(f"cannot {what} one node of an in-process cluster (every node "
                               "shares one process): start it with mode=\"processes\"")
        if not 0 <= i < self.n:
            raise ClusterError(f"no node {i}: the cluster has nodes 0 to {self.n - 1}")

    def _start(self, i):
        from splay.launch import in_process
        from splay.launch.processes import _die_with_parent
        env = dict(self.env)
        if self.mode == "in-process":
            jobs = os.path.join(self.workdir, "jobs.json")
            with open(jobs, "w") as f:
                json.dump([self.plan.job(k).to_dict() for k in range(self.n)], f)
            env[in_process.JOBS_ENV] = jobs
            runner = "splay.launch.in_process"
        else:
            env[ENV_VAR] = self.plan.job(i).to_json()
            runner = "splay.launch.node"
        proc = subprocess.Popen([sys.executable, "-m", runner, self.app, *self.args], env=env,
                                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent(os.getpid()))
        self.procs[i] = proc
        threading.Thread(target=self._read, args=(proc, i), daemon=True).start()

    def _read(self, proc, i):
        from splay.launch.in_process import RECORD, UNIT
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            node = i
            if self.mode == "in-process":
                if not line.startswith(RECORD):
                    continue
                tag, _, line = line[len(RECORD):].partition(UNIT)
                node = int(tag)
            with self.changed:
                self.lines[node].append(line)
                self.changed.notify_all()
        proc.stdout.close()


@pytest.fixture
def splay_cluster(tmp_path):
    """A factory of clusters: ``splay_cluster(app, n=5, mode="processes", args=(),
    partitions=())`` returns a started :class:`Cluster`; every cluster is stopped when the test
    ends, however it ends."""
    clusters = []

    def start(app, n=5, mode="processes", args=(), partitions=()):
        cluster = Cluster(app, n, mode, args, partitions,
                          workdir=str(tmp_path / f"splay-cluster-{len(clusters)}"))
        clusters.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()

"""Node processes of ``splay run``: start, stop, reap -- and never leave one behind.

Each node runs as ``python -m splay.launch.node APP.py ...`` with its job in ``SPLAY_JOB``, in its own
session and process group (so a terminal's Ctrl-C reaches only the launcher, which then stops every
node's whole group), and with ``PR_SET_PDEATHSIG`` = SIGKILL, so that even ``kill -9`` of the launcher
takes every node down with it.

:class:`NodeProcess` is one node that can be started and stopped at any time (churn replays will
drive it); :class:`NodesFile` is the file of alive nodes that ``job.nodes()`` re-reads.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import splay
from splay.job import ENV_VAR
from splay.sandbox.environ import job_environment

__all__ = ["NodeProcess", "NodesFile", "Watchdog", "node_environment", "describe_status"]

_PR_SET_PDEATHSIG = 1


def _load_prctl():
    """The core's ``prctl`` (``splayc.syscalls``, no ctypes), or ``None`` where there is none
    (non-Linux systems)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        from splayc.syscalls import prctl
    except ImportError:
        return None
    return prctl


# Loaded once in the launcher: the child between fork and exec must not load libraries.
_prctl = _load_prctl()


def _die_with_parent(parent_pid, niceness=None):
    """A ``preexec_fn``: the child gets SIGKILL when the launcher dies, however it dies.

    With ``niceness``, the child also gets that scheduling priority (a churn replay raises the
    launcher's own priority; its nodes keep the user's).
    """
    def preexec():
        if niceness is not None:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The launcher may have died between fork and prctl; the signal would then never come.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
    return preexec


def _source_dirs():
    """Directories that hold ``splay`` and ``splayc`` when they run from a source checkout."""
    dirs = []
    modules = [splay]
    try:
        import splayc
        modules.append(splayc)
    except ImportError:
        pass
    for mod in modules:
        d = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
        if os.path.basename(d) not in ("site-packages", "dist-packages") and d not in dirs:
            dirs.append(d)
    return dirs


def node_environment(base=None):
    """The environment of node processes: ``base`` (default ``os.environ``) plus what nodes need.

    Only the allowed variables of ``base`` (:func:`splay.sandbox.environ.job_environment`),
    output unbuffered (so lines reach the launcher when printed, in order, with a true
    timestamp), and ``splay`` importable from the same place as in the launcher.
    """
    env = job_environment(os.environ if base is None else base)     # no launcher secrets (SPLAY_TOKEN...)
    env.pop(ENV_VAR, None)
    env["PYTHONUNBUFFERED"] = "1"
    path = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    path += [d for d in _source_dirs() if d not in path]
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def describe_status(returncode):
    """A returncode in words: ``"exited with status 1"``, ``"killed by signal SIGSEGV"``."""
    if returncode is None:
        return "is still running"
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"killed by signal {name}"


class NodeProcess:
    """Node ``index`` of a local run, as an OS process that can be started and stopped.

    ``make_job()`` is called at each :meth:`start` to get the node's :class:`splay.job.Job` (the
    process of ``--in-process`` runs, which hosts every node, has ``make_job`` return ``None``).
    After :meth:`start`, ``stdout`` is the read end of the pipe that carries the node's stdout and
    stderr, and ``exit_fd`` a descriptor that becomes readable when the process ends (a pidfd;
    ``None`` where the system has none: then call :meth:`poll`). :meth:`reap` collects the end.

    A ``gated`` node's command waits for a go line on its stdin before it runs the application
    (``python -m splay.launch.churn_replay``, used by churn replays): the process is created ahead
    of time, and :meth:`release` lets it run at the exact moment, without the cost of a fork.
    """

    def __init__(self, index, make_job, command, env, cwd=None, watchdog=None, gated=False):
        self.index = index
        self.watchdog = watchdog
        self.make_job = make_job
        self.command = list(command)
        self.env = env
        self.cwd = cwd
        self.gated = gated
        self.gate = None             # the write end of a gated node's stdin until released
        self.niceness = None         # the node's scheduling priority (None: the launcher's)
        self.popen = None
        self.stdout = None
        self.exit_fd = None
        self.returncode = None
        self.stop_requested = False
        self.started_at = None
        self.ended_at = None
        self.collect_metrics = False  # give the process a metrics pipe (splay.observatory.sampler)
        self.metrics_fd = None        # the launcher's (read) end of it while the process runs
        self.fork_server = None       # a started ForkServer: the process comes from it (faster)

    @property
    def state(self):
        """``"pending"`` (never started), ``"running"`` or ``"ended"``."""
        if self.popen is None:
            return "pending"
        return "running" if self.returncode is None else "ended"

    @property
    def pid(self):
        """The process id while started, else ``None``."""
        return None if self.popen is None else self.popen.pid

    def start(self):
        """Start (or restart, once ended) the node's process."""
        if self.state == "running":
            raise RuntimeError(f"node {self.index} is already running (pid {self.pid})")
        env = dict(self.env)
        job = self.make_job()
        if job is not None:         # None: a process that hosts several nodes (--in-process)
            env[ENV_VAR] = job.to_json()
        pass_fds = ()
        if self.collect_metrics:
            from splay.observatory.sampler import METRICS_FD_ENV
            self.metrics_fd, write_end = os.pipe()
            os.set_blocking(self.metrics_fd, False)
            env[METRICS_FD_ENV] = str(write_end)
            pass_fds = (write_end,)
        try:
            self.popen = self._start_process(env, pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)
        if self.watchdog is not None:
            self.watchdog.watch(self.popen.pid)
        self.stdout = self.popen.stdout.fileno()
        os.set_blocking(self.stdout, False)
        self.gate = self.popen.stdin
        self.returncode = None
        self.stop_requested = False
        self.started_at, self.ended_at = time.monotonic(), None
        try:
            self.exit_fd = os.pidfd_open(self.popen.pid)
        except (AttributeError, OSError):
            self.exit_fd = None

    def _start_process(self, env, pass_fds):
        """From the fork server when there is one and it can start this command (much faster:
        see :mod:`splay.launch.fork_server`), else a new interpreter."""
        from .fork_server import ForkServerError, forkable
        server = self.fork_server
        target = forkable(self.command, server.python) if server is not None else None
        if target is not None:
            fd_env = {}
            if pass_fds:
                from splay.observatory.sampler import METRICS_FD_ENV
                fd_env[METRICS_FD_ENV] = pass_fds[0]
            try:
                return server.spawn(target[0], target[1], env, cwd=self.cwd, stdin=self.gated,
                                    fd_env=fd_env, niceness=self.niceness)
            except ForkServerError as e:
                self.fork_server = None          # this node starts plain processes from now on
                sys.stderr.write(f"splay run: {e}; node {self.index} starts a new interpreter\n")
        return subprocess.Popen(
            self.command, env=env, cwd=self.cwd, stdin=subprocess.PIPE if self.gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent(os.getpid(), self.niceness),
            close_fds=True, pass_fds=pass_fds)

    def release(self):
        """Let a gated node run its application now (``False`` if it was not waiting)."""
        gate, self.gate = self.gate, None
        if gate is None or self.state != "running":
            return False
        try:
            gate.write(b"go\n")
            gate.close()
        except OSError:             # it died while waiting: its end is reported as usual
            return False
        return True

    def _close_gate(self):
        gate, self.gate = self.gate, None
        if gate is not None:
            try:
                gate.close()
            except OSError:
                pass

    def signal_group(self, sig):
        """Send ``sig`` to the node's whole process group (the node and what it started)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        """Ask the node to end (SIGTERM to its group); :meth:`kill` if it does not."""
        if self.state == "running":
            self.stop_requested = True
            self.signal_group(signal.SIGTERM)

    def kill(self):
        """End the node now (SIGKILL to its group)."""
        if self.state == "running":
            self.stop_requested = True
            self.signal_group(signal.SIGKILL)

    def poll(self):
        """``True`` once the process has ended (it is then ready for :meth:`reap`)."""
        if self.state != "running":
            return self.state == "ended"
        try:
            # WNOWAIT: only look; reap() collects the status after killing the group.
            ended = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return ended is not None

    def reap(self):
        """Collect the ended process: kill what it left in its group, record its returncode.

        Returns the returncode. Call once the process has ended (``exit_fd`` readable or
        :meth:`poll` true). The group is killed before the process is reaped, while its pid (the
        group id) cannot yet be reused by another process.
        """
        self.signal_group(signal.SIGKILL)
        self._close_gate()
        self.returncode = self.popen.wait()
        if self.watchdog is not None:
            self.watchdog.forget(self.popen.pid)
        self.ended_at = time.monotonic()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        return self.returncode

    def close_output(self):
        """Close the launcher's end of the node's output pipe."""
        if self.popen is not None and self.popen.stdout is not None and not self.popen.stdout.closed:
            self.popen.stdout.close()
        self.stdout = None

    @property
    def failed(self):
        """``True`` when the node ended badly on its own (not because the launcher stopped it)."""
        rc = self.returncode
        if rc is None or rc == 0:
            return False
        if self.stop_requested and rc in (-signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM):
            return False
        return True


class Watchdog:
    """A small process that kills every node's group if the launcher dies, however it dies.

    PR_SET_PDEATHSIG ends the nodes themselves when the launcher dies, but not the processes the
    nodes started. The watchdog, forked before any node starts and living in its own session,
    learns each node's process group through a pipe and, when the pipe reaches end of file (the
    launcher ended, even by SIGKILL), sends SIGKILL to every group still registered, then exits.
    """

    def __init__(self):
        read_end, self._write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                    # the watchdog
            try:
                os.close(self._write_end)
                self._watch(read_end)
            finally:
                os._exit(0)
        os.close(read_end)
        os.set_inheritable(self._write_end, False)

    @staticmethod
    def _watch(read_end):
        os.setsid()                          # a terminal's Ctrl-C must not end the watchdog
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        # Keep no terminal, pipe or file of the launcher open: whoever reads the launcher's
        # output must see its end when the launcher ends.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in range(3):
            os.dup2(null, fd)
        os.closerange(3, read_end)
        os.closerange(read_end + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        groups = set()
        buf = b""
        while True:
            try:
                chunk = os.read(read_end, 4096)
            except InterruptedError:
                continue
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"+"):
                    groups.add(int(line[1:]))
                elif line.startswith(b"-"):
                    groups.discard(int(line[1:]))
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass

    def _send(self, text):
        try:
            os.write(self._write_end, text.encode())
        except OSError:
            pass

    def watch(self, pgid):
        """Kill group ``pgid`` if the launcher dies (until :meth:`forget` is called)."""
        self._send(f"+{pgid}\n")

    def forget(self, pgid):
        """Group ``pgid`` is gone (its leader was reaped): never kill it."""
        self._send(f"-{pgid}\n")

    def close(self):
        """The launcher ends normally: let the watchdog exit and reap it."""
        if self._write_end is not None:
            os.close(self._write_end)
            self._write_end = None
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


class NodesFile:
    """The JSON file of the nodes alive now, rewritten atomically (temporary file + rename).

    Jobs carry its path as ``nodes_file``; :meth:`splay.job.Job.nodes` re-reads it when it changes.
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def write(self, nodes):
        """Replace the file's content with ``nodes`` (a list of nodes) in one atomic step."""
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".nodes-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # dumps, not dump: dump streams through the pure-Python encoder, which made the
                # rewrite at each node's exit cost O(N) slow steps (1,000 nodes: seconds in all).
                f.write(json.dumps([{"ip": n[0], "port": n[1]} for n in nodes], separators=(",", ":")))
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

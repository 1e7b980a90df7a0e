"""``splay run APP.py -n N``: run N nodes of an application on this machine, one process each.

Node ``i`` gets the job of ``127.0.0.1:FIRST_PORT+i`` (position ``i``, 0-based) through
``SPLAY_JOB`` and runs under :mod:`splay.launch.node`. The launcher shows start-up progress,
echoes every node line as ``[node i] ...``, writes one merged time-ordered log, reports each node
that fails (exit status and the tail of its output) and ends when every node has ended.
Ctrl-C, SIGTERM, SIGHUP and ``--time-limit`` stop every node (SIGTERM to each node's process group,
SIGKILL after ``--grace`` seconds); nodes die with the launcher even on ``kill -9``.
With ``--churn TRACE`` the nodes start and stop when the trace says (:mod:`splay.launch.churn_replay`).

Exit status: 0 when every node ended well, 1 when one failed, 2 on a command-line error,
130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP.
"""
import functools
import json
import os
import random
import secrets
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import zipfile

from splay import app_files
from splay.job import Job
from splay.sim import seeding
from splay.utils import local_nodes

from . import churn_replay, in_process, options, workers
from .output import OutputMux
from .workers_output import WorkersMux
from .membership_file import MembershipFile
from .processes import NodeProcess, Watchdog, describe_status, node_environment
from .fd_limits import for_run, raise_to_hard
from .progress import Progress
from .run_metrics import LocalMetrics

__all__ = ["main", "Launcher", "JobPlan"]

# The index of the process that hosts every node with --in-process (nodes have integer indexes).
HOST = "host"

# The launcher's exit status when a signal made it stop the nodes (128 + signal number).
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}

# With --stagger 0, nodes are started in batches of this size, with a look at output and signals
# between two batches, so that a Ctrl-C during the start of thousands of nodes acts at once.
START_BATCH = 8

# A node list longer than this many nodes is left out of SPLAY_JOB: the node reads it from the
# nodes file instead (which job.nodes() re-reads anyway). Inline, the list cost every node start
# O(N) -- the launcher encoding it, the fork server and the node decoding it: 1,000 nodes, 2 ms
# of CPU per node -- and SPLAY_JOB must fit in one environment string (Linux: 128 KiB).
MAX_INLINE_NODES = 256

# Without pidfds (old kernels), ended nodes are found by polling at this interval.
POLL_INTERVAL = 0.1



def sandbox_read_paths(app):
    """What a sandboxed node may read besides its own directory and the Python installation.

    The one place these are decided. ``app`` is the main file of the application's unpacked copy
    in the run's own temporary directory (splay.app_files: the file and the modules it imports,
    or the shipped tree): the nodes read that copy, never the directory the user's file lives
    in (which may be a home directory with keys and tokens, or hold other nodes' files).
    """
    return [os.path.dirname(os.path.realpath(app))]


class JobPlan:
    """The jobs of one run: node ``i`` is ``127.0.0.1:first_port + i``, position ``i``."""

    def __init__(self, nb_nodes, first_port, list_size=None, random_list=False, name="local",
                 ref=None, nodes_file=None, node_dirs=None, sandbox=None, inline_limit=MAX_INLINE_NODES,
                 settings=None, addresses=None, list_seed=None):
        # addresses: the nodes' (ip, port)s when not 127.0.0.1:first_port+i (see node_addresses)
        self.nodes = addresses or local_nodes(nb_nodes, first_port)
        self.inline_limit = inline_limit
        self.list_size = list_size
        self.random_list = random_list
        self.name = name
        self.ref = ref or f"run-{secrets.token_hex(4)}"
        self.nodes_file = nodes_file
        self.node_dirs = node_dirs
        self.sandbox = sandbox
        self.settings = settings
        self._rng = random.Random(list_seed)        # None: different lists each run

    def node_dir(self, i):
        """Working directory of node ``i`` (``None`` when nodes share the launcher's)."""
        return None if self.node_dirs is None else os.path.join(self.node_dirs, f"node-{i}")

    def view(self, i):
        """The list node ``i`` starts with: head (first K nodes) or random (K others)."""
        k = self.list_size
        if not self.random_list:
            return self.nodes if k is None else self.nodes[:k]
        others = self.nodes[:i] + self.nodes[i + 1:]
        if k is None or k >= len(others):
            return others
        return self._rng.sample(others, k)

    def job(self, i):
        """The :class:`splay.job.Job` of node ``i``."""
        view = self.view(i)
        if self.nodes_file is not None and len(view) > self.inline_limit:
            view = []   # too long to pass inline: job.nodes() reads the nodes file
        return Job(me=self.nodes[i], position=i, nodes=view,
                   list_type="random" if self.random_list else "head", ref=self.ref, name=self.name,
                   list_size=self.list_size, nodes_file=self.nodes_file, dir=self.node_dir(i),
                   sandbox=self.sandbox, settings=self.settings)


class Launcher:
    """One ``splay run``: starts the nodes, pumps their output, stops them, reports."""

    # The module of the process hosting every node with --in-process (--sim: splay.sim.run_host)
    # and the merger of the nodes' output into the log (--sim: virtual timestamps).
    host_module = "splay.launch.in_process"
    mux_class = OutputMux

    def host_environment(self):
        """Environment the --in-process host needs besides the nodes' usual one."""
        return {}

    def node_addresses(self, n, first_port):
        """The nodes' addresses, or None for 127.0.0.1:first_port+i (--sim: more nodes than ports)."""
        return None

    def __init__(self, opts, stdout=None, stderr=None, fd_limit=None):
        self.opts = opts
        self.fd_limit = fd_limit
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.procs = []
        self.failed = []
        self.stopping = False
        self.exit_status = None      # set when a signal stopped the run
        self.kill_at = None          # when nodes still alive after a stop get SIGKILL
        self.pending_signals = []
        self.mux = None
        self.sel = None
        self.churn = None            # the churn replay of --churn runs
        self.metrics = None          # the run's observatory (splay.launch.run_metrics)
        self.faults = None           # the launcher's side of --faults (splay.faults.local)
        self.fork_server = None      # process-per-node: nodes are forked from it (fork_server.py)
        self.workers = None          # --in-process --workers K>1: the K worker processes (workers.py)

    # -- the run -----------------------------------------------------------------------------

    def run(self):
        """Run every node to its end; returns the exit status of ``splay run``."""
        # Forked first, while the launcher has nothing else open and no signal handlers.
        self.watchdog = Watchdog()
        tmpdir = tempfile.mkdtemp(prefix="splay-run-")
        saved = self._install_signal_handlers()
        try:
            return self._run(tmpdir)
        finally:
            self._kill_everything()
            self.watchdog.close()
            if self.fork_server is not None:
                self.fork_server.close()
                stop_being_a_subreaper()
            self._restore_signal_handlers(saved)
            if self.mux is not None:
                self.mux.close()
                self._write_history()
            if self.sel is not None:
                self.sel.close()
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _write_history(self):
        # The nodes' [history] records (splay.history), gathered from the merged log into
        # history.jsonl beside it, ready for `splay check MODEL history.jsonl`.
        from splay.history import extract, write_jsonl
        path = os.path.join(os.path.dirname(self.opts.log), "history.jsonl")
        try:
            with open(self.opts.log, encoding="utf-8", errors="replace") as f:
                records = extract(f)
        except (OSError, ValueError) as e:
            print(f"[splay] no history written: {e}", file=self.stderr)
            return
        if records:
            write_jsonl(records, path)
            if not self.opts.quiet:
                print(f"[splay] {len(records)} history records: {path}", file=self.stderr)

    def _run(self, tmpdir):
        o = self.opts
        n = o.nodes
        self.nodes_file = MembershipFile(os.path.join(tmpdir, "nodes.json"))
        if not os.path.isdir(o.app_origin) and (o.sandbox or zipfile.is_zipfile(o.app_origin)):
            # The nodes import the application's modules from files: a zip archive is unpacked.
            # So is, under --sandbox, a file with the modules it ships: the nodes then read a
            # directory holding the application's own copy and nothing else (importing lists the
            # directory, so allowing single files would not do).
            o.app = app_files.unpack(o.app_files, os.path.join(tmpdir, "app"))
        sandbox = None
        if o.sandbox:
            # The application's files are an unpacked copy in the run's own directory: the
            # nodes may read that copy (and only it), as a daemon's nodes read the job's copy.
            sandbox = {"allowed_read_paths": sandbox_read_paths(o.app), **options.sandbox_limits(o)}
        if o.fork_server and not o.in_process:
            # Started before the run's time zero (the plan's fault and partition epochs), so
            # that its own start-up does not eat into the schedule.
            self.fork_server = start_fork_server(o.python, node_environment(), self.stderr)
        # --in-process: the jobs file would hold N lists of N nodes; the nodes read the nodes
        # file instead (and share what they read, see splay.job).
        plan = JobPlan(n, o.first_port, o.list_size, o.random, o.name, ref=getattr(o, "job_ref", None),
                       addresses=(workers.node_addresses(n, o.first_port) if o.in_process and o.workers > 1
                                  else self.node_addresses(n, o.first_port)),   # --workers: past .1's free ports: .2, ...
                       list_seed=getattr(o, "list_seed", None),
                       nodes_file=self.nodes_file.path, node_dirs=o.node_dirs, sandbox=sandbox,
                       inline_limit=0 if o.in_process else MAX_INLINE_NODES,
                       settings={**(emulation_settings(o, n) or {}), **fault_settings(o, n),
                                 **o.net_settings} or None)
        self.plan = plan
        if o.node_dirs is not None:
            for i in range(n):
                os.makedirs(plan.node_dir(i), exist_ok=True)
        env = node_environment()
        if o.seed is not None:
            env[seeding.SEED_ENV] = str(o.seed)
        if o.in_process and o.workers > 1:
            command = [o.python, "-m", "splay.launch.workers_host", o.app, *o.app_args]
            self.workers = workers.Workers(o.workers, plan, command, env, tmpdir, self.watchdog,
                                           o.schedule, o.churn_speed)
            self.procs = self.workers.procs
        elif o.in_process:
            # One process hosts every node; it reads their jobs from a file (N jobs of N nodes
            # would not fit in its environment).
            jobs_path = os.path.join(tmpdir, "jobs.json")
            with open(jobs_path, "w", encoding="utf-8") as f:
                json.dump([plan.job(i).to_dict() for i in range(n)], f)
            env[in_process.JOBS_ENV] = jobs_path
            if o.schedule is not None:
                churn_path = os.path.join(tmpdir, "churn.json")
                churn_replay.write_churn_file(churn_path, o.schedule, o.churn_speed)
                env[churn_replay.CHURN_ENV] = churn_path
            env.update(self.host_environment())
            command = [o.python, "-m", self.host_module, o.app, *o.app_args]
            self.procs = [NodeProcess(HOST, lambda: None, command, env, watchdog=self.watchdog)]
        else:
            # Under churn, nodes are created ahead of their up time and wait to be released.
            runner = "splay.launch.node" if o.schedule is None else "splay.launch.churn_replay"
            command = [o.python, "-m", runner, o.app, *o.app_args]
            self.procs = [NodeProcess(i, (lambda i=i: plan.job(i)), command, env, watchdog=self.watchdog,
                                      gated=o.schedule is not None)
                          for i in range(n)]
        if o.metrics:
            env.update(LocalMetrics.environment(o))
            for p in self.procs:
                p.collect_metrics = True

        if o.fault_timeline is not None:
            from splay.faults.local import LauncherFaults
            self.faults = LauncherFaults(self, o.fault_timeline, o.faults_epoch, o.in_process)
        for p in self.procs:
            p.fork_server = self.fork_server

        self.progress = Progress(len(self.procs), self.stderr, force=o.progress and not o.in_process)
        self.progress.enabled &= not o.in_process and o.schedule is None
        if o.schedule is not None:
            kind = churn_replay.HostChurnReport if o.in_process else churn_replay.ChurnReplay
            self.churn = kind(self, o.schedule, o.churn_speed, trace_name=o.churn)
        try:
            make_mux = self.mux_class if self.workers is None else functools.partial(WorkersMux, procs=self.procs)
            self.mux = make_mux(o.log, echo=None if o.quiet else self.stdout, notes=self.stderr,
                                 before_write=self.progress.clear, on_control=self._on_control)
        except OSError as e:
            raise options.UsageError(f"cannot write the log file {o.log!r}: {e.strerror}; "
                                     "pick another --log or --log-dir") from None
        if o.metrics:
            try:
                self.metrics = LocalMetrics(o, plan, self.mux)
            except OSError as e:
                raise options.UsageError(str(e)) from None
            self.mux.on_line = self.metrics.line
        self.sel = selectors.DefaultSelector()
        self.sel.register(self._wakeup_r, selectors.EVENT_READ, lambda: self._drain_wakeup())
        # Under churn nobody is alive before the trace's first up time.
        self.nodes_file.write(plan.nodes if self.churn is None else [])
        self.mux.note(f"running {n} node(s) of {o.app_origin} on ports {o.first_port}-{o.first_port + n - 1}"
                      f"{' in one process' if o.in_process and self.workers is None else ''}, job ref {plan.ref}; log: {o.log}; "
                      f"open-file limit {self.fd_limit}", show=False)
        if self.workers is not None:
            self.mux.note(self.workers.describe(), show=False)

        n = len(self.procs)
        started = 0
        next_start = time.monotonic()
        deadline = None if o.time_limit is None else next_start + o.time_limit
        polling = False
        if self.churn is not None:
            if not o.in_process:
                started = n      # the trace starts the nodes, not the start-up sequence below
            self.churn.begin()
        while True:
            self._handle_signals()
            now = time.monotonic()
            if deadline is not None and now >= deadline and not self.stopping:
                self._stop_all(f"time limit of {o.time_limit:g} s reached: stopping all nodes")
            if self.kill_at is not None and now >= self.kill_at:
                self._kill_remaining()
            if not self.stopping and started < n and now >= next_start:
                for _ in range(START_BATCH if o.stagger == 0 else 1):
                    if not self._start(self.procs[started]):
                        break
                    polling |= self.procs[started].exit_fd is None
                    started += 1
                    if started == n:
                        break
                # Counted from the end of this start: a slow fork must not shorten the delay.
                next_start = time.monotonic() + o.stagger
                self.progress.update(started)
                if started == n:
                    self.progress.finish()
                    self.mux.note(f"all {n} process(es) started", show=False)
            if self.faults is not None and not self.stopping:
                self.faults.step()
            if self.churn is not None and not self.stopping:
                self.churn.step(now)
                polling |= any(p.state == "running" and p.exit_fd is None for p in self.procs)
            if self.stopping or started == n:
                self.progress.finish()
                churn_done = self.churn is None or self.churn.finished or self.stopping
                faults_done = self.faults is None or self.stopping or not self.faults.awaits_restart()
                if churn_done and faults_done and not any(p.state == "running" for p in self.procs):
                    break

            timeouts = []
            if not self.stopping and started < n:
                timeouts.append(next_start - now)
            if deadline is not None and not self.stopping:
                timeouts.append(deadline - now)
            if self.kill_at is not None:
                timeouts.append(self.kill_at - now)
            if polling:
                timeouts.append(POLL_INTERVAL)
            if getattr(self.mux, "waiting", False):
                timeouts.append(WorkersMux.WAIT)      # lines of --workers wait for their turn
            if self.faults is not None and not self.stopping and self.faults.next_wakeup() is not None:
                timeouts.append(self.faults.next_wakeup() - time.monotonic())
            if self.churn is not None and not self.stopping and self.churn.next_wakeup() is not None:
                timeouts.append(self.churn.next_wakeup() - time.monotonic())
            if self.nodes_file.next_write() is not None:
                timeouts.append(self.nodes_file.next_write())       # a change waits to be written
            timeout = max(0.0, min(timeouts)) if timeouts else None
            for key, _ in self.sel.select(timeout):
                key.data()
            if polling:
                for p in self.procs:
                    if p.state == "running" and p.exit_fd is None and p.poll():
                        self._on_exit(p)
            self.nodes_file.write_due()
            self.mux.flush()
            self.progress.redraw()
            if self.metrics is not None:
                self.metrics.tick()

        self._summary(started)
        if self.metrics is not None:
            self.metrics.close("failed" if self.failed else
                               ("stopped" if self.exit_status is not None else "ended"))
        if self.exit_status is not None:
            return self.exit_status
        return 1 if self.failed else 0

    # -- nodes -------------------------------------------------------------------------------

    def _start(self, proc):
        """Start one node and watch its output and its end; ``False`` (and a stop) if it cannot start."""
        try:
            proc.start()
        except OSError as e:
            self.failed.append(proc.index)
            self._stop_all(f"{self._name(proc.index)} cannot be started: {e}; stopping all nodes")
            return False
        self.mux.add(proc.index, demux=self.opts.in_process)
        self.sel.register(proc.stdout, selectors.EVENT_READ, lambda: self._on_output(proc))
        if self.metrics is not None:
            self.metrics.started(proc, self.sel)
        if proc.exit_fd is not None:
            self.sel.register(proc.exit_fd, selectors.EVENT_READ, lambda: self._on_exit(proc))
        self.mux.note(f"{self._name(proc.index)} started, pid {proc.pid}", show=False)
        return True

    def _on_output(self, proc):
        # An event of the same select() batch may already have closed this node's output (its
        # exit was handled first): the callbacks check the node, never trust the descriptor.
        if proc.stdout is None:
            return
        if not self.mux.read(proc.index, proc.stdout):
            self._close_output(proc)

    def _close_output(self, proc):
        if proc.stdout is not None:
            self.sel.unregister(proc.stdout)
            proc.close_output()

    def _on_exit(self, proc):
        """A node's process ended: collect its last output and status, report a failure."""
        if proc.state != "running":
            return
        if proc.exit_fd is not None:
            self.sel.unregister(proc.exit_fd)
        rc = proc.reap()
        if proc.stdout is not None:
            self.mux.drain(proc.index, proc.stdout)
            self._close_output(proc)
        if self.metrics is not None:
            self.metrics.ended(proc, self.sel, rc, proc.failed)
        if not self.stopping and not self.opts.in_process:
            self.write_nodes_file()
        if self.workers is not None and self.workers.owns(proc.index):
            self.workers.on_exit(self, proc, rc)
            return
        if proc.index == HOST and rc == 1 and self.failed:
            # The host of --in-process nodes ends with 1 when some node failed: already reported.
            self.mux.note(f"{self._name(HOST)} ended: {describe_status(rc)}", show=False)
        elif proc.failed:
            self.failed.append(proc.index)
            self._report_failure(proc.index, describe_status(rc))
        else:
            how = "stopped" if proc.stop_requested else "ended"
            self.mux.note(f"{self._name(proc.index)} {how}: {describe_status(rc)}", show=False)

    def _on_control(self, record):
        """A control line of the --in-process host: ``{"node": i, "status": s, "how": text}``,
        node i failed."""
        if self.workers is not None and self.workers.on_control(self, record):
            return                      # a worker's churn start or change of its nodes up
        if "fault" in record:
            if self.faults is not None:
                self.faults.on_control(record)
            return
        if "churn" in record:
            if self.churn is not None:
                self.churn.on_control(record)
            if self.metrics is not None:
                self.metrics.churn(record)
            return
        index, status, how = record.get("node"), record.get("status"), record.get("how")
        if isinstance(index, int):
            self.failed.append(index)
            if not isinstance(how, str):
                how = describe_status(status if isinstance(status, int) else 1)
            self._report_failure(index, how)
            if self.metrics is not None:
                self.metrics.node_failed(index, how)

    def write_nodes_file(self):
        """The nodes alive changed: the nodes file (what ``job.nodes()`` returns) follows, at once
        or, for a long list, once the rewrites' share of time allows (:class:`MembershipFile`)."""
        self.nodes_file.changed(self._alive_nodes)

    def _alive_nodes(self):
        """The nodes alive now, in index order."""
        if self.churn is not None:
            alive = self.churn.alive(self.procs)
        else:
            alive = [p for p in self.procs if p.state != "ended"]
        return [self.plan.nodes[p.index] for p in alive]

    @staticmethod
    def _name(index):
        return f"node {index}" if isinstance(index, int) else f"the {index} process of --in-process nodes"

    def _report_failure(self, index, how):
        """Show that node ``index`` failed (``how``: its status in words) with its last lines."""
        label = f"[node {index}]" if isinstance(index, int) else f"[{index}]"
        tail = self.mux.tail(index)
        lines = [f"{label} {how}"]
        if tail:
            lines[0] += f"; last {len(tail)} line(s) of its output:"
            lines += [f"{label} | {t}" for t in tail]
        else:
            lines[0] += " without output"
        self.mux.note("\n".join(lines))

    def _stop_all(self, reason):
        """Stop every running node (SIGTERM now, SIGKILL after the grace time); start no more."""
        self.stopping = True
        if self.faults is not None:
            self.faults.release()       # a node stopped by a pause must get its SIGTERM
        self.mux.note(f"[splay] {reason}")
        for p in self.procs:
            p.stop()
        if self.kill_at is None:
            self.kill_at = time.monotonic() + self.opts.grace

    def _kill_remaining(self):
        self.kill_at = None
        alive = [p for p in self.procs if p.state == "running"]
        if alive:
            self.mux.note(f"[splay] {len(alive)} node(s) still running after {self.opts.grace:g} s: killing them")
            for p in alive:
                p.kill()

    def _kill_everything(self):
        """Last resort on the way out, whatever happened: no node outlives the launcher."""
        for p in self.procs:
            if p.state == "running":
                p.kill()
        for p in self.procs:
            if p.state == "running":
                p.reap()
            p.close_output()

    def _summary(self, started):
        n = self.opts.nodes
        if self.churn is not None:
            for line in self.churn.summary():
                self.mux.note(line, show=not self.opts.quiet)
            started = n if self.opts.in_process else sum(1 for p in self.procs if p.state != "pending")
        if self.opts.in_process:
            host = self.procs[0]
            parts = [f"{n if started else 0}/{n} node(s) ran in one process"]
            if self.workers is not None:
                parts = [self.workers.summary(started, n)]
            if host.stop_requested:
                parts.append("stopped")
        else:
            ended = [p for p in self.procs if p.state == "ended" and not p.failed]
            stopped = sum(1 for p in ended if p.stop_requested)
            parts = [f"{started}/{n} node(s) ran", f"{len(ended) - stopped} ended by themselves"]
            if stopped:
                parts.append(f"{stopped} stopped")
        if self.failed:
            shown = ", ".join(map(str, self.failed[:20])) + (" ..." if len(self.failed) > 20 else "")
            parts.append(f"{len(self.failed)} failed (node {shown})")
        if started < len(self.procs):
            parts.append(f"{len(self.procs) - started} never started")
        self.mux.note(f"[splay] {'; '.join(parts)}; merged log: {self.opts.log}",
                      show=not self.opts.quiet or bool(self.failed))

    # -- signals -----------------------------------------------------------------------------

    def _install_signal_handlers(self):
        """Catch the stop signals; their handler only records them, the loop acts on them."""
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)
        saved = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        saved["wakeup"] = signal.set_wakeup_fd(self._wakeup_w.fileno(), warn_on_full_buffer=False)
        return saved

    def _restore_signal_handlers(self, saved):
        signal.set_wakeup_fd(saved.pop("wakeup"))
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        self._wakeup_r.close()
        self._wakeup_w.close()

    def _on_signal(self, signum, frame):
        self.pending_signals.append(signum)

    def _drain_wakeup(self):
        try:
            while self._wakeup_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _handle_signals(self):
        while self.pending_signals:
            sig = self.pending_signals.pop(0)
            name = signal.Signals(sig).name
            if not self.stopping or self.exit_status is None:
                self.exit_status = STOP_SIGNALS[sig]
                self._stop_all(f"{name}: stopping all nodes (again to kill them at once)")
            else:
                self.mux.note(f"[splay] {name} again: killing all nodes")
                self.kill_at = time.monotonic()
                self._kill_remaining()


def main(argv=None):
    """Entry point of ``splay run``; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--maelstrom" or a.startswith("--maelstrom=") for a in argv):
        from splay.maelstrom.run_cmd import main as maelstrom_main
        return maelstrom_main(argv)
    try:
        opts = options.parse(argv)
        for note in opts.churn_notes:         # --churn gave a churn script: what it compiled to
            print(f"splay run: {note}", file=sys.stderr)
        opts.argv = argv
        if opts.sim:
            from splay.sim.run import SimLauncher
            return SimLauncher(opts, fd_limit=raise_to_hard()).run()
        return Launcher(opts, fd_limit=for_run(opts, sys.stderr)).run()
    except options.UsageError as e:
        print(f"splay run: error: {e}\n(see 'splay run --help')", file=sys.stderr)
        return 2
    except SystemExit as e:   # --help
        return e.code if isinstance(e.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def start_fork_server(python, env, stderr):
    """A started :class:`~splay.launch.fork_server.ForkServer` for the nodes, or None (with a
    note on ``stderr``) when it cannot start: the nodes then start as new interpreters."""
    from .fork_server import ForkServer, ForkServerError
    try:
        return ForkServer(python, env).start()
    except ForkServerError as e:
        stderr.write(f"splay run: no fork server ({e}); each node starts a new interpreter\n")
        return None


def stop_being_a_subreaper():
    """Undo what the fork server needed (orphans go to init again, as before the run)."""
    from .fork_server import set_subreaper
    set_subreaper(False)


def run_epoch(opts):
    """Time 0 of the run's partition and fault schedules: now, or 0 on a simulation's virtual
    clock (which starts at 0)."""
    return 0.0 if getattr(opts, "sim", False) else time.time()


def emulation_settings(opts, n):
    """The job settings of ``--topology`` and ``--partition`` (None without either). Partition
    times count from now: the launcher starts its nodes right after."""
    settings = {}
    if getattr(opts, "topology", None):
        settings.update(topology=opts.topology, topology_nodes=n, topology_first_port=opts.first_port)
    if getattr(opts, "partitions", None):
        settings.update(topology_nodes=n, topology_first_port=opts.first_port,
                        partition_epoch=run_epoch(opts),
                        partitions=[spec.as_dict() for spec in opts.partitions])
    return settings or None


def fault_settings(opts, n):
    """The job settings of ``--faults`` (empty without it); time 0 of the timeline is now (the
    launcher starts its nodes right after), kept in ``opts.faults_epoch``."""
    if getattr(opts, "fault_timeline", None) is None:
        return {}
    from splay.faults.local import job_settings
    opts.faults_epoch = run_epoch(opts)
    return job_settings(opts.fault_timeline, n, opts.faults_epoch)

"""Job instances on a daemon: port reservations, processes, their output and their end.

Each instance runs as ``sys.executable -m splay.launch.node APP.py`` in its own directory and
process group (``start_new_session``), with ``PR_SET_PDEATHSIG`` so that it dies with the daemon.
Its job description is the ``SPLAY_JOB`` environment variable (see docs/deploy.md). A started
process is held (SIGSTOP) until the controller releases the whole job. Stopping an instance kills
its whole process group: SIGTERM, then SIGKILL after a grace period.
"""
import asyncio
import concurrent.futures
import ctypes
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from splay.observatory.sampler import METRICS_FD_ENV
from splay.sandbox.environ import job_environment

from .daemon_cleanup import forget_process, record_process
from .daemon_priority import lower_node_priority
from .job_limits import Limits, node_sandbox, node_settings
from .log_limits import MARKER_STREAM, LogLimiter

log = logging.getLogger("splay.daemon")

PR_SET_PDEATHSIG = 1
STOP_GRACE = 2.0           # seconds between SIGTERM and SIGKILL
KEEP_FINISHED = 600.0      # seconds an ended instance stays in the hello report
SPAWN_THREADS = 8
MAX_JOB_VARIABLE = 100_000  # bytes of SPLAY_JOB above which the node list is left to the file
RELEASE_ANYWAY = 60.0      # seconds after which held processes run even without a release


_prctl = ctypes.CDLL(None, use_errno=True).prctl
# util-linux's setpriv sets the parent-death signal and execs the node: the daemon then needs no
# Python code between fork and exec, so Python can use vfork, several times cheaper than a fork
# of the daemon's whole memory. Without setpriv, a preexec function sets it.
SETPRIV = shutil.which("setpriv")


def _prepare_child():
    """In the child before exec: die with the daemon (``PR_SET_PDEATHSIG``; it is tied to the
    forking thread, one of the spawner threads, which live as long as the daemon)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# Nodes run at the niceness the daemon was started with, even when the daemon raised its own
# priority (splayd --nice) to stay responsive while it spawns.
NODE_NICE = os.getpriority(os.PRIO_PROCESS, 0)
STARTING_PROCESS = object()     # Instance.process while its process is being spawned
NODES_MARK = "\x00nodes\x00"    # stands for the node list in SPLAY_JOB until it is spliced in


async def _stream(loop, pipe):
    """An asyncio StreamReader over a child's pipe."""
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


def _unpack_app(job_dir, bundle):
    """Unpack a job's application files (``{"archive": base64 zip, "main": path}``, checked by
    the controller) into ``JOB_DIR/app`` once; returns the main file's path."""
    from splay import app_files
    target = os.path.join(job_dir, "app")
    if not os.path.isdir(target):
        staging = target + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        app_files.unpack(app_files.decode(bundle["archive"], bundle["main"]), staging)
        os.replace(staging, target)
    return os.path.join(target, bundle["main"])


async def _ended(pid):
    """Wait (without a thread, and without reaping it) until process ``pid`` ends."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    pidfd = os.pidfd_open(pid)
    loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def _exit_status(process):
    """Wait (without a thread) until ``process`` ends; returns its exit status."""
    await _ended(process.pid)
    return process.wait()


def _popen_at_node_nice(popen):
    """Start a node's process (``popen``: a Popen with its arguments) and give it the nodes'
    priority at once, in the spawning thread (see daemon_priority.py). A child inherits the
    daemon's raised priority: the nodes of a churn job, never held, kept it for their whole life."""
    process = popen()
    lower_node_priority(process.pid, NODE_NICE)
    return process


def hold(pid):
    """Stop a just-started instance until ``release`` (SIGSTOP: it takes no CPU and, stopped
    only on its way back to user space, holds no kernel lock others could wait for)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass


def release(pids):
    """Let held instances run (SIGCONT).

    A job's processes wait, stopped, until the controller has heard from every daemon that all of
    the job's nodes are started, then are released together: booting hundreds of interpreters
    would otherwise starve the daemons still spawning, and the nodes of a job start at the same
    time. A stopped process still dies of SIGKILL (the parent-death signal, or a stop)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


class Instance:
    """One reserved slot, then (once started) one process."""

    def __init__(self, instance_id, job_ref, port, memory):
        self.id = instance_id
        self.job_ref = job_ref
        self.port = port
        self.memory = memory
        self.process = None
        self.state = "REGISTERED"
        self.exit_code = None
        self.stop_requested = False
        self.ended_at = None
        self.announced = asyncio.Event()   # set once the controller was told it started
        self.churn = None                  # its InstanceChurn, in a churn job
        self.position = None               # its job position once spawned (names it in log markers)
        self.fault_down = False            # killed by a fault until its restart (splay.faults)


class InstanceManager:
    """All instances of one daemon. ``emit(message)`` sends a message to the controller (or drops
    it while disconnected); ``log_line(...)`` queues an output line for forwarding."""

    # Set by `splayd --maelstrom-programs`: starts the programs of Maelstrom jobs beside their
    # confined nodes (splay.maelstrom.programs.ProgramBridges).
    programs = None

    def __init__(self, limits, ip, base_dir, emit, log_line, clock=time.time, sandbox=True,
                 on_job_end=None, metrics=None, outputs=None):
        self.limits = limits
        self.sandbox = sandbox
        self.ip = ip
        self.base_dir = base_dir
        self.emit = emit
        self.log_line = log_line
        self.clock = clock
        self.instances = {}                 # id -> Instance (reserved, running or recently ended)
        self.held = {}                      # job ref -> ids of instances stopped until released
        # Processes are spawned from these threads, several at once (a spawn mostly waits for the
        # child to be scheduled). They live as long as the daemon: the parent-death signal fires
        # when the thread that started a process ends.
        self.spawner = concurrent.futures.ThreadPoolExecutor(SPAWN_THREADS, "splayd-spawn")
        self.tasks = set()
        self.job_nodes = {}                 # job ref -> the alive nodes the controller sent last
        self.nodes_unwritten = set()        # job refs whose nodes files a full disk kept stale
        # Called with a job's ref once none of its instances holds a slot here any more (the
        # daemon then removes the job's kernel shaping, see host_shaping.py).
        self.on_job_end = on_job_end
        self.log_limits = LogLimiter(limits.log_node_bytes, limits.log_job_bytes,
                                     limits.log_node_rate, limits.log_job_rate)
        # Reads each node process's metrics pipe (a MetricsRelay, see daemon_metrics.py), or None.
        self.metrics = metrics
        # Nodes write their output to files there (node_output.NodeOutputs), or to pipes (None).
        self.outputs = outputs
        self.output_files = set()           # the OutputFiles of running lives, read by poll_output

    # -- reservations ----------------------------------------------------------------------
    def live(self):
        """Instances holding a slot (reserved, running, or down between two churn intervals)."""
        return [i for i in self.instances.values() if i.state in ("REGISTERED", "RUNNING", "DOWN")]

    def _port_free(self, port, taken):
        if port in taken:
            return False
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as probe:
                if kind == socket.SOCK_STREAM:
                    # As a server would: a port held only by old TIME_WAIT connections is free.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.ip, port))
                except OSError:
                    return False
        return True

    def register(self, job_ref, memory, instance_ids):
        """Reserve a port for each instance; returns ({id: port}, {id: reason refused})."""
        ports, refused = {}, {}
        taken = {i.port for i in self.live()}
        if memory and memory > self.limits.max_memory:
            reason = (f"needs {memory // 2**20} MiB per node, this daemon offers "
                      f"{self.limits.max_memory // 2**20} MiB")
            return {}, {i: reason for i in instance_ids}
        candidate = self.limits.start_port
        for instance_id in instance_ids:
            if instance_id in self.instances:
                refused[instance_id] = "instance id already in use"
                continue
            if len(self.live()) >= self.limits.max_instances:
                refused[instance_id] = f"all {self.limits.max_instances} instance slots taken"
                continue
            while candidate <= self.limits.end_port and not self._port_free(candidate, taken):
                candidate += 1
            if candidate > self.limits.end_port:
                refused[instance_id] = "no free port left in the range"
                continue
            taken.add(candidate)
            self.instances[instance_id] = Instance(instance_id, job_ref, candidate, memory)
            ports[instance_id] = candidate
        return ports, refused

    def free(self, instance_ids):
        """Drop reservations that were not started."""
        for instance_id in instance_ids:
            instance = self.instances.get(instance_id)
            if instance is not None and instance.process is None:
                del self.instances[instance_id]
                self.instance_ended(instance.job_ref)

    def instance_ended(self, job_ref):
        """An instance of ``job_ref`` ended (or was dropped): when it was the job's last one
        holding a slot on this daemon, forget the job's log accounting and call ``on_job_end``."""
        if any(i.job_ref == job_ref and i.state in ("REGISTERED", "RUNNING", "DOWN")
               for i in self.instances.values()):
            return
        self.log_limits.forget_job(job_ref, [i.id for i in self.instances.values()
                                             if i.job_ref == job_ref])
        if self.on_job_end is not None:
            self.on_job_end(job_ref)

    # -- processes -------------------------------------------------------------------------
    def job_dir(self, job_ref):
        """Where a job's application and instance directories live on this daemon."""
        return os.path.join(self.base_dir, "jobs", job_ref)

    def _write_app(self, job):
        """The job's directory and application file (written once); returns the file's path."""
        job_dir = self.job_dir(job["ref"])
        os.makedirs(job_dir, exist_ok=True)
        bundle = (job.get("settings") or {}).get("app_bundle")
        if bundle is not None:
            return _unpack_app(job_dir, bundle)
        app = os.path.join(job_dir, "app.py")
        if not os.path.exists(app):
            with open(app + ".tmp", "w") as f:
                f.write(job["code"])
            os.replace(app + ".tmp", app)
        return app

    @staticmethod
    def _base_env():
        return job_environment(PYTHONUNBUFFERED="1")     # the daemon's own secrets stay with it

    def schedule(self, job, nodes, entries, churn):
        """Replay the churn trace of ``job``'s listed instances (see :mod:`.instance_churn`);
        returns ([scheduled ids], {id: reason refused})."""
        from .instance_churn import InstanceChurn, Life
        scheduled, failed = [], {}
        app = self._write_app(job)
        base_env = self._base_env()
        for entry in entries:
            instance_id = int(entry["id"])
            instance = self.instances.get(instance_id)
            if instance is None or instance.process is not None or instance.state != "REGISTERED":
                failed[instance_id] = "not registered on this daemon (or already started)"
                continue
            times = entry.get("times")
            if not isinstance(times, list) or not times:
                failed[instance_id] = "a churn job's instance needs its trace times"
                continue

            async def spawn_life(instance=instance, entry=entry):
                me = {"ip": self.ip, "port": instance.port}
                alive = list(self.job_nodes.get(job["ref"], []))
                if me not in alive:
                    alive.append(me)      # it is up from its release on
                process = await self.spawn(instance, job, app, nodes, entry, "[]", base_env,
                                           gated=True, alive=alive)
                return Life(process, self._track(self._life(instance, process)))

            instance.state = "DOWN"
            instance.churn = InstanceChurn(self, instance, spawn_life, times, churn["t0"],
                                           churn.get("speed", 1.0), STOP_GRACE)
            scheduled.append(instance_id)
        self.instance_ended(job["ref"])        # none scheduled: the job is over here
        return scheduled, failed

    async def _life(self, instance, process):
        """Forward one churn life's output; returns its exit status once it ended."""
        await self._forward_output(instance, process)
        self._output_ended(instance)
        if self.metrics is not None:
            await self.metrics.ended(instance.id)        # its last samples, before its end
        code = await _exit_status(process)
        self._signal_group(process.pid, signal.SIGKILL)   # whatever it left in its group
        forget_process(os.path.join(self.job_dir(instance.job_ref), str(instance.id)))
        return code

    def end_instance(self, instance, state, exit_code, reason):
        """A churned instance ended for good: record it and tell the controller."""
        instance.state = state
        instance.exit_code = exit_code
        instance.ended_at = time.monotonic()
        self.emit({"type": "exited", "id": instance.id, "exit_code": exit_code, "state": state,
                   "reason": reason, "time": self.clock()})
        self.instance_ended(instance.job_ref)
        if self.programs is not None:
            self.programs.close(instance.id)

    async def start(self, job, nodes, entries):
        """Start the listed instances of ``job``; returns ([{id, pid}], {id: reason})."""
        started, failed = [], {}
        app = self._write_app(job)
        head_view = json.dumps(nodes[:job["list_size"]])
        base_env = self._base_env()

        async def start_one(entry):
            instance_id = int(entry["id"])
            instance = self.instances.get(instance_id)
            if instance is None or instance.process is not None:
                failed[instance_id] = "not registered on this daemon (or already started)"
                return
            instance.process = STARTING_PROCESS        # taken: a second start is refused
            try:
                instance.process = await self.spawn(instance, job, app, nodes, entry, head_view,
                                                    base_env)
            except Exception as e:   # any failure to spawn is this instance's, not the daemon's
                log.exception("cannot start instance %d", instance_id)
                failed[instance_id] = f"cannot start the process: {type(e).__name__}: {e}"
                self.instances.pop(instance_id, None)
                return
            if instance.stop_requested:                  # stopped while it was being spawned
                self._signal_group(instance.process.pid, signal.SIGKILL)
            hold(instance.process.pid)
            instance.state = "RUNNING"
            started.append({"id": instance_id, "pid": instance.process.pid})
            self._track(self.follow(instance))
        await asyncio.gather(*(start_one(entry) for entry in entries))
        self.instance_ended(job["ref"])        # none started: the job is over here
        self.held.setdefault(job["ref"], []).extend(entry["id"] for entry in started)
        asyncio.get_running_loop().call_later(RELEASE_ANYWAY, self.release_job, job["ref"])
        return started, failed

    def release_job(self, job_ref):
        """Let a job's held processes run (see :func:`release`); only those still running, so
        that a late call never signals a recycled pid."""
        ids = self.held.pop(job_ref, ())
        release(self.instances[i].process.pid for i in ids
                if i in self.instances and self.instances[i].state == "RUNNING")

    def update_nodes(self, job_ref, nodes):
        """Rewrite (atomically) the nodes file of each running instance of a job (and remember
        the list: a churned instance's next process starts with it)."""
        self.job_nodes[job_ref] = nodes
        failed = None
        for instance in self.instances.values():
            if instance.job_ref == job_ref and instance.state == "RUNNING":
                path = os.path.join(self.job_dir(job_ref), str(instance.id), "nodes.json")
                try:
                    _write_json(path, nodes)
                except OSError as e:           # a full disk: write_unwritten_nodes tries again
                    failed = e
                    try:
                        os.unlink(path + ".tmp")
                    except OSError:
                        pass
        if failed is None:
            self.nodes_unwritten.discard(job_ref)
        elif job_ref not in self.nodes_unwritten:
            self.nodes_unwritten.add(job_ref)
            log.warning("job %s: cannot update the nodes files (%s); trying again every second",
                        job_ref, failed.strerror or failed)

    def write_unwritten_nodes(self):
        """Write again the nodes files that could not be written (a full disk), so that
        ``job.nodes()`` is right again once there is room, without waiting for the next change."""
        for job_ref in list(self.nodes_unwritten):
            self.update_nodes(job_ref, self.job_nodes[job_ref])

    def announce(self, started):
        """The controller was told these instances started: their exits may be reported now."""
        for entry in started:
            instance = self.instances.get(entry["id"])
            if instance is not None:
                instance.announced.set()

    async def spawn(self, instance, job, app, nodes, entry, head_view, base_env, gated=False,
                    alive=None):
        """Create one instance's directory and process (``head_view``: the JSON of the head
        list; ``base_env``: the environment without SPLAY_JOB). ``gated``: the process waits for
        the go line on its stdin (churn); ``alive``: its nodes file holds these nodes, not the
        job's whole list."""
        directory = os.path.join(self.job_dir(job["ref"]), str(instance.id))
        os.makedirs(directory, exist_ok=True)
        position = int(entry["position"])
        if entry.get("list") is None:
            view = head_view                              # the same JSON for every node
        else:
            view = json.dumps([nodes[i] for i in entry["list"]])
        # The application and the nodes file (every node of the job: splay.job derives the
        # node's view from it) are written once per job and hard-linked into each instance
        # directory, the only place a sandboxed node may read.
        nodes_file = os.path.join(directory, "nodes.json")
        shared = os.path.join(self.job_dir(job["ref"]), "nodes.json")
        if not os.path.exists(shared):
            with open(shared + ".tmp", "w") as f:
                json.dump(nodes, f)
            os.replace(shared + ".tmp", shared)
        settings = dict(job.get("settings") or {})
        shipped = settings.pop("app_bundle", None) is not None
        # A job of several files runs from its one unpacked copy, which its nodes may read.
        own_app = app if shipped else os.path.join(directory, "app.py")
        if alive is not None:
            _write_json(nodes_file, alive)
        instance.position = position
        for source, target in ((shared, nodes_file), (app, own_app)):
            if not os.path.exists(target):
                os.link(source, target)
        memory = instance.memory or self.limits.max_memory
        splay_job = {"ref": job["ref"], "name": job["name"],
                     "me": {"ip": self.ip, "port": instance.port}, "position": position,
                     "list_type": job["list_type"], "list_size": job["list_size"],
                     "nodes": NODES_MARK, "nodes_file": nodes_file, "dir": directory,
                     "settings": node_settings(settings, self.limits, instance.port)}
        if self.sandbox:
            splay_job["sandbox"] = node_sandbox(self.limits, memory, instance.port)
            if shipped:
                splay_job["sandbox"]["allowed_read_paths"] = [os.path.dirname(app)]
        encoded = json.dumps(splay_job)
        if len(encoded) + len(view) > MAX_JOB_VARIABLE:
            # Linux refuses an environment string over 128 KiB: a very long list stays in the
            # nodes file, from which splay.job computes the node's view.
            view = "[]"
        # The node list is encoded once per job (head lists) and spliced in.
        env = dict(base_env, SPLAY_JOB=encoded.replace(json.dumps(NODES_MARK), view, 1))
        if self.programs is not None:
            await self.programs.prepare(job, instance.id, position, directory, own_app)
        runner = "splay.launch.churn_replay" if gated else "splay.launch.node"
        argv = [sys.executable, "-m", runner, own_app,
                *map(str, (job.get("settings") or {}).get("app_args", []))]
        if SETPRIV:
            argv[:0] = [SETPRIV, "--pdeathsig", "KILL", "--"]
        loop = asyncio.get_running_loop()
        metrics_fd = None
        if self.metrics is not None:
            metrics_fd = self.metrics.open(instance.id)
            env[METRICS_FD_ENV] = str(metrics_fd)
        files = ()
        if self.outputs is not None:             # files that outlive the daemon (node_output.py)
            files = [self.outputs.create(job["ref"], instance.id, name)
                     for name in ("stdout", "stderr")]
        popen = functools.partial(
            subprocess.Popen, argv, cwd=directory, env=env,
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=files[0][0] if files else subprocess.PIPE,
            stderr=files[1][0] if files else subprocess.PIPE, start_new_session=True,
            preexec_fn=None if SETPRIV else _prepare_child,
            pass_fds=() if metrics_fd is None else (metrics_fd,))
        try:
            process = await loop.run_in_executor(self.spawner, _popen_at_node_nice, popen)
        except BaseException:
            for _, output in files:
                output.remove()
            raise
        finally:
            if metrics_fd is not None:
                os.close(metrics_fd)             # the node holds the write end now
            for write_fd, _ in files:
                os.close(write_fd)
        record_process(directory, process.pid)   # a restarted daemon kills it if still there
        if files:
            process.files = [output for _, output in files]
            for output in process.files:
                output.instance = instance
                self.output_files.add(output)
        else:
            process.files = None
            process.out = await _stream(loop, process.stdout)
            process.err = await _stream(loop, process.stderr)
        return process

    async def _forward_output(self, instance, process):
        """Forward a node life's output until it ended: from its pipes until they close, or
        (output files) until the process ended, then the rest of its files."""
        if process.files is None:
            await asyncio.gather(self._read(instance, process.out, "stdout"),
                                 self._read(instance, process.err, "stderr"))
            return
        await _ended(process.pid)
        self._signal_group(process.pid, signal.SIGKILL)   # nothing of its group writes any more
        for output in process.files:
            self._drain(output)

    def _drain(self, output):
        """A life's output file will not grow any more: forward the rest, then let it go."""
        self.output_files.discard(output)
        self._forward_lines(output.instance, output, output.read_lines(final=True))
        self.outputs.done(output)

    def drain_output_files(self):
        """Forward the rest of every running node's output file and let them go (the daemon
        stops: its nodes were just killed)."""
        for output in list(self.output_files):
            self._drain(output)

    def poll_output(self):
        """Forward the lines the running nodes appended to their output files."""
        for output in list(self.output_files):
            self._forward_lines(output.instance, output, output.read_lines())

    def _forward_lines(self, instance, output, lines):
        for line, offset in lines:
            self._forward(instance, output.stream, line, (output, offset))

    async def follow(self, instance):
        """Forward the output of an instance until it ends, then report its end."""
        process = instance.process
        await self._forward_output(instance, process)
        self._output_ended(instance)
        if self.metrics is not None:
            await self.metrics.ended(instance.id)        # its last samples, before its end
        code = await _exit_status(process)
        if instance.fault_down:
            # Killed by a fault for a while (splay.faults.deployed): down until its restart.
            instance.state = "DOWN"
            self._signal_group(process.pid, signal.SIGKILL)
            return
        instance.exit_code = code
        instance.state = "KILLED" if instance.stop_requested else "EXITED"
        instance.ended_at = time.monotonic()
        # Kill whatever the instance left in its group (it is ours to clean up).
        self._signal_group(process.pid, signal.SIGKILL)
        forget_process(os.path.join(self.job_dir(instance.job_ref), str(instance.id)))
        self.instance_ended(instance.job_ref)
        if self.programs is not None:
            self.programs.close(instance.id)
        await instance.announced.wait()
        self.emit({"type": "exited", "id": instance.id, "exit_code": code,
                   "state": instance.state, "time": self.clock()})

    async def _read(self, instance, stream, name):
        """Forward the lines of one output stream, within the daemon's log limits."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:           # a line longer than the stream limit: take a chunk
                line = await stream.read(65536)
            if not line:
                return
            self._forward(instance, name, line.rstrip(b"\n"))

    def _forward(self, instance, name, line, mark=None):
        """Forward one output line (bytes without its newline), within the daemon's log limits.
        ``mark``: (OutputFile, offset of the line's end), for lines read from a file."""
        stamp = self.clock()
        admitted, markers = self.log_limits.admit(
            instance.id, instance.id if instance.position is None else instance.position,
            instance.job_ref, len(line) + 1)
        for marker in markers:
            self.log_line(instance.id, stamp, MARKER_STREAM, marker)
        if admitted:
            if mark is None:
                self.log_line(instance.id, stamp, name, line.decode("utf-8", "replace"))
            else:
                self.log_line(instance.id, stamp, name, line.decode("utf-8", "replace"), mark)

    def _output_ended(self, instance):
        """Both output streams of an instance ended: forward its last drop marker, if any."""
        marker = self.log_limits.end(instance.id)
        if marker is not None:
            self.log_line(instance.id, self.clock(), MARKER_STREAM, marker)

    def _signal_group(self, pid, signum):
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, instance_ids):
        """Stop instances: kill running ones (their end is reported when they die), drop
        reserved ones, end churn replays, and report unknown ones as already ended."""
        for instance_id in instance_ids:
            instance = self.instances.get(instance_id)
            if instance is not None and instance.churn is not None:
                if instance.ended_at is None and not instance.stop_requested:
                    instance.stop_requested = True
                    instance.churn.cancel()             # it reports the end
                elif instance.ended_at is not None:
                    self.emit({"type": "exited", "id": instance_id,
                               "exit_code": instance.exit_code, "state": instance.state,
                               "time": self.clock()})
                continue
            if instance is not None and instance.process is STARTING_PROCESS:
                instance.stop_requested = True           # start_one kills it once spawned
                continue
            if instance is not None and instance.state == "RUNNING":
                instance.stop_requested = True
                instance.announced.set()
                self._signal_group(instance.process.pid, signal.SIGTERM)
                self._signal_group(instance.process.pid, signal.SIGCONT)   # if still held
                self._track(self._kill_later(instance))
                continue
            if instance is not None and instance.state == "REGISTERED":
                del self.instances[instance_id]
                self.instance_ended(instance.job_ref)
            if instance is None or instance.state == "REGISTERED":
                self.emit({"type": "exited", "id": instance_id, "exit_code": None,
                           "state": "KILLED", "time": self.clock()})

    async def _kill_later(self, instance):
        await asyncio.sleep(STOP_GRACE)
        if instance.state == "RUNNING":
            self._signal_group(instance.process.pid, signal.SIGKILL)

    def stop_all(self):
        """Stop every instance (controller gone too long, or the daemon stops)."""
        self.stop([i.id for i in list(self.instances.values())
                   if i.state in ("RUNNING", "REGISTERED", "DOWN")])

    def kill_all_now(self):
        """SIGKILL every running process group at once (daemon exit)."""
        for instance in self.instances.values():
            if instance.state == "RUNNING":
                instance.stop_requested = True
                self._signal_group(instance.process.pid, signal.SIGKILL)
            if instance.churn is not None and instance.churn.life is not None:
                self._signal_group(instance.churn.life.pid, signal.SIGKILL)   # one waiting

    def report(self):
        """What the daemon holds, for its hello: live instances and recently ended ones."""
        now = time.monotonic()
        for instance in list(self.instances.values()):
            if instance.ended_at is not None and now - instance.ended_at > KEEP_FINISHED:
                del self.instances[instance.id]
                shutil.rmtree(os.path.join(self.job_dir(instance.job_ref), str(instance.id)),
                              ignore_errors=True)
        return [{"id": i.id, "state": i.state, "exit_code": i.exit_code}
                for i in self.instances.values()]

    def _track(self, coroutine):
        """Run ``coroutine`` as a task the manager keeps (and can wait for); returns the task."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def _write_json(path, value):
    """Replace the file at ``path`` atomically with ``value`` as JSON."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)

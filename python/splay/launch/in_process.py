"""``splay run --in-process``: N nodes of an application in one process, over one scheduler.

``python -m splay.launch.in_process APP.py [args...]`` is started by ``splay run --in-process``
with ``SPLAY_JOBS_FILE`` naming a JSON file: the list of the nodes' jobs (each in the ``SPLAY_JOB``
form). For each node it executes the application's module afresh, in a namespace of its own,
with that node as the scheduler's current node (``events.current_node()``), so every thread the
node starts -- and every thread those start -- belongs to it. Then it runs the scheduler until
every node's threads have ended.

Per node, in one process:

- ``splay.job`` (and ``job`` from ``splay.base``) is a view of the running node's job;
- ``events.run(main)`` starts ``main`` as a thread of the node and returns at once (the scheduler
  runs once every node's module has been executed), so code placed after ``events.run()`` in the
  application runs before the node's threads -- put end-of-run work at the end of ``main``;
- ``events.exit()`` ends the calling node only;
- everything printed (stdout, stderr, logs) is attributed to the node of the running thread.

The node object (``events.current_node()``) is an :class:`InProcessNode`: ``index``, ``job`` and
``namespace`` (the globals of the node's copy of the application, the namespace its RPC server
serves).

With ``SPLAY_CHURN_FILE`` set (``splay run --in-process --churn TRACE``), no node runs at first:
a churn thread of the scheduler (:func:`splay.launch.churn_replay.replay_in_host`) starts node
``i`` at each of its up times as a *fresh* :class:`InProcessNode` executing the application anew
(a new namespace; nothing survives a down time) and stops it at each down time (its threads are
killed, its sockets and servers closed), rewrites the nodes file after each change and reports
each action to the launcher as ``CONTROL {"churn": "up", "node": i, "at": t, "scheduled": s, ...}``.

Output to the launcher: each line of node ``i`` is written as ``RECORD i UNIT text``; a node whose
module raised (or called ``sys.exit`` with a non-zero status) is announced by
``CONTROL {"node": i, "status": 1, "how": "failed: its module raised KeyError"}``. Exit status: 0, or 1 when a
node failed.
"""
import functools
import io
import json
import os
import sys
import traceback
import types

import splay
from splay.job import Job, read_nodes_from

from . import churn_replay

__all__ = ["InProcessNode", "CurrentJob", "main", "JOBS_ENV", "RECORD", "UNIT", "CONTROL"]

#: Environment variable naming the JSON file of the nodes' jobs.
JOBS_ENV = "SPLAY_JOBS_FILE"
#: Starts a node's output line: RECORD + index + UNIT + text.
RECORD = "\x1e"
UNIT = "\x1f"
#: Starts a control line: CONTROL + JSON object.
CONTROL = "\x1d"


class InProcessNode:
    """One node of a multi-node process: the object every thread of the node carries."""

    def __init__(self, index, job):
        self.index = index
        self.job = job
        self.namespace = None     # the globals of the node's copy of the application
        self.failed = False
        # The node's own restricted-socket limits and counters (splayc.accounting.NetPolicy),
        # from its job's settings; None: unrestricted.
        self.net_policy = None
        from splay import restricted_socket
        if restricted_socket.has_settings(job.settings):
            self.net_policy = restricted_socket.new_policy(job.settings, job.position)
            self.net_policy.seal()     # the launcher's limits: the node may only tighten them
        from splay.emulation import apply_job, has_emulation
        if has_emulation(job.settings):
            self.emulation = apply_job(job, node=self)   # one shared model for all nodes
        if os.environ.get("SPLAY_METRICS_FD"):
            from splay.observatory.sampler import attach
            attach(self)          # its own RPC counters and application metrics

    def __repr__(self):
        return f"<node {self.index} {self.job.me.ip}:{self.job.me.port}>"


def _current_job():
    from splay import events
    node = events.current_node()
    if not isinstance(node, InProcessNode):
        raise RuntimeError("splay.job was read outside any node of this multi-node process "
                           "(--in-process): read it from the application's code or threads")
    return node.job


class CurrentJob:
    """``splay.job`` when one process hosts many nodes: the job of the running thread's node."""

    def __getattr__(self, name):
        return getattr(_current_job(), name)

    def __getitem__(self, key):
        return _current_job()[key]

    def __repr__(self):
        try:
            return f"<current node's {_current_job()!r}>"
        except RuntimeError:
            return "<current node's job (outside any node)>"


class NodeTaggedOutput(io.TextIOBase):
    """``sys.stdout`` and ``sys.stderr`` of the host: each complete line goes to the launcher
    tagged with the node of the thread that wrote it (untagged outside any node)."""

    def __init__(self, fd):
        super().__init__()
        self.fd = fd
        self.partial = {}

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"

    def write(self, text):
        from splay import events
        node = events.current_node()
        key = node.index if isinstance(node, InProcessNode) else None
        *lines, rest = (self.partial.pop(key, "") + text).split("\n")
        for line in lines:
            self._emit(key, line)
        if rest:
            self.partial[key] = rest
        return len(text)

    def _emit(self, key, line):
        record = line if key is None else f"{RECORD}{key}{UNIT}{line}"
        self.write_raw(record + "\n")

    def write_raw(self, text):
        """Write ``text`` to the launcher as it is (a whole record)."""
        data = text.encode("utf-8", errors="replace")
        while data:
            data = data[os.write(self.fd, data):]

    def flush_all(self):
        """Write every node's unfinished last line."""
        for key in list(self.partial):
            self._emit(key, self.partial.pop(key))

    def flush(self):
        pass


def _report_failure(out, node, app_path, exc, status):
    """Node ``node``'s module ended badly: its traceback as its own output, then a control line."""
    from splayc import hub
    node.failed = True
    hub.set_default_node(node)
    try:
        if exc is not None:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != app_path:
                tb = tb.tb_next
            sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)))
        out.flush_all()
    finally:
        hub.set_default_node(None)
    how = (f"failed: its module raised {type(exc).__name__}" if exc is not None
           else f"exited with status {status}")
    out.write_raw(CONTROL + json.dumps({"node": node.index, "status": status, "how": how}) + "\n")


def _run_module(out, node, app_path, source):
    """Execute the application for ``node``; a module that raises or exits non-zero is reported."""
    from splay.events import TaskKilled
    try:
        _execute_app(app_path, source, node)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if status:
            _report_failure(out, node, app_path, None, status)
    except TaskKilled:
        raise                     # the node was stopped while its module blocked: not a failure
    except BaseException as e:
        _report_failure(out, node, app_path, e, 1)


class HostChurn:
    """The nodes of a churn replay in this process: node ``i`` started afresh, stopped, listed.

    The nodes read the membership from :meth:`alive_nodes` (memory, exact at every instant, one
    tuple per change for all of them) rather than from the nodes file: a change costs O(1), and the
    file, a copy for whoever looks from outside, is written again at the replay's end.
    """

    #: Whether this host knows every node of the run (a worker of ``--workers`` knows its own).
    knows_every_node = True

    def __init__(self, out, jobs, app_path, source):
        self.out = out
        self.jobs = {job.position: job for job in jobs}    # a worker of --workers hosts some positions
        self.app_path = app_path
        self.source = source
        self.running = {}          # index -> the InProcessNode up now
        self.every_node = []       # every node object ever started (for the exit status)
        nodes_file = jobs[0].nodes_file if jobs else None
        if nodes_file is None:
            raise ValueError("the jobs of a churn replay need a nodes_file (splay run writes it)")
        from .membership_file import MembershipFile
        self.nodes_file = MembershipFile(nodes_file)
        self._alive = None         # the tuple alive_nodes() gives until the next change
        if self.knows_every_node:
            read_nodes_from(nodes_file, self.alive_nodes)

    def start_node(self, index):
        """Node ``index`` comes up: a new node object runs the application's module anew."""
        from splayc import hub
        node = InProcessNode(index, self.jobs[index])
        self.running[index] = node
        self._alive = None
        self.every_node.append(node)
        hub.spawn_in_node(node, self._run, node)

    def _run(self, node):
        _run_module(self.out, node, self.app_path, self.source)
        if node.failed and self.running.get(node.index) is node:
            # A node whose module failed is not alive: out of the others' lists now.
            del self.running[node.index]
            self.write_nodes_file()

    def stop_node(self, index):
        """Node ``index`` goes down: its threads are killed, its sockets closed."""
        from splayc import hub
        node = self.running.pop(index, None)
        if node is None:
            return False
        self._alive = None
        _crash_simulated_sockets(node)
        hub.hub().request_exit(node)
        return True

    def alive_nodes(self):
        """The nodes up now, in index order: a tuple, the same object until the next change."""
        if self._alive is None:
            self._alive = tuple(self.jobs[i].me for i in sorted(self.running))
        return self._alive

    def write_nodes_file(self):
        """The nodes up changed: the nodes of this process see it now, the nodes file at the end."""
        self._alive = None
        self.nodes_file.stale(self.alive_nodes)

    def replay_ended(self):
        """The churn trace is over: the nodes file lists exactly the nodes up now."""
        self.nodes_file.flush()

    def report(self, record):
        """Send a churn record to the launcher."""
        self.out.write_raw(CONTROL + json.dumps(record) + "\n")

    def wait_for_start(self):
        """Whether the churn replay goes ahead, once it may start: a host of every node starts
        as soon as it is ready (a worker of ``--workers`` waits for the launcher instead)."""
        return True

    def start_time(self):
        """The monotonic time of the replay's t = 0 (after :meth:`wait_for_start`), or None: the
        moment its thread starts, once the scheduler runs."""
        return None


def _crash_simulated_sockets(node):
    """In a simulation (``splay run --sim``), a node that goes down resets its connections, as a
    crashed process's are (its peers see a reset, not a close)."""
    network = sys.modules.get("splay.sim.network")
    if network is not None and network.installed() is not None:
        network.crash(node)


def _node_run(main=None, *args):
    """``events.run`` inside a multi-node process: start ``main`` as thread(s) of the current node."""
    from splay import events
    if main is None:
        return
    for f in (main if isinstance(main, (list, tuple)) else [main]):
        events.thread(functools.partial(f, *args) if args else f)


# The application's code object, compiled once and executed in each node's namespace (a code
# object is immutable; compiling it per node cost about 18 KB and a parse per node).
_code_objects = {}


def _compiled(app_path, source):
    key = (app_path, source)
    code = _code_objects.get(key)
    if code is None:
        code = _code_objects[key] = compile(source, app_path, "exec")
    return code


def _execute_app(app_path, source, node):
    """Execute the application's module for ``node`` as ``__main__`` in a fresh namespace."""
    module = types.ModuleType("__main__")
    module.__file__ = app_path
    module.__builtins__ = __builtins__
    node.namespace = module.__dict__
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        exec(_compiled(app_path, source), module.__dict__)
    finally:
        sys.modules["__main__"] = saved_main


def load_jobs(environ=None):
    """The nodes' jobs from the file named by ``SPLAY_JOBS_FILE``."""
    environ = os.environ if environ is None else environ
    path = environ.get(JOBS_ENV)
    if not path:
        raise ValueError(f"{JOBS_ENV} is not set: this module is started by 'splay run --in-process'")
    with open(path, encoding="utf-8") as f:
        dicts = json.load(f)
    _share_strings(dicts)
    return [Job.from_dict(d) for d in dicts]


def _share_strings(dicts):
    """Give every job the same copy of the strings all jobs repeat (job name, ref, list type, nodes
    file, node ip): parsed from JSON, each job had its own (~300 bytes per node)."""
    shared = {}
    for d in dicts:
        for key in ("ref", "name", "list_type", "nodes_file"):
            if isinstance(d.get(key), str):
                d[key] = shared.setdefault(d[key], d[key])
        me = d.get("me")
        if isinstance(me, dict) and isinstance(me.get("ip"), str):
            me["ip"] = shared.setdefault(me["ip"], me["ip"])


def main(argv=None, output_class=NodeTaggedOutput, scheduler=None, by_position=False,
         host_class=HostChurn):
    """Run every node of the jobs file in this process; returns the exit status.

    ``output_class`` frames the nodes' lines for the launcher. A simulation
    (:mod:`splay.sim.run_host`) passes its own ``output_class`` (lines stamped with virtual time)
    and ``scheduler`` (``events.run`` on the virtual clock). With ``by_position`` node objects are
    numbered by their job's position rather than by their rank in the jobs file (a worker of
    ``--workers`` hosts some of the positions: :mod:`splay.launch.workers_host`), whose
    ``host_class`` (a :class:`HostChurn`) starts and stops its nodes under churn and faults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m splay.launch.in_process APP.py [ARGS...]  (jobs from $SPLAY_JOBS_FILE)",
              file=sys.stderr)
        return 2
    app_path = os.path.abspath(argv[0])
    try:
        jobs = load_jobs()
        with open(app_path, encoding="utf-8") as f:
            source = f.read()
    except (OSError, ValueError) as e:
        print(f"splay in-process: {e}", file=sys.stderr)
        return 2

    from splay import events
    from splayc import hub

    out = output_class(sys.stdout.fileno())
    sys.stdout = sys.stderr = out
    splay.job = CurrentJob()
    events.run, real_run = _node_run, scheduler or events.run
    sys.argv = [app_path, *argv[1:]]
    sys.path[0] = os.path.dirname(app_path)

    from splay import restricted_socket
    for job in jobs:                 # bad restricted-socket settings stop the run before any node
        if restricted_socket.has_settings(job.settings):
            try:
                restricted_socket.new_policy(job.settings)
            except ValueError as e:
                print(f"splay in-process: {e}", file=sys.__stderr__)
                return 2
    churn_file = os.environ.get(churn_replay.CHURN_ENV)
    if churn_file:
        return _main_churn(out, jobs, app_path, source, churn_file, real_run, host_class)
    nodes = [InProcessNode(job.position if by_position else i, job) for i, job in enumerate(jobs)]
    sampler = _start_metrics(lambda: [(n.index, n) for n in nodes])
    for node in nodes:
        hub.set_default_node(node)
        try:
            _run_module(out, node, app_path, source)
        finally:
            hub.set_default_node(None)
    from splay.faults.host import start_for_nodes
    start_for_nodes(host_class, out, jobs, app_path, source, nodes, CONTROL)     # --faults, if given
    try:
        real_run()
    finally:
        out.flush_all()
        if sampler is not None:
            sampler.stop()
    return 1 if any(node.failed for node in nodes) else 0


def _start_metrics(nodes):
    """Sample the metrics of ``nodes()`` into the launcher's metrics pipe, if it gave one."""
    from splay.observatory import sampler
    if not os.environ.get(sampler.METRICS_FD_ENV):
        return None
    return sampler.from_environment(nodes)


def _replay(host, schedule, speed, t0):
    """The churn thread of ``host``: the replay, then the last list in the nodes file."""
    churn_replay.replay_in_host(schedule, speed, host.start_node, host.stop_node,
                                host.write_nodes_file, host.report, t0)
    host.replay_ended()


def _main_churn(out, jobs, app_path, source, churn_file, real_run, host_class=HostChurn):
    """Run the nodes as the churn replay of ``churn_file`` says; returns the exit status."""
    from splayc import hub
    try:
        schedule, speed = churn_replay.read_churn_file(churn_file)
        host = host_class(out, jobs, app_path, source)
    except (OSError, ValueError, KeyError) as e:
        print(f"splay in-process: cannot read the churn replay {churn_file!r}: {e}", file=sys.__stderr__)
        return 2
    hub.set_default_node(None)
    sampler = _start_metrics(lambda: sorted(host.running.items()))
    from splay.faults.host import start_for_churn
    start_for_churn(host, jobs)                                       # --faults, if given
    if not host.wait_for_start():
        return 0                  # the launcher gave up on this worker before its start
    hub.spawn(_replay, host, schedule, speed, host.start_time())
    try:
        real_run()
    finally:
        out.flush_all()
        if sampler is not None:
            sampler.stop()
    return 1 if any(node.failed for node in host.every_node) else 0


if __name__ == "__main__":
    sys.exit(main())

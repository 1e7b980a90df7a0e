"""A fork server: node processes start from a parent that has already imported pysplay.

Starting ``python -m splay.launch.node APP.py`` costs an interpreter start and the imports of
``splay`` and its compiled core -- tens of milliseconds per node, a minute for a thousand nodes.
``splay run`` instead starts one *fork server* (``python -m splay.launch.fork_server``, with the
nodes' interpreter and environment), which imports what every node imports and then waits. For each
node the launcher sends a request over a Unix socket (the command's module and arguments, the
environment, the directory, and the node's stdin/stdout descriptors by ``SCM_RIGHTS``); the server
forks a child that becomes the node process exactly as the command would have started it: own
session and process group, stdout and stderr on the node's pipe, ``PR_SET_PDEATHSIG`` = SIGKILL
towards the launcher, then runs the module as ``__main__`` as ``python -m module`` does -- from a
code object the server found and compiled once, before forking.

The node must be the *launcher's* child (the launcher waits for it, reads its exit status, and
kills its group), not the server's. The server therefore forks with ``CLONE_PARENT``
(:func:`splayc.syscalls.fork_sibling`): the node is born the launcher's child. Where the kernel
refuses that (or with ``SPLAY_FORK_SERVER_TWICE=1`` in the launcher's environment), it forks
twice instead: the intermediate process exits at once, and the node is re-parented to the
launcher, which made itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``) before starting the
server; the server then answers with the node's pid only after the intermediate process has been
reaped, so the launcher never waits for a process that is not yet its child. One fork instead of
two halves the server's time per node.

What a node inherits from the server, beyond a plain start: the modules the server imported
(:data:`PRELOAD`, never ``ctypes``: a sandboxed job must not find it loaded) and nothing else --
the server runs no thread and no event loop, sets no signal handler, and closes every descriptor
but the node's before the node runs. Its objects are frozen out of the garbage collector
(``gc.freeze``) before the first fork: a node's collections never walk them, so the memory
pages they share with the server are not copied into every node. Confinement (sandbox, restricted sockets, emulation) is done
by the node runner in the child, after the fork, as before.

- :class:`ForkServer`: the launcher's side (``start``, ``spawn``, ``close``);
- :class:`ForkedProcess`: a started node, with the part of ``subprocess.Popen``'s interface that
  :class:`~splay.launch.processes.NodeProcess` uses;
- :func:`serve`: the server's loop (``python -m splay.launch.fork_server``).
"""
import array
import gc
import importlib
import importlib.util
import io
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import traceback
import types

__all__ = ["ForkServer", "ForkedProcess", "ForkServerError", "serve", "PRELOAD", "TWICE_ENV", "forkable",
           "set_subreaper"]

#: Modules the server imports once, so that nodes start with them loaded.
PRELOAD = ("splay", "splay.base", "splay.launch.node", "splay.launch.churn_replay",
           "splay.rpc", "splay.rpcq", "splay.urpc", "splay.net", "splay.misc", "splay.log",
           "splay.observatory.sampler", "splay.restricted_socket", "splay.emulation",
           "splay.sandbox", "splay.metrics",
           "pkgutil")          # pkgutil: runpy.run_path (the node's app) imports it

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MAX_REQUEST = 16 * 1024 * 1024        # an environment with a job of many nodes fits
_SOCKET_FD_ENV = "SPLAY_FORK_SERVER_FD"
#: Set to 1 in the server's environment: start nodes by forking twice (the path used before
#: CLONE_PARENT, and still where the kernel refuses it); bench/test_startup.py compares the two.
TWICE_ENV = "SPLAY_FORK_SERVER_TWICE"
_fork_twice = False                    # the server's choice, from TWICE_ENV (see main)
_ENCODING = sys.stdout.encoding if sys.stdout is not None else "utf-8"   # the server's, as a node's


class ForkServerError(Exception):
    """The fork server could not start a node (or could not start itself); says why."""


def forkable(command, python):
    """The module and arguments of ``command`` when the server (run by ``python``) can start it:
    ``[python, "-m", MODULE, ARGS...]``; else ``None`` (the launcher then uses a plain process)."""
    if len(command) >= 3 and command[0] == python and command[1] == "-m":
        return command[2], list(command[3:])
    return None


def set_subreaper(on):
    """Make this process a child subreaper (orphaned descendants become its children) or not."""
    from splayc.syscalls import prctl
    prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


class ForkedProcess:
    """A node started by the fork server, with the part of ``subprocess.Popen`` that
    :class:`~splay.launch.processes.NodeProcess` uses: ``pid``, ``stdin``/``stdout`` (file
    objects or None) and ``wait()``."""

    def __init__(self, pid, stdin, stdout):
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode = None

    def wait(self):
        """Wait for the end; returns the returncode (negative: the signal that ended it)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class ForkServer:
    """The launcher's side: start the server, then :meth:`spawn` node processes from it."""

    def __init__(self, python, env, cwd=None):
        self.python = python
        self.env = dict(env)
        self.cwd = cwd
        self.sock = None
        self.process = None

    def start(self):
        """Start the server and wait until it has imported :data:`PRELOAD`.

        Makes this process a child subreaper first (see the module docstring). ForkServerError
        when the system cannot (no ``prctl``) or the server fails to start."""
        try:
            set_subreaper(True)
        except (ImportError, OSError) as e:
            raise ForkServerError(f"cannot become a child subreaper ({e})") from None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(self.env, **{_SOCKET_FD_ENV: str(theirs.fileno())})
        if os.environ.get(TWICE_ENV) == "1":
            env[TWICE_ENV] = "1"
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", "splay.launch.fork_server"], env=env, cwd=self.cwd,
                stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True)
        except OSError as e:
            ours.close()
            raise ForkServerError(f"the fork server cannot be started with {self.python!r}: "
                                  f"{e.strerror}") from None
        finally:
            theirs.close()
        self.sock = ours
        answer = self._receive()
        if answer.get("ready") is not True:
            self.close()
            raise ForkServerError(f"the fork server did not start: {answer.get('error')}")
        return self

    def _receive(self):
        data = self.sock.recv(65536)
        if not data:
            code = self.process.wait() if self.process is not None else None
            raise ForkServerError(f"the fork server ended (status {code})")
        return json.loads(data)

    def spawn(self, module, args, env, cwd=None, stdin=False, fd_env=None, niceness=None):
        """Start ``python -m module args...`` as a child of this process; returns a
        :class:`ForkedProcess` whose stdout (stderr merged) is a pipe, and stdin a pipe when
        ``stdin`` (else /dev/null). ``fd_env``: ``{ENV_VAR: fd}``, descriptors of this process
        the node gets too, each named to it by that environment variable."""
        out_r, out_w = os.pipe()
        in_r = in_w = None
        if stdin:
            in_r, in_w = os.pipe()
        extra = dict(fd_env or {})
        fds = [out_w] + ([in_r] if stdin else []) + list(extra.values())
        request = {"module": module, "args": list(args), "env": dict(env), "cwd": cwd,
                   "stdin": bool(stdin), "fd_env": list(extra), "niceness": niceness,
                   "parent": os.getpid()}
        try:
            self.sock.sendmsg([json.dumps(request).encode()],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            answer = self._receive()
        except (OSError, ValueError) as e:
            for fd in (out_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise ForkServerError(f"the fork server is gone ({e})") from None
        finally:
            for fd in (out_w, in_r):
                if fd is not None:
                    os.close(fd)
        if "pid" not in answer:
            os.close(out_r)
            if in_w is not None:
                os.close(in_w)
            raise ForkServerError(f"the fork server could not start the node: {answer.get('error')}")
        return ForkedProcess(answer["pid"], os.fdopen(in_w, "wb") if stdin else None,
                             os.fdopen(out_r, "rb"))

    def close(self):
        """Stop the server (the nodes it started are not affected)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


# -- the server ----------------------------------------------------------------------------------

def serve(sock):
    """Import :data:`PRELOAD`, say ready, then start one node per request until the launcher
    closes the socket."""
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        from splayc.syscalls import prctl
        # Every object the server holds now goes to the collector's permanent generation: a
        # node's collections then never walk (and so never write to, copying the page) the
        # preloaded modules' objects it shares with the server.
        gc.collect()
        gc.freeze()
    except BaseException as e:       # the launcher falls back to plain processes and says why
        sock.send(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}).encode())
        return 1
    sock.send(b'{"ready": true}')
    while True:
        try:
            data, fds = _receive_request(sock)
        except EOFError:
            return 0
        try:
            request = json.loads(data)
            _prepare(request["module"])       # a runner of pysplay: compiled here once, not in each node
            pid = _fork_node(sock, request, fds, prctl)
            answer = {"pid": pid}
        except Exception as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(answer).encode())


def _receive_request(sock):
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(_MAX_REQUEST, socket.CMSG_SPACE(64 * fds.itemsize))
    if not data:
        raise EOFError
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def _fork_node(sock, request, fds, prctl):
    """Start the node as a child of the launcher; returns its pid.

    One fork with CLONE_PARENT (:func:`splayc.syscalls.fork_sibling`): the node is the launcher's
    child from the start. Where the kernel refuses it, or with ``SPLAY_FORK_SERVER_TWICE=1`` in
    the server's environment (the benchmark's old path), :func:`_fork_node_twice`.
    """
    if not _fork_twice:
        from splayc.syscalls import fork_sibling
        try:
            pid = fork_sibling()
        except OSError:
            pid = None
        if pid == 0:
            _become_node(sock, request, fds, prctl)            # never returns
        if pid is not None:
            return pid
    return _fork_node_twice(sock, request, fds, prctl)


def _fork_node_twice(sock, request, fds, prctl):
    """Fork twice; the grandchild runs the node; returns its pid once the middle one is reaped."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(r)
            node = os.fork()
            if node == 0:
                os.close(w)
                _become_node(sock, request, fds, prctl)      # never returns
            os.write(w, str(node).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        text = pipe.read()
    os.waitpid(middle, 0)
    if not text:
        raise ForkServerError("the node's process could not be forked")
    return int(text)


def _become_node(sock, request, fds, prctl):
    status = 1
    try:
        os.setsid()
        # Re-parented to the launcher (a subreaper) once the middle process exits: only then can
        # the parent-death signal point at it. If it died meanwhile, so must we.
        while os.getppid() != request["parent"]:
            if os.getppid() == 1:
                os._exit(1)
            os.sched_yield()
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != request["parent"]:
            os._exit(1)
        if request.get("niceness") is not None:
            os.setpriority(os.PRIO_PROCESS, 0, request["niceness"])
        sock.close()
        status = _run_node(request, fds)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _run_node(request, fds):
    """In the node: descriptors, environment, directory, argv, then ``python -m module``."""
    out = fds[0]
    stdin = fds[1] if request["stdin"] else os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    extra = fds[2:] if request["stdin"] else fds[1:]
    named = {name: os.dup(fd) for name, fd in zip(request["fd_env"], extra)}
    keep = sorted(named.values())
    low = 3
    for fd in keep:                       # everything else the server had open goes
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    for fd in keep:
        os.set_inheritable(fd, True)
    # Python objects for the new 0, 1, 2, buffered as the interpreter would have made them.
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = _text_stream(1, unbuffered, line_buffering=False)
    sys.stderr = _text_stream(2, unbuffered, line_buffering=True)
    env = dict(request["env"])
    env.update({name: str(fd) for name, fd in named.items()})
    os.environ.clear()
    os.environ.update(env)
    # sys.path was made from the server's PYTHONPATH; the node's own entries come first, as the
    # interpreter would have put them (right after the directory of the module run).
    extra_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[1:1] = extra_path
    if request.get("cwd"):
        os.chdir(request["cwd"])
    module = request["module"]
    sys.argv = [module, *request["args"]]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _run_as_main(module)
    except SystemExit as e:
        return _exit_status(e.code)
    except KeyboardInterrupt:
        return 130
    return 0


# The module spec and code object of the pysplay runners the server was asked to run (_prepare).
_codes = {}


def _prepare(module):
    """Find and compile (or read from its .pyc) ``module`` once in the server when it is one of
    pysplay's own, whose package the server has loaded: each node then executes the same code
    object instead of finding and compiling its module again (without .pyc files, as under
    PYTHONDONTWRITEBYTECODE, that was a compile per node). Other modules (found on the node's
    own path) are left to the node."""
    package = module.rpartition(".")[0]
    if module in _codes or not module.startswith("splay.") or package not in sys.modules:
        return
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.loader is not None and hasattr(spec.loader, "get_code"):
        _codes[module] = (spec, spec.loader.get_code(module))


def _run_as_main(module):
    """Execute ``module`` afresh as ``__main__``, as ``python -m module`` does (its imports are the
    preloaded ones): from the code object the server prepared, or found as the command would."""
    if module not in _codes:
        sys.modules.pop(module, None)
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    spec, code = _codes[module]
    main = types.ModuleType("__main__")
    main.__dict__.update(__name__="__main__", __file__=spec.origin, __cached__=spec.cached,
                         __loader__=spec.loader, __package__=spec.parent, __spec__=spec)
    sys.modules["__main__"] = main
    sys.argv[0] = spec.origin
    exec(code, main.__dict__)


def _text_stream(fd, unbuffered, line_buffering):
    raw = io.FileIO(fd, "w", closefd=False)
    binary = raw if unbuffered else io.BufferedWriter(raw)
    return io.TextIOWrapper(binary, encoding=_ENCODING, errors="backslashreplace",
                            line_buffering=line_buffering, write_through=unbuffered)


def _exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main():
    global _fork_twice
    _fork_twice = os.environ.pop(TWICE_ENV, None) == "1"
    fd = os.environ.pop(_SOCKET_FD_ENV, None)
    if fd is None:
        print("splay.launch.fork_server is started by splay run (it needs the launcher's socket)",
              file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(fd))
    return serve(sock)


if __name__ == "__main__":
    sys.exit(main())

"""The confined job's Python audit hook (PEP 578): refuses actions a job may not take.

Once installed, a hook cannot be removed: the refusals last for the life of the process. A refused
action raises :class:`splay.Restricted` (for file-system actions :class:`RestrictedFileAccess`,
which is also a ``PermissionError``, so library code that already copes with unreadable files
keeps working) in the thread that tried it; the other threads keep running.

What is refused, by audit event:

* new code: ``compile`` (hence ``exec``/``eval`` of strings, ``ast`` compiled to code),
  ``code.__new__`` (``CodeType(...)``, ``code.replace``) and ``marshal.loads`` of anything but
  the cached bytecode of trusted modules or of the job's modules as deployed. Allowed:
  compiling the exact source (or, for traceback display, a piece of it) of a file of the Python
  installation, of pysplay, or of a job file as it was when the job was confined;
  ``ast.parse`` (it builds no code); the code ``collections.namedtuple`` and ``dataclasses``
  generate for a class.
* processes: ``os.system``, ``os.exec*``, ``os.spawn*``, ``os.posix_spawn*``, ``os.fork``,
  ``os.forkpty``, ``subprocess.Popen``; signals to other processes (``os.kill``, ``os.killpg``).
* native access: every ``ctypes.*`` event, and importing ``ctypes``, ``cffi`` and the modules
  that run arbitrary code (``code``, ``codeop``, ``timeit``, ``pdb``, ``doctest``, ...), their
  extension modules also under another package name (``x._ctypes``), and any extension module
  outside the Python installation and pysplay's packages (the job could have written it); the
  sandbox's own system calls (``splayc.syscalls.*`` events: prctl, seccomp, Landlock, capset,
  unshare), made before the hook is installed.
* files: opening, listing, creating, renaming or deleting anything outside the job directory;
  reading is also allowed in the Python installation, pysplay's packages and the confinement's
  ``allowed_read_paths``. Paths are resolved (symbolic links followed) before the check. When
  ``max_disk`` is set, opening a file for writing is refused once the job directory holds
  ``max_disk`` bytes.
* environment: ``os.putenv``/``os.unsetenv`` (reads are refused by :mod:`splay.sandbox.environ`).
* sockets: creating a Python ``socket.socket`` other than a unix socket; the job talks to the
  network through splay's restricted socket layer, which lives in the compiled core on libuv and
  makes no Python sockets. Unix sockets stay for in-process use (the scheduler's signal wake-up
  is a ``socketpair``); their addresses must be paths inside the job directory.
* self-defence: ``sys.addaudithook``, ``sys._current_frames``, ``gc.get_objects`` /
  ``get_referrers`` / ``get_referents``, ``resource.setrlimit`` / ``prlimit``, unpickling
  globals other than a short list of plain data types (``pickle.find_class``).

This is defence in depth, not a security boundary: Python code in the same process can
corrupt memory through bugs or reach objects the hook does not see. The rlimits and kernel
mechanisms (seccomp, Landlock, dropped capabilities) are the walls; see docs/sandbox.md.
"""
import _io
import _stat
import errno as _errno
import hashlib
import os
import pathlib
import posix
import sys

from splayc.errors import Restricted


class RestrictedFileAccess(Restricted, PermissionError):
    """A file-system action refused by the sandbox; both ``splay.Restricted`` and ``PermissionError``.

    ``errno`` is EACCES and ``filename`` the refused path, as for the kernel's own refusal.
    """

    def __init__(self, message, path):
        super().__init__(_errno.EACCES, message, path)

    def __str__(self):
        return self.strerror


# Modules whose only purpose is to run new code or reach native memory.
DENIED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "cffi", "_cffi_backend", "code", "codeop", "timeit", "pdb", "bdb",
    "doctest", "trace", "profile", "cProfile", "pydoc", "idlelib", "_xxsubinterpreters",
    "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase", "multiprocessing",
    "_multiprocessing", "pty",
})
# The extension modules among them. An extension's init function is found by the last part of the
# name it is loaded as (``innocent._ctypes`` from _ctypes' file initialises the real ``_ctypes``),
# so that part of an imported name is checked too.
DENIED_NATIVE_IMPORTS = frozenset(name for name in DENIED_IMPORTS if name.startswith("_"))

# Globals that unpickling may load: plain data types only (pickle.find_class).
PICKLE_ALLOWED = frozenset(
    [(module, name) for module in ("builtins", "__builtin__") for name in (
        "set", "frozenset", "bytearray", "complex", "range", "slice", "list", "dict", "tuple",
        "int", "float", "str", "bytes", "bool")]
    + [("collections", name) for name in ("OrderedDict", "deque", "defaultdict", "Counter")]
    + [("datetime", name) for name in ("date", "time", "datetime", "timedelta", "timezone")]
    + [("decimal", "Decimal"), ("fractions", "Fraction"), ("_codecs", "encode")])

# Events refused outright, with what the job was trying to do.
REFUSED_EVENTS = {
    "os.system": "running a shell command (os.system)",
    "os.exec": "executing a program (os.exec*)",
    "os.spawn": "starting a process (os.spawn*)",
    "os.posix_spawn": "starting a process (os.posix_spawn)",
    "os.fork": "creating a process (os.fork)",
    "os.forkpty": "creating a process (os.forkpty)",
    "os.startfile": "starting a program (os.startfile)",
    "subprocess.Popen": "starting a process (subprocess)",
    "os.killpg": "signalling a process group (os.killpg)",
    "os.putenv": "changing the environment (os.putenv)",
    "os.unsetenv": "changing the environment (os.unsetenv)",
    "code.__new__": "creating a code object",
    "marshal.load": "loading marshalled code",
    "sys.addaudithook": "adding an audit hook",
    "sys._current_frames": "reading other threads' frames",
    "gc.get_objects": "walking the object graph (gc.get_objects)",
    "gc.get_referrers": "walking the object graph (gc.get_referrers)",
    "gc.get_referents": "walking the object graph (gc.get_referents)",
    "resource.setrlimit": "changing resource limits",
    "resource.prlimit": "changing resource limits",
    "os.add_dll_directory": "loading native libraries",
}
REFUSED_WHY = {
    "os.putenv": "the job has no environment", "os.unsetenv": "the job has no environment",
    "resource.setrlimit": "the job's limits are fixed", "resource.prlimit": "the job's limits are fixed",
}
DEFAULT_WHY = "not allowed in a confined job"

# Events naming one path (first argument) that the job may only read outside its directory.
READ_PATH_EVENTS = frozenset({"os.listdir", "os.scandir"})
# Events naming paths (which argument positions) that must all lie inside the job directory.
WRITE_PATH_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.truncate": (0,), "os.chmod": (0,),
    "os.chown": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
    "os.setxattr": (0,), "os.removexattr": (0,), "os.rename": (0, 1), "os.link": (0, 1),
    "os.symlink": (0, 1), "os.chdir": (0,), "os.mkfifo": (0,), "os.mknod": (0,),
}
# Socket events whose address, for a unix socket, is a path.
UNIX_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
AF_UNIX = 1
_PYCF_ONLY_AST = 0x400
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def snapshot_code(paths, limit=20000):
    """``frozenset((realpath, sha256))`` of the Python files (source and bytecode cache) under ``paths``."""
    found = set()
    for top in paths:
        top = os.path.realpath(top)
        if os.path.isfile(top):
            candidates = [top]
        else:
            candidates = (os.path.join(d, n) for d, _, names in os.walk(top) for n in names
                          if n.endswith((".py", ".pyc")))
        for path in candidates:
            digest = _sha256(path)
            if digest is not None:
                found.add((os.path.realpath(path), digest))
            if len(found) >= limit:
                return frozenset(found)
    return frozenset(found)


def make_hook(directory, read_roots, code_roots, code_files, max_disk=None):
    """Build the audit hook function for one confinement.

    ``directory``: the job directory (full access). ``read_roots``: directories and files the
    job may read. ``code_roots``: directories of trusted code (the Python installation,
    pysplay). ``code_files``: :func:`snapshot_code` of the job's own code. ``max_disk``: bytes.

    The hook must not be steerable by the job it watches, which can rebind any module attribute
    (``os.lstat``, ``builtins.isinstance``, this module's globals). So everything it uses is
    captured here, as closure variables, at confinement time: settings in immutable containers,
    builtins and C functions by reference (``posix``, ``_io``, ``_stat``, ``_hashlib``), and
    paths are resolved by its own code over those C functions, never through ``os.path``.
    Values coming from the job (paths, modes) are reduced to exact ``str``/``int`` with unbound
    methods of the builtin types before they are looked at.
    """
    # builtins and C functions, by reference
    is_a, length, type_of, fspath = isinstance, len, type, posix.fspath
    text, binary, integer = str, bytes, int
    lstat, readlink, getcwd, scandir = posix.lstat, posix.readlink, posix.getcwd, posix.scandir
    is_link, open_file, sha256, getframe = _stat.S_ISLNK, _io.open, hashlib.sha256, sys._getframe
    error_os, error_value, path_like = OSError, ValueError, (pathlib.PurePosixPath, pathlib.PosixPath)
    denied_exception, file_exception = Restricted, RestrictedFileAccess
    fs_encoding = sys.getfilesystemencoding()
    # settings
    directory = os.path.realpath(directory)
    write_roots = (directory,)
    read_roots = tuple(dict.fromkeys((directory, *map(os.path.realpath, read_roots))))
    code_roots = tuple(dict.fromkeys(map(os.path.realpath, code_roots)))
    job_code_paths = frozenset(path for path, _ in code_files)
    stdlib = os.path.dirname(os.__file__)
    generators = frozenset({(os.path.join(stdlib, "collections", "__init__.py"), "namedtuple"),
                            (os.path.join(stdlib, "dataclasses.py"), "_create_fn")})
    ast_parse = (os.path.join(stdlib, "ast.py"), "parse")
    denied_imports, denied_native, pickle_allowed = DENIED_IMPORTS, DENIED_NATIVE_IMPORTS, PICKLE_ALLOWED
    write_path_events = dict(WRITE_PATH_EVENTS)     # a private copy: the module's dict can be edited
    own_pid = os.getpid()
    write_flags, af_unix, only_ast = _WRITE_FLAGS, AF_UNIX, _PYCF_ONLY_AST

    def refuse(action, why=DEFAULT_WHY):
        raise denied_exception(f"sandbox refused {action}: {why}")

    def refuse_path(action, path, why):
        raise file_exception(f"sandbox refused {action} {path!r}: {why}", path)

    def as_text(path):
        """The exact ``str`` of a path argument (str, bytes or a pathlib path; nothing else)."""
        if not is_a(path, (text, binary)):
            if type_of(path) not in path_like:     # a job's own os.PathLike could answer differently twice
                refuse(f"using the path object {type_of(path).__name__}", "paths must be str, bytes or pathlib paths")
            path = fspath(path)
        if is_a(path, binary):
            return binary.decode(path, fs_encoding, "surrogateescape")
        return text.__add__("", path)

    def resolve(path):
        """Absolute path of ``path`` with every symbolic link followed (like os.path.realpath)."""
        full = as_text(path)
        if not text.startswith(full, "/"):
            full = text.__add__(getcwd() + "/", full)
        pending = text.split(full, "/")
        pending.reverse()
        resolved, links = "", 0
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                resolved = text.rpartition(resolved, "/")[0]
                continue
            candidate = resolved + "/" + name
            try:
                mode = lstat(candidate).st_mode
            except error_os:
                resolved = candidate
                continue
            if not is_link(mode):
                resolved = candidate
                continue
            links += 1
            if links > 40:
                refuse_path("resolving", full, "too many levels of symbolic links")
            target = readlink(candidate)
            if text.startswith(target, "/"):
                resolved = ""
            more = text.split(target, "/")
            more.reverse()
            pending.extend(more)
        return resolved or "/"

    def inside(path, roots):
        for root in roots:
            if path == root or text.startswith(path, root + "/") or root == "/":
                return True
        return False

    def read_file(path):
        try:
            with open_file(path, "rb") as f:
                return f.read()
        except error_os:
            return None

    def directory_usage():
        """Bytes of the regular files under the job directory; counting stops at max_disk."""
        total, pending = 0, [directory]
        while pending:
            with scandir(pending.pop()) as listing:
                for item in listing:
                    if item.is_dir(follow_symlinks=False):
                        pending.append(item.path)
                    elif item.is_file(follow_symlinks=False):
                        total += item.stat(follow_symlinks=False).st_size
                        if total >= max_disk:
                            return total
        return total

    def file_source_matches(filename, source, allow_piece):
        """``source`` is the content (or, with allow_piece, a piece) of a trusted code file."""
        if not is_a(filename, (text, binary)) or not is_a(source, (text, binary)):
            return False
        path = resolve(filename)
        trusted_root = inside(path, code_roots)
        if not trusted_root and path not in job_code_paths:
            return False
        content = read_file(path)
        if content is None:
            return False
        if not trusted_root and (path, sha256(content).hexdigest()) not in code_files:
            return False            # a job file changed since confinement: new code
        source = text.encode(source, "utf-8", "surrogateescape") if is_a(source, text) else binary(source)
        return source == content or (allow_piece and length(source) > 0 and binary.__contains__(content, source))

    def check_compile(event, args):
        source, filename = args[:2]
        try:
            frame = getframe(2)         # 0 check_compile, 1 the hook, 2 the code that called compile()
        except error_value:
            frame = None                # called from C with no Python frame (traceback display)
        caller = None if frame is None else (frame.f_code.co_filename, frame.f_code.co_name)
        if caller in generators:
            return
        if caller == ast_parse and integer.__and__(frame.f_locals.get("flags", 0), only_ast):
            return                      # a syntax tree, not code (checked: the module global is mutable)
        trusted_caller = caller is None or inside(caller[0], code_roots) or text.startswith(caller[0], "<frozen ")
        if file_source_matches(filename, source, allow_piece=trusted_caller):
            return
        refuse(f"compiling new code ({filename!r})",
               "a job runs only the code it was deployed with (no exec, eval or compile)")

    def check_marshal(event, args):
        try:
            frame = getframe(2)         # 0 check_marshal, 1 the hook, 2 the caller of marshal.loads
        except error_value:
            frame = None
        if frame is not None and frame.f_code.co_name == "_compile_bytecode" \
                and text.startswith(frame.f_code.co_filename, "<frozen importlib"):
            bytecode_path = frame.f_locals.get("bytecode_path")
            if is_a(bytecode_path, text):
                path = resolve(bytecode_path)
                cached = read_file(path) or b""
                deployed = (path, sha256(cached).hexdigest()) in code_files
                if (deployed or inside(path, code_roots)) and cached[16:] == binary(args[0]):
                    return
        refuse("loading marshalled code (marshal.loads)",
               "only the bytecode cache of trusted modules and of the job as deployed may be loaded")

    def check_open(event, args):
        path, mode, flags = args[:3]
        if path is None or is_a(path, integer):
            return                      # an already open descriptor (os.fdopen, open(fd))
        target = resolve(path)
        if is_a(mode, text):
            mode = text.__add__("", mode)
            writing = "w" in mode or "a" in mode or "x" in mode or "+" in mode
        else:
            writing = is_a(flags, integer) and integer.__and__(flags, write_flags) != 0
        if writing:
            if not inside(target, write_roots):
                refuse_path("writing", target, f"a job writes only inside its directory {directory}")
            if max_disk is not None and directory_usage() >= max_disk:
                refuse_path("writing", target, f"the job directory holds its limit max_disk={max_disk} bytes")
        elif not inside(target, read_roots):
            refuse_path("reading", target, f"a job reads only inside its directory {directory}")

    def check_import(event, args):
        name = text.__add__("", args[0]) if is_a(args[0], text) else ""
        if text.partition(name, ".")[0] in denied_imports or text.rpartition(name, ".")[2] in denied_native:
            refuse(f"importing {name}", "the module runs new code or reaches native memory")
        # An extension module (its file is the second argument) is native code: only trusted
        # directories may provide it, never a file the job could have written.
        if length(args) > 1 and is_a(args[1], (text, binary)):
            origin = resolve(args[1])
            if not inside(origin, code_roots):
                refuse(f"loading the native module {name} from {origin!r}",
                       "extension modules load only from the Python installation and pysplay's packages")

    def check_unpickle(event, args):
        module, name = args[:2]
        if not (is_a(module, text) and is_a(name, text)) \
                or (text.__add__("", module), text.__add__("", name)) not in pickle_allowed:
            refuse(f"unpickling the global {module}.{name}", "unpickled data may only contain plain data types")

    def check_new_socket(event, args):
        if not is_a(args[1], integer) or integer.__add__(0, args[1]) != af_unix:
            refuse("creating a Python socket (use splay.socket, the restricted socket layer)",
                   "jobs reach the network only through the restricted socket layer")

    def check_unix_address(event, args):
        address = args[1] if length(args) > 1 else None
        if is_a(address, (text, binary)):
            if address[:1] in ("\0", b"\0") or not inside(resolve(address), write_roots):
                refuse_path(f"using the unix socket ({event})", address,
                            f"a job reaches unix sockets only inside its directory {directory}")

    def check_kill(event, args):
        if not is_a(args[0], integer) or integer.__add__(0, args[0]) not in (own_pid, 0):
            refuse(f"signalling process {args[0]} (os.kill)", "a job may signal only itself")

    def check_listing(event, args):
        path = args[0] if args else "."
        if path is not None and not is_a(path, integer):
            target = resolve(path)
            if not inside(target, read_roots):
                refuse_path(f"listing ({event})", target, f"a job reads only inside its directory {directory}")

    def check_change(event, args):
        for position in write_path_events[event]:
            if position < length(args) and is_a(args[position], (text, binary)):
                target = resolve(args[position])
                if not inside(target, write_roots):
                    refuse_path(f"changing ({event})", target,
                                f"a job changes files only inside its directory {directory}")

    checks = {"open": check_open, "compile": check_compile, "marshal.loads": check_marshal,
              "import": check_import, "pickle.find_class": check_unpickle, "socket.__new__": check_new_socket,
              "os.kill": check_kill,
              **dict.fromkeys(UNIX_ADDRESS_EVENTS, check_unix_address),
              **dict.fromkeys(READ_PATH_EVENTS, check_listing),
              **dict.fromkeys(WRITE_PATH_EVENTS, check_change)}
    refusals = {event: (action, REFUSED_WHY.get(event, DEFAULT_WHY)) for event, action in REFUSED_EVENTS.items()}
    get_check, get_refusal = checks.get, refusals.get

    def hook(event, args):
        # Runs for every audit event of the process: one dict lookup for the many events it ignores.
        check = get_check(event)
        if check is not None:
            check(event, args)
            return
        refusal = get_refusal(event)
        if refusal is not None:
            refuse(*refusal)
        if text.startswith(event, "ctypes."):
            refuse(f"native call ({event})", "ctypes is not available in a confined job")
        if text.startswith(event, "splayc.syscalls."):
            refuse(f"a confinement system call ({event[16:]})", "the kernel walls are set once, before the job starts")

    return hook


def install(hook):
    """Add ``hook`` to this process for good (PEP 578 hooks cannot be removed)."""
    sys.addaudithook(hook)

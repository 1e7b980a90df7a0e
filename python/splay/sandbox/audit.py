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
  ``allowed_read_paths``. Paths are resolved (symbolic links followed) before the check. The
  metadata functions that raise no audit event (:data:`METADATA_FUNCTIONS`: ``os.stat``,
  ``os.access``...) are replaced by compiled wrappers that look only where the job may read.
  When ``max_disk`` is set, it is a total of the job directory (every byte, at least one block
  per entry) and the soft RLIMIT_FSIZE keeps the files open for writing within what is left.
* environment: ``os.putenv``/``os.unsetenv`` (reads are refused by :mod:`splay.sandbox.environ`).
* sockets: creating a Python ``socket.socket`` other than a unix socket; the job talks to the
  network through splay's restricted socket layer, which lives in the compiled core on libuv and
  makes no Python sockets. Unix sockets stay for in-process use (the scheduler's signal wake-up
  is a ``socketpair``); their addresses must be paths inside the job directory.
* frames and tracing (the manual's ``debug.*``): ``sys._getframe`` and ``tb_frame``/``gi_frame``
  /``cr_frame``/``ag_frame`` read by the job's own code, ``sys.settrace``, ``sys.setprofile``.
* memory outside max_memory: ``os.memfd_create`` (:data:`REFUSED_FUNCTIONS`).
* self-defence: ``sys.addaudithook``, ``sys._current_frames``, ``gc.get_objects`` /
  ``get_referrers`` / ``get_referents``, ``resource.setrlimit`` / ``prlimit``, unpickling
  globals other than a short list of plain data types (``pickle.find_class``).

The hook is compiled (:mod:`splayc.audit_hook`): the tables below are copied into C fields of
the hook when the job is confined, so nothing reachable from Python (frames of a refusal,
closures, this module's globals) changes what it decides. This is still defence in depth, not a
security boundary: native code or a memory-corruption bug in the same process is past it. The rlimits and kernel
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

from splayc.audit_hook import AuditHook, guard_module_functions
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
    """Build the audit hook for one confinement: a :class:`splayc.audit_hook.AuditHook`.

    ``directory``: the job directory (full access). ``read_roots``: directories and files the
    job may read. ``code_roots``: directories of trusted code (the Python installation,
    pysplay). ``code_files``: :func:`snapshot_code` of the job's own code. ``max_disk``: bytes.

    The hook must not be steerable by the job it watches, which can rebind any module attribute
    (``os.lstat``, ``builtins.isinstance``, this module's tables) and walk every frame and
    object a refusal's traceback reaches. So the tables below are copied, here, into the C
    fields of a compiled object: builtins and C functions by reference (``posix``, ``_io``,
    ``_stat``, ``_hashlib``), settings as frozen containers, and paths are resolved by its own
    code over those C functions, never through ``os.path``. The hook runs no Python frame and
    keeps no Python-visible state.
    """
    stdlib = os.path.dirname(os.__file__)
    return AuditHook(
        os.path.realpath(directory),
        read_roots=tuple(dict.fromkeys((os.path.realpath(directory), *map(os.path.realpath, read_roots)))),
        code_roots=tuple(dict.fromkeys(map(os.path.realpath, code_roots))),
        code_files=frozenset(code_files),
        generators=frozenset({(os.path.join(stdlib, "collections", "__init__.py"), "namedtuple"),
                              (os.path.join(stdlib, "dataclasses.py"), "_create_fn")}),
        ast_parse=(os.path.join(stdlib, "ast.py"), "parse"),
        denied_imports=DENIED_IMPORTS, denied_native=DENIED_NATIVE_IMPORTS, pickle_allowed=PICKLE_ALLOWED,
        refused_events=REFUSED_EVENTS, refused_why=REFUSED_WHY, default_why=DEFAULT_WHY,
        read_path_events=READ_PATH_EVENTS, write_path_events=WRITE_PATH_EVENTS,
        unix_address_events=UNIX_ADDRESS_EVENTS, write_flags=_WRITE_FLAGS, own_pid=os.getpid(),
        path_like=(pathlib.PurePosixPath, pathlib.PosixPath), restricted=Restricted,
        file_restricted=RestrictedFileAccess, sha256=hashlib.sha256, open_file=_io.open,
        lstat=posix.lstat, readlink=posix.readlink, getcwd=posix.getcwd, fspath=posix.fspath,
        is_link=_stat.S_ISLNK, fs_encoding=sys.getfilesystemencoding(), max_disk=max_disk)


# File-metadata functions that raise no audit event: replaced in os and posix by wrappers that
# look only where the job may read (a size, mode or mere existence outside is not the job's).
METADATA_FUNCTIONS = ("stat", "lstat", "access", "readlink", "statvfs", "pathconf", "getxattr", "listxattr")
# Functions that raise no audit event and that the job may not call at all.
REFUSED_FUNCTIONS = {
    "memfd_create": ("creating a memfd (os.memfd_create)",
                     "memory in a memfd is outside the address space limited by max_memory"),
}


def install(hook):
    """Add ``hook`` to this process for good (PEP 578 hooks cannot be removed) and guard the
    functions that raise no audit event (:data:`METADATA_FUNCTIONS`, :data:`REFUSED_FUNCTIONS`)."""
    guard_module_functions(hook, (posix, os), METADATA_FUNCTIONS, REFUSED_FUNCTIONS)
    sys.addaudithook(hook)

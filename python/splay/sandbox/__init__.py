"""Confined job processes: :func:`confine` locks the current process into a job sandbox, for good.

The daemon and ``splay run --sandbox`` start each job in its own process, which calls
:func:`confine` once the Python runtime, the ``splay`` package and the compiled core are loaded,
and then runs the job's code. ``python -m splay.sandbox.run --dir D APP.py`` does the same for
one script. What a confined job gets:

* resource limits (``limits``): address space, CPU time, open files, processes, bytes per file;
* its own working directory, the only place it may write;
* a Python audit hook (``audit``) refusing new code (exec, eval, compile), processes, ctypes,
  the environment (``environ``), files outside its directory, and Python sockets;
  ctypes is never loaded in a job process: the kernel walls use the compiled ``splayc.syscalls``;
* the kernel walls this machine offers (``kernel``): no_new_privs, dropped capabilities, a
  seccomp filter and Landlock, each reported as active or not, with the reason;
* the kernel's network walls (``network``): TCP bind confined to ``bind_ports`` (and connect to
  ``connect_ports`` when given) by Landlock, socket families other than unix/IPv4/IPv6 and raw
  sockets refused by seccomp.

A refused action raises :class:`splay.Restricted` naming the action and the limit, in the thread
that tried it; the job's other threads keep running. docs/sandbox.md says what is guaranteed.

    >>> report = confine("/srv/job-42", max_memory=512 << 20, max_cpu=60, max_disk=64 << 20)
    >>> report["audit_hook"], report["seccomp"], bool(report["landlock"])
    (True, True, True)
"""
import os
import site
import sys
import sysconfig
import tempfile
from types import MappingProxyType

import splayc
from splayc.errors import Restricted

import splay

from . import audit, environ, limits
from . import kernel as kernel_walls
from . import network as network_walls

__all__ = ["confine", "current", "Restricted", "RestrictedFileAccess"]

RestrictedFileAccess = audit.RestrictedFileAccess

# Files any job may read besides its own directory (the Python runtime's randomness sources).
RUNTIME_READ_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")

_current = None


def current():
    """The settings of this process's confinement (a read-only mapping), or None when not confined."""
    return _current


def code_roots():
    """Directories of trusted code: the Python installation, site-packages, pysplay's packages."""
    paths = sysconfig.get_paths()
    roots = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    roots += site.getsitepackages()
    if site.ENABLE_USER_SITE and site.USER_SITE:
        roots.append(site.USER_SITE)
    roots += [os.path.dirname(os.path.abspath(splay.__file__)), os.path.dirname(os.path.abspath(splayc.__file__))]
    return [os.path.realpath(root) for root in dict.fromkeys(roots) if os.path.isdir(root)]


def _forget_native_modules():
    """Unload ctypes so that importing it again is an audited (refused) import.

    The sandbox itself never imports ctypes (its system calls are in ``splayc.syscalls``). When
    something else loaded it before confinement, its C types cannot be unloaded and stay reachable
    through ``object.__subclasses__()``: returns the sentence saying so for the report, else None.
    """
    loaded = "_ctypes" in sys.modules
    for name in list(sys.modules):
        if name.partition(".")[0] in ("ctypes", "_ctypes"):
            del sys.modules[name]
    if loaded:
        return ("ctypes was loaded before confinement: its types stay reachable through "
                "object.__subclasses__() and give raw memory access the hook does not see; "
                "do not import ctypes in the process before confine()")
    return None


def confine(directory, *, max_memory=None, max_cpu=None, max_files=None, max_processes=None,
            max_disk=None, allowed_read_paths=(), kernel=True, bind_ports=None, connect_ports=None):
    """Confine the current process, irreversibly, to a job sandbox rooted at ``directory``.

    ``directory`` (created if missing) becomes the working directory and the only writable
    place. ``max_memory``: bytes of address space; ``max_cpu``: CPU seconds (then SIGXCPU raises
    Restricted in the main thread, and SIGKILL follows 2 s later); ``max_files``: open
    descriptors; ``max_processes``: tasks of the user (kernel-enforced only when not root; the
    audit hook and seccomp refuse new processes anyway); ``max_disk``: bytes in the job
    directory (no file may grow past it; no new writer once it is full; restricted_io keeps the
    exact total). ``allowed_read_paths``: more files or directories the job may read (the job's
    own script when it lives elsewhere); the Python files among them, like those in the
    directory, are the job's code. ``kernel=False`` skips the kernel walls (tests, debugging).
    ``bind_ports``: ``(low, high)``, the only TCP ports the kernel lets the job bind (besides
    port 0); ``connect_ports``: ranges of the only TCP ports it may connect to (default: any).
    See :mod:`splay.sandbox.network`.

    Returns a report dict: ``rlimits`` (what was set), ``audit_hook``, ``environment_hidden``,
    ``no_new_privs``, ``capabilities_dropped``, ``seccomp``, ``landlock`` (False, or its ABI and
    rules), ``namespaces``, ``threads_before`` and ``reason`` (why a mechanism is not active).
    Raises ValueError for a bad limit or a directory holding the Python installation or pysplay
    (nothing is changed then), Restricted if the process is already confined.
    """
    global _current
    if _current is not None:
        raise Restricted(f"this process is already confined to {_current['directory']}")
    limits.check(max_memory, max_cpu, max_files, max_processes, max_disk)   # before changing anything
    network_walls.check(bind_ports, connect_ports)
    directory = os.path.realpath(os.fsdecode(directory))
    os.makedirs(directory, exist_ok=True)
    allowed = [os.path.realpath(os.fsdecode(path)) for path in allowed_read_paths]
    roots = code_roots()
    for root in roots:
        if os.path.commonpath([root, directory]) == directory:
            # the job could rewrite code the sandbox trusts (and imports later)
            raise ValueError(f"confine: the job directory {directory} must not contain trusted code ({root})")
    hook = audit.make_hook(directory, read_roots=[*allowed, *roots, *RUNTIME_READ_FILES],
                           code_roots=roots, code_files=audit.snapshot_code([directory, *allowed]),
                           max_disk=max_disk)
    threads_before = kernel_walls.other_threads()

    # The job's files, modules and temporary files live in its directory; bytecode caches are not
    # written (the job may not write beside the modules it imports).
    os.chdir(directory)
    sys.path.insert(0, directory)
    tempfile.tempdir = directory
    sys.dont_write_bytecode = True

    if kernel:
        active, reasons = kernel_walls.confine_kernel(
            directory, read_paths=[*allowed, *kernel_walls.SYSTEM_READ_FILES],
            exec_paths=[*roots, os.path.realpath(sys.base_prefix), *kernel_walls.SYSTEM_LIBRARY_DIRS])
        net_active, net_reasons = network_walls.confine_network(bind_ports, connect_ports)
        active["network"] = net_active
        reasons.update(("network." + name, why) for name, why in net_reasons.items())
    else:
        active = dict.fromkeys(("no_new_privs", "capabilities_dropped", "seccomp", "landlock", "namespaces",
                                "network"), False)
        reasons = dict.fromkeys(active, "kernel=False: kernel mechanisms skipped")
    rlimits = limits.apply(max_memory=max_memory, max_cpu=max_cpu, max_files=max_files,
                           max_processes=max_processes, max_disk=max_disk)
    if max_processes is not None and not rlimits.get("processes_enforced_by_kernel"):
        reasons["rlimits"] = ("RLIMIT_NPROC is not enforced for root: process creation is refused by "
                              "the audit hook and the seccomp filter instead")
    environ.hide()
    ctypes_warning = _forget_native_modules()
    if ctypes_warning:
        reasons["audit_hook"] = ctypes_warning
    audit.install(hook)
    _current = MappingProxyType({"directory": directory, "max_memory": max_memory, "max_cpu": max_cpu,
                                 "max_files": max_files, "max_processes": max_processes,
                                 "max_disk": max_disk, "allowed_read_paths": tuple(allowed)})
    return {"directory": directory, "rlimits": rlimits, "audit_hook": True, "environment_hidden": True,
            **active, "threads_before": threads_before, "reason": reasons}

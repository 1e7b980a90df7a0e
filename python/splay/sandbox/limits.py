"""Kernel resource limits (setrlimit) for a confined job: memory, CPU time, files, processes, disk.

Each limit is set as both soft and hard limit, so the job cannot raise it again (and a confined job
also has no capability to raise a hard limit). CPU time is the exception: the soft limit sends
SIGXCPU, which :func:`install_cpu_handler` turns into a clear :class:`splay.Restricted` error, and
the hard limit, two seconds later, kills the process with SIGKILL whatever the job does.
"""
import math
import os
import resource
import signal

from splayc.errors import Restricted

# Seconds between SIGXCPU (soft limit, a catchable error) and SIGKILL (hard limit).
CPU_GRACE_SECONDS = 2


def check(max_memory=None, max_cpu=None, max_files=None, max_processes=None, max_disk=None):
    """Raise ValueError, naming the argument, unless every limit is None or a positive number."""
    for label, value in (("max_memory", max_memory), ("max_files", max_files),
                         ("max_processes", max_processes), ("max_disk", max_disk)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"confine: {label} must be a positive int or None, got {value!r}")
    if max_cpu is not None and (not isinstance(max_cpu, (int, float)) or isinstance(max_cpu, bool) or max_cpu <= 0):
        raise ValueError(f"confine: max_cpu must be a positive number of seconds or None, got {max_cpu!r}")


def apply(max_memory=None, max_cpu=None, max_files=None, max_processes=None, max_disk=None):
    """Set the rlimits of the current process; returns ``{name: value}`` for the limits set.

    ``max_memory``: address space in bytes (RLIMIT_AS). ``max_cpu``: CPU seconds (RLIMIT_CPU).
    ``max_files``: open descriptors (RLIMIT_NOFILE). ``max_processes``: tasks of this user,
    threads included (RLIMIT_NPROC; the kernel does not apply it to root). ``max_disk``: bytes
    in any one file (RLIMIT_FSIZE; the total is kept by the audit hook and restricted_io).
    Core dumps are always disabled (RLIMIT_CORE 0). Values are checked first (:func:`check`).
    """
    check(max_memory, max_cpu, max_files, max_processes, max_disk)
    applied = {"core": 0}
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, number, value in (("memory", resource.RLIMIT_AS, max_memory),
                                ("files", resource.RLIMIT_NOFILE, max_files),
                                ("processes", resource.RLIMIT_NPROC, max_processes),
                                ("disk_per_file", resource.RLIMIT_FSIZE, max_disk)):
        if value is not None:
            resource.setrlimit(number, (value, value))
            applied[name] = value
    if max_cpu is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime) + max(1, math.ceil(max_cpu))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + CPU_GRACE_SECONDS))
        install_cpu_handler(max_cpu)
        applied["cpu"] = max_cpu
    if max_processes is not None:
        applied["processes_enforced_by_kernel"] = os.getuid() != 0
    return applied


def install_cpu_handler(max_cpu):
    """Make SIGXCPU (CPU soft limit reached) raise Restricted in the main thread."""
    def on_cpu_limit(signum, frame):
        raise Restricted(f"CPU time limit reached: the job used its max_cpu={max_cpu} s "
                         f"(the process is killed {CPU_GRACE_SECONDS} s of CPU later)")
    signal.signal(signal.SIGXCPU, on_cpu_limit)

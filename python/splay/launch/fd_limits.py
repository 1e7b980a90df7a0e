"""Open files for ``splay run``: enough descriptors for the nodes of each process, or a clear error.

Every node holds at least one descriptor (its listening socket) and one more per connection or
call in flight, and the process that hosts nodes holds them all: an ``--in-process`` run of
10,000 nodes needs more than 10,000 descriptors in one process, each worker of ``--workers K``
its share. With one process per node the launcher holds a few descriptors per node (its output
pipe, its pidfd, its metrics pipe).

:func:`for_run` raises the launcher's open-file limit (``RLIMIT_NOFILE``; the node processes and
workers inherit it) before the run starts:

- the soft limit up to the hard limit, as any process may;
- when the hard limit is below what the busiest process is advised to have
  (:data:`ADVISED_PER_NODE` descriptors per node), the hard limit too, up to
  ``/proc/sys/fs/nr_open`` -- which only a process with ``CAP_SYS_RESOURCE`` (root) may do;
- when the hard limit cannot be raised: below :data:`MIN_PER_NODE` per node the run cannot work
  and :class:`FdLimitError` says which limit, how far short, and what to do; between the two, a
  warning.

:func:`raise_to_hard` only raises the soft limit to the hard one: for the processes that do not
know how many descriptors they will need, or whose launcher checked it already (a simulation's
launcher, the Maelstrom runner, each worker of ``--workers``).
"""
import math
import os
import resource

from .options import UsageError

__all__ = ["for_run", "process_needs", "raise_limit", "raise_to_hard", "nr_open", "FdLimitError",
           "BASE", "MIN_PER_NODE", "ADVISED_PER_NODE", "PER_NODE_PROCESS"]

#: Where the kernel's ceiling of any process's open-file limit is set.
NR_OPEN_FILE = "/proc/sys/fs/nr_open"
#: Descriptors a process holds besides its nodes': the interpreter's files, pipes, epoll, logs.
BASE = 64
#: Descriptors a node cannot do without: its listening socket.
MIN_PER_NODE = 1
#: Descriptors advised per node, counting connections and calls in flight: a 10,000-node Chord
#: run with 2,500 nodes per worker held up to 16,000 per worker on an overloaded machine.
ADVISED_PER_NODE = 8
#: Descriptors the launcher holds per node process: output pipe, pidfd, metrics pipe.
PER_NODE_PROCESS = 3


class FdLimitError(UsageError):
    """The open-file limit is too low for the run and cannot be raised (exit status 2)."""


def nr_open():
    """The kernel's ceiling of ``RLIMIT_NOFILE`` (``/proc/sys/fs/nr_open``; 1,048,576 where it
    cannot be read)."""
    try:
        with open(NR_OPEN_FILE, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 1 << 20


def process_needs(nodes, in_process, workers=1):
    """``(what, need, advised)`` for the busiest process of a run of ``nodes`` nodes: ``what``
    names it for messages, ``need`` is the least number of descriptors it can work with,
    ``advised`` what it should have."""
    if not in_process:
        need = BASE + PER_NODE_PROCESS * nodes
        return f"the launcher of {nodes:,} node processes", need, need
    per = math.ceil(nodes / max(1, workers))
    what = (f"{per:,} node(s) in each of {workers} worker processes" if workers > 1
            else f"{nodes:,} node(s) in one process")
    return what, BASE + MIN_PER_NODE * per, BASE + ADVISED_PER_NODE * per


def raise_limit(need, advised, what, advice=""):
    """Raise this process's open-file limit for ``advised`` descriptors (at least ``need``);
    returns ``(soft limit now, warning or None)``. :class:`FdLimitError` when even ``need`` is
    out of reach; ``advice`` ends its message (another way to run)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    if unlimited or hard >= advised:
        target = max(soft, advised if unlimited else hard)
        if target > soft:
            _set(target, hard)
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0], None
    ceiling = nr_open()
    target = min(advised, ceiling)
    if target > hard and _set(target, target):
        if target >= advised:
            return target, None
        return target, (f"{what} are advised {advised:,} open files, but the kernel allows "
                        f"{ceiling:,} ({NR_OPEN_FILE}): raise it (sysctl fs.nr_open) for more room")
    if hard > soft:
        _set(hard, hard)
    if hard >= need:
        return hard, (f"the open-file limit is {hard:,} (ulimit -Hn), below the {advised:,} advised "
                      f"for {what} (calls in flight take descriptors too): a node may fail with "
                      "'Too many open files'; a higher hard limit (root, CAP_SYS_RESOURCE) gives more room")
    if os.geteuid() == 0:
        who = ("this process is root but lacks the CAP_SYS_RESOURCE capability that raising it "
               "takes (containers drop it): give the container a higher limit (docker run --ulimit "
               f"nofile={advised}:{advised}) or the capability (--cap-add SYS_RESOURCE)")
    else:
        who = ("only root (the CAP_SYS_RESOURCE capability) may raise it: run as root, or raise "
               f"your hard limit ('ulimit -Hn {advised}' in a root shell, or a 'nofile' line in "
               "/etc/security/limits.conf)")
    raise FdLimitError(
        f"{what} need at least {need:,} open files (a listening socket each; {advised:,} advised "
        f"with the calls in flight), but the open-file hard limit is {hard:,} (ulimit -Hn) and "
        f"{who}{advice}")


def raise_to_hard():
    """Raise this process's soft open-file limit (inherited by the processes it starts) to its
    hard limit -- to the kernel's ceiling (:func:`nr_open`) when the hard limit is unlimited.

    Returns the soft limit in force afterwards; leaves it unchanged where the system refuses.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = nr_open() if hard == resource.RLIM_INFINITY else hard
    if target > soft:
        _set(target, hard)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _set(soft, hard):
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return True
    except (ValueError, OSError):
        return False


def for_run(opts, stderr):
    """Raise the open-file limit for the run of ``opts`` (``splay run`` options), warning on
    ``stderr`` when it stays below the advised; returns the soft limit. :class:`FdLimitError`
    when the run cannot have the descriptors it needs."""
    n, in_process = opts.nodes, opts.in_process
    workers = getattr(opts, "workers", 1) or 1
    what, need, advised = process_needs(n, in_process, workers)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(1, (hard if hard != resource.RLIM_INFINITY else advised) - BASE)
    if not in_process:
        advice = (f", or run fewer nodes (-n {room // PER_NODE_PROCESS:,} at most) or all of them "
                  "in worker processes (--in-process --workers)")
    else:
        k = math.ceil(n * MIN_PER_NODE / room)
        advice = (f", or spread the nodes over more worker processes (--workers {k} at least)"
                  if k <= n else "")
    limit, warning = raise_limit(need, advised, what, advice)
    if warning is not None:
        stderr.write(f"splay run: warning: {warning}\n")
    return limit

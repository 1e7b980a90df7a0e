"""The daemon's CPU priority over its nodes (``splayd --nice``), and the nodes' own.

A daemon keeps the time of its nodes' lives: it starts them, releases them and stops them when a
churn trace says, forwards their output and answers the controller. On a host its nodes keep busy
it must get the CPU as soon as it wakes, so it raises its priority (``--nice``, -10 by default,
when it runs as root) and gives every node it starts the niceness it was itself started with.

Niceness alone is not enough where the kernel groups tasks by session (``CONFIG_SCHED_AUTOGROUP``,
on unless ``/proc/sys/kernel/sched_autogroup_enabled`` is 0, and only for tasks in the root CPU
cgroup): the scheduler first shares the CPU between sessions, equally whatever their tasks'
niceness, and a node runs in a session of its own (its process group is signalled as one, and it
must not reach the daemon's terminal). Fifty nodes booting on two cores then left a daemon at
nice -10 waiting on the run queue longer than it ran, and its churn actions were up to 154 ms late.
So the niceness is given to the session's group too (``/proc/PID/autogroup``): the daemon's when it
leads its own session, each node's when the nodes' niceness is not the default.
"""
import os


def autogroups_in_use():
    """Whether this kernel shares the CPU between sessions first (see the module docstring)."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() != "0"
    except OSError:
        return False                 # a kernel built without it


def set_autogroup_nice(pid, nice):
    """Give the session group of process ``pid`` the weight of niceness ``nice``; returns whether
    it could (a lower value takes CAP_SYS_NICE; a task outside the root CPU cgroup has its
    cgroup's share instead, and writing changes nothing for it)."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


def raise_daemon_priority(nice):
    """Give this daemon niceness ``nice`` (when lower than its own), and its session group the same
    weight when it leads its own session. Returns what was done, for the log."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice >= current:
        return f"niceness {current} kept (--nice {nice} is not lower)"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        return f"not allowed to raise the priority (--nice {nice}); running at niceness {current}"
    if not autogroups_in_use():
        return f"niceness {nice}"
    if os.getsid(0) != os.getpid():
        # Its session is its terminal's or its starter's: raising that group would raise them too.
        return (f"niceness {nice}; the kernel shares the CPU between sessions first and this "
                f"daemon does not lead its own, so its nodes (each in a session of its own) get "
                f"as much CPU as it does: start it with `setsid splayd ...` (a service manager "
                f"does) for churn actions on time on a busy host")
    if set_autogroup_nice(os.getpid(), nice):
        return f"niceness {nice}, also for its session"
    return f"niceness {nice} (its session's weight could not be set)"


def lower_node_priority(pid, nice):
    """Give a just-started node niceness ``nice`` (the daemon's own at start), and its session the
    same weight when that is not the default. A node that ended already is left alone."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except (ProcessLookupError, PermissionError):
        return
    if nice != 0 and autogroups_in_use():
        set_autogroup_nice(pid, nice)

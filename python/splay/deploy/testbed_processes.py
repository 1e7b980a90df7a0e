"""Finding and stopping the processes of a testbed by what they are, not by recorded PIDs.

``splay testbed down`` must stop a component a user restarted by hand (its PID is not the one in
testbed.json) and what a killed ``splay testbed up`` left. A process belongs to the testbed in
``DIR`` when it is a controller or daemon (``-m splay.deploy.controller`` / ``splay.deploy.daemon``,
possibly under ``ip netns exec``) with an argument naming a path inside ``DIR``, or a node (it has
``SPLAY_JOB`` in its environment) whose working directory is inside ``DIR``. Other programs that
merely mention the directory (an editor, ``tail -f DIR/controller.log``, a shell in it) are left
alone.
"""
import os
import signal
import time

COMPONENT_MODULES = ("splay.deploy.controller", "splay.deploy.daemon")


def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def command_line(pid):
    """The argument list of process ``pid`` (empty when it is gone or unreadable)."""
    raw = _read(f"/proc/{pid}/cmdline")
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]] if raw else []


def _inside(path, directory):
    path = os.path.abspath(path)
    return path == directory or path.startswith(directory + os.sep)


def _ancestors():
    """This process and its ancestors (never stopped: ``down`` may run from inside the tree)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        stat = _read(f"/proc/{pid}/stat", "r")
        if stat is None:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def belongs(pid, directory):
    """True when process ``pid`` is a component or a node of the testbed in ``directory``."""
    argv = command_line(pid)
    if not argv:
        return False
    if any(module in argv for module in COMPONENT_MODULES):
        return any(_inside(arg.split("=", 1)[-1], directory) for arg in argv if os.sep in arg)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if not _inside(cwd, directory):
        return False
    environ = _read(f"/proc/{pid}/environ")
    return environ is not None and (environ.startswith(b"SPLAY_JOB=") or b"\0SPLAY_JOB=" in environ)


def processes_of(directory):
    """PIDs of the live processes that belong to the testbed in ``directory`` (see ``belongs``)."""
    directory = os.path.abspath(directory)
    skip = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in skip and belongs(int(entry), directory):
            stat = _read(f"/proc/{entry}/stat", "r")
            if stat is not None and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def stop_processes_of(directory, timeout=15.0):
    """SIGTERM every process of the testbed in ``directory``, SIGKILL those left after
    ``timeout`` seconds; returns the PIDs that were found."""
    pids = processes_of(directory)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        still = set(processes_of(directory))
        left = [pid for pid in left if pid in still]
    for pid in left:
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass

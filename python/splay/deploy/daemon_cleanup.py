"""What a daemon removes at start-up that a previous, crashed run of itself left behind.

A daemon killed with SIGKILL cannot clean up: the parent-death signal kills its nodes, but not
what they started in their process group; the ``tc`` shaping it installed stays on its device;
its job directories stay on disk. So the daemon records, in its own directory:

- ``jobs/REF/ID/pid``: each node's process group (written when the node is spawned, removed when
  it ended);
- ``shaping.json``: the device it shapes (written before ``tc`` runs, removed once cleared).

At start-up (:func:`clean_previous_run`) it kills every recorded process group still alive and
every process working in its ``jobs`` directory with a ``SPLAY_JOB`` (a node, or its child),
removes the recorded shaping, and deletes job directories older than the retention time.
"""
import json
import logging
import os
import shutil
import signal
import time

log = logging.getLogger("splay.daemon")

PID_FILE = "pid"
SHAPING_RECORD = "shaping.json"


def record_process(directory, pid):
    """Note that the node started in instance ``directory`` leads process group ``pid``."""
    with open(os.path.join(directory, PID_FILE), "w") as f:
        f.write(f"{pid}\n")


def forget_process(directory):
    """The node of instance ``directory`` ended and its group was killed: drop its record."""
    try:
        os.unlink(os.path.join(directory, PID_FILE))
    except FileNotFoundError:
        pass


def record_shaping(base_dir, device):
    """Note, before ``tc`` runs, that this daemon shapes ``device``."""
    with open(os.path.join(base_dir, SHAPING_RECORD), "w") as f:
        json.dump({"device": device}, f)


def forget_shaping(base_dir):
    """The shaping was removed from the device: drop its record."""
    try:
        os.unlink(os.path.join(base_dir, SHAPING_RECORD))
    except FileNotFoundError:
        pass


def _proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def _group_of(pid):
    """The process group of a live ``pid`` (None when it is gone or a zombie)."""
    stat = _proc(pid, "stat")
    if not stat:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    return None if fields[0] == b"Z" else int(fields[2])


def _works_in(pid, jobs_dir):
    """True when ``pid`` is a node (or its child) of this daemon: ``SPLAY_JOB`` in its
    environment and its working directory in ``jobs_dir``."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if not (cwd == jobs_dir or cwd.startswith(jobs_dir + os.sep)):
        return False
    environ = _proc(pid, "environ") or b""
    return environ.startswith(b"SPLAY_JOB=") or b"\0SPLAY_JOB=" in environ


def leftover_processes(base_dir):
    """PIDs of processes a previous run of the daemon in ``base_dir`` left: members of a
    recorded node group, or processes working in its ``jobs`` directory as nodes."""
    jobs_dir = os.path.join(os.path.abspath(base_dir), "jobs")
    groups = set()
    if os.path.isdir(jobs_dir):
        for ref in os.listdir(jobs_dir):
            job = os.path.join(jobs_dir, ref)
            for instance in (os.listdir(job) if os.path.isdir(job) else ()):
                text = _proc_file(os.path.join(job, instance, PID_FILE))
                if text and text.strip().isdigit():
                    groups.add(int(text))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        group = _group_of(pid)
        if group is not None and (group in groups or _works_in(pid, jobs_dir)):
            found.append(pid)
    return sorted(found)


def _proc_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def kill_leftovers(base_dir):
    """SIGKILL what :func:`leftover_processes` finds (with their groups), then drop every process
    record (none of them runs now: a stale one must not name a reused PID later); returns the
    PIDs."""
    pids = leftover_processes(base_dir)
    for pid in pids:
        for kill, target in ((os.killpg, _group_of(pid)), (os.kill, pid)):
            if target is None or (kill is os.killpg and target == os.getpgid(0)):
                continue
            try:
                kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    jobs_dir = os.path.join(base_dir, "jobs")
    for root, _, files in os.walk(jobs_dir):
        if PID_FILE in files:
            forget_process(root)
    return pids


def clear_recorded_shaping(base_dir):
    """Remove the ``tc`` shaping a previous run recorded; returns the device, or None."""
    path = os.path.join(base_dir, SHAPING_RECORD)
    text = _proc_file(path)
    if text is None:
        return None
    try:
        device = json.loads(text)["device"]
    except (ValueError, KeyError, TypeError):
        forget_shaping(base_dir)
        return None
    from splay.emulation import kernel
    try:
        kernel.clear(device)
    except (ValueError, kernel.TcError, OSError) as e:
        log.warning("could not remove the shaping a previous run left on %s: %s", device, e)
        return None
    forget_shaping(base_dir)
    return device


def remove_old_jobs(base_dir, retention):
    """Delete job directories not modified for ``retention`` seconds; returns their refs."""
    jobs_dir = os.path.join(base_dir, "jobs")
    removed = []
    now = time.time()
    for ref in sorted(os.listdir(jobs_dir)) if os.path.isdir(jobs_dir) else ():
        path = os.path.join(jobs_dir, ref)
        newest = max((os.stat(os.path.join(root, name)).st_mtime
                      for root, dirs, files in os.walk(path) for name in dirs + files),
                     default=os.stat(path).st_mtime)
        if now - max(newest, os.stat(path).st_mtime) > retention:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(ref)
    return removed


def clean_previous_run(base_dir, retention):
    """Everything above, in order (processes first: they may hold files); logs what it did and
    returns ``{"processes": [...], "shaping": device or None, "jobs": [...]}``."""
    done = {"processes": kill_leftovers(base_dir), "shaping": clear_recorded_shaping(base_dir),
            "jobs": remove_old_jobs(base_dir, retention)}
    if done["processes"]:
        log.warning("killed %d process(es) a previous run of this daemon left: %s",
                    len(done["processes"]), " ".join(map(str, done["processes"])))
    if done["shaping"]:
        log.warning("removed the kernel shaping a previous run left on %s", done["shaping"])
    if done["jobs"]:
        log.info("removed %d job directorie(s) older than %.0f s", len(done["jobs"]), retention)
    return done

"""Open files for ``splay run``: the limit raised for the nodes of each process, or a clear error.

Each run lowers its own hard limit before it starts (and, when the test runs with the capability
that would let it raise the limit again, drops that capability), so the launcher meets a limit it
cannot raise, as a user without root does.
"""
import os
import pathlib
import resource
import subprocess
import sys

import pytest

from splay.deploy.testbed import free_port_range
from splay.launch import fd_limits

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 90
PR_CAPBSET_DROP = 24
CAP_SYS_RESOURCE = 24

APP = """
import resource
from splay.base import *
from splay import rpc

def main():
    rpc.server(job.me.port)
    if job.position == 0:
        print("limit", *resource.getrlimit(resource.RLIMIT_NOFILE))
    events.sleep(0.2)
    events.exit()

events.run(main)
"""


def may_raise_the_hard_limit():
    """True when this process has CAP_SYS_RESOURCE (raising a hard limit takes it)."""
    with open("/proc/self/status", encoding="ascii") as f:
        caps = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) >> CAP_SYS_RESOURCE & 1)


def limited(hard, keep_capability=False):
    """A preexec_fn: the child starts with open-file limit ``hard`` and cannot raise it (unless
    ``keep_capability``)."""
    from splayc.syscalls import prctl

    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if not keep_capability:
            prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0)   # fails without it: nothing to drop
    return preexec


def splay_run(tmp_path, n, preexec, *args):
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "-n", str(n),
                           "--first-port", str(free_port_range(n)), "--in-process", *args],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS,
                          preexec_fn=preexec)


def test_a_run_the_hard_limit_cannot_hold_is_refused_naming_the_limit_and_what_to_do(tmp_path):
    done = splay_run(tmp_path, 400, limited(200), "--workers", "2")
    assert done.returncode == 2
    assert ("200 node(s) in each of 2 worker processes need at least 264 open files" in done.stderr
            and "the open-file hard limit is 200 (ulimit -Hn)" in done.stderr
            and "CAP_SYS_RESOURCE" in done.stderr
            and "--workers 3 at least" in done.stderr), done.stderr
    assert not (tmp_path / "splay-run.log").exists()              # no node started
    one = splay_run(tmp_path, 400, limited(200))                 # one process: the same check
    assert one.returncode == 2 and "400 node(s) in one process need at least 464" in one.stderr


def test_below_the_advised_limit_the_run_goes_on_with_a_warning(tmp_path):
    done = splay_run(tmp_path, 300, limited(250), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "[node 0] limit 250 250" in done.stdout
    assert "warning: the open-file limit is 250 (ulimit -Hn), below the 1,264 advised" in done.stderr


@pytest.mark.skipif(not may_raise_the_hard_limit(),
                    reason="raising a hard limit takes CAP_SYS_RESOURCE, which this process lacks")
def test_with_the_capability_the_hard_limit_is_raised_for_each_worker(tmp_path):
    done = splay_run(tmp_path, 300, limited(250, keep_capability=True), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "[node 0] limit 1264 1264" in done.stdout and "warning" not in done.stderr


def test_what_each_kind_of_run_needs():
    assert fd_limits.process_needs(50000, True, 4) == (
        "12,500 node(s) in each of 4 worker processes", 12564, 100064)
    assert fd_limits.process_needs(1000, True) == ("1,000 node(s) in one process", 1064, 8064)
    what, need, advised = fd_limits.process_needs(1000, False)
    assert need == advised == 3064 and what == "the launcher of 1,000 node processes"
    assert fd_limits.nr_open() >= 1024


def test_raise_to_hard_gives_a_simulation_the_hard_limit(tmp_path):
    # A simulation's launcher (and the Maelstrom runner, and each worker) only raises the soft
    # limit to the hard one: its nodes see 250 of 250, not the 100 the process started with.
    (tmp_path / "app.py").write_text(APP)

    def soft_below_hard():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 250))
    done = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "-n", "3", "--sim"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS,
                          preexec_fn=soft_below_hard)
    assert done.returncode == 0, done.stderr
    assert "[node 0] limit 250 250" in done.stdout, done.stdout


def test_raise_to_hard_returns_the_soft_limit_now_and_keeps_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert fd_limits.raise_to_hard() == (fd_limits.nr_open() if hard == resource.RLIM_INFINITY else hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] == hard

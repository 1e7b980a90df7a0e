"""``splayd --nice``: the daemon's priority over its nodes (python/splay/deploy/daemon_priority.py),
with real daemons and nodes, and the function in processes of their own."""
import os
import subprocess
import sys

import pytest

from splay.deploy.daemon_priority import autogroups_in_use
from test_deploy_support import PYTHONPATH, start_bed, wait_for

# Says its niceness and its session group's (a node runs in a session of its own), then ends.
PRIORITY_APP = '''
import os
path = "/proc/self/autogroup"
group = open(path).read().split() if os.path.exists(path) else []
print(f"niceness {os.getpriority(os.PRIO_PROCESS, 0)} group {group[-1] if group else '-'}",
      flush=True)
'''

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="raising a priority takes root")
with_autogroups = pytest.mark.skipif(not autogroups_in_use(),
                                     reason="this kernel does not group tasks by session")


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "priority", 1)
    yield bed
    bed.down()


def run_job(bed, **fields):
    """Submit PRIORITY_APP with ``fields``; returns the lines its nodes printed once it ended."""
    job = bed.client().post("/api/jobs", {"code": PRIORITY_APP, **fields})
    info = wait_for(lambda: (lambda j: j if j["state"] in ("ENDED", "KILLED", "FAILED") else None)(
        bed.client().get(f"/api/jobs/{job['id']}")), 60, f"job {job['id']} to end")
    assert info["state"] == "ENDED", info["reason"]
    return [line["line"] for line in
            bed.client().get(f"/api/jobs/{job['id']}/logs?limit=1000")["lines"]
            if line["line"].startswith("niceness ")]


def expected_node_line():
    # The nodes keep the niceness the daemon started with: this test's own.
    group = "0" if autogroups_in_use() else "-"
    return f"niceness {os.getpriority(os.PRIO_PROCESS, 0)} group {group}"


@as_root
def test_the_nodes_of_a_job_keep_the_niceness_the_daemon_started_with(bed):
    assert run_job(bed, nodes=2) == [expected_node_line()] * 2


@as_root
def test_the_nodes_of_a_churn_job_keep_the_niceness_the_daemon_started_with(bed):
    # They used to keep the daemon's raised priority for their whole life (a churn life is never
    # held, and holding was where the niceness was set).
    lines = run_job(bed, factor=1, churn={"trace": "0\n0.2\n", "speed": 1.0})
    assert lines == [expected_node_line()] * 2


@as_root
@with_autogroups
def test_a_daemon_leading_its_session_gives_the_session_its_niceness(bed):
    daemon = bed.daemons[0].pid
    assert os.getpriority(os.PRIO_PROCESS, daemon) == -10
    with open(f"/proc/{daemon}/autogroup") as f:
        assert f.read().split()[-2:] == ["nice", "-10"]
    with open(bed.path("daemon0.log")) as f:
        assert "daemon priority: niceness -10, also for its session" in f.read()


def raise_in_process(nice, new_session):
    """Run raise_daemon_priority(nice) in a fresh process; returns (its answer, its niceness, its
    session group's line)."""
    code = ("import os\n"
            "from splay.deploy.daemon_priority import raise_daemon_priority\n"
            f"print(raise_daemon_priority({nice}))\n"
            "print(os.getpriority(os.PRIO_PROCESS, 0))\n"
            "print(open('/proc/self/autogroup').read().strip())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, start_new_session=new_session,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert done.returncode == 0, done.stderr
    answer, niceness, group = done.stdout.splitlines()
    return answer, int(niceness), group


@as_root
@with_autogroups
def test_a_daemon_in_its_own_session_raises_its_session_group():
    answer, niceness, group = raise_in_process(-5, new_session=True)
    assert (answer, niceness) == ("niceness -5, also for its session", -5)
    assert group.endswith("nice -5")


@as_root
@with_autogroups
def test_a_daemon_in_its_starters_session_leaves_that_session_alone_and_says_how_to_start_it():
    with open("/proc/self/autogroup") as f:
        ours = f.read().strip()
    answer, niceness, group = raise_in_process(-5, new_session=False)
    assert niceness == -5
    assert "does not lead its own" in answer and "setsid splayd" in answer
    assert group == ours                       # the session it shares with this test: unchanged


def test_a_niceness_that_is_not_lower_is_kept():
    current = os.getpriority(os.PRIO_PROCESS, 0)
    answer, niceness, _ = raise_in_process(current + 1, new_session=True)
    assert niceness == current
    assert answer == f"niceness {current} kept (--nice {current + 1} is not lower)"

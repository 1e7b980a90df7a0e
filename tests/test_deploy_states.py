"""Job and instance states that tell the truth, and the exit statuses of `splay submit`/`job`
(real controller, daemons and nodes on loopback)."""
import json
import re
import signal

import pytest

from test_deploy_support import QUICK_APP, TICKER_APP, splay_cli, start_bed, wait_for, write_app

RAISES_AT_IMPORT = 'raise RuntimeError("broken at import")\n'

# Node 1 exits with status 5, the others with 0.
ONE_FAILS = '''
import sys, splay
print(f"node {splay.job.position} done", flush=True)
sys.exit(5 if splay.job.position == 1 else 0)
'''


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "states", 2,
                    controller_args=["--daemon-timeout", "6", "--ping-interval", "1"])
    yield bed
    bed.down()


def job_id_of(result):
    return int(re.search(r"job (\d+) \(ref", result.stderr).group(1))


def test_an_app_that_raises_at_import_fails_submit_and_the_job(bed, tmp_path):
    app = write_app(tmp_path, "raises.py", RAISES_AT_IMPORT)
    result = splay_cli(bed, "submit", app, "-n", 3)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "with an error status" in result.stderr and "exit status 1" in result.stderr
    job_id = job_id_of(result)
    info = wait_for(lambda: (lambda j: j if j["state"] != "RUNNING" else None)(
        bed.client().get(f"/api/jobs/{job_id}")), 30, "the job to end")
    assert info["state"] == "FAILED"
    assert "3 with an error status, 0 lost" in info["reason"]
    shown = splay_cli(bed, "job", job_id)
    assert shown.returncode == 1 and "FAILED" in shown.stdout
    assert "FAILED" in splay_cli(bed, "jobs").stdout


def test_submit_wait_exits_with_how_the_job_ended(bed, tmp_path):
    good = write_app(tmp_path, "quick.py", QUICK_APP)
    result = splay_cli(bed, "submit", good, "-n", 3, "--wait", "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "ENDED" and job["counts"] == {"EXITED": 3}
    assert splay_cli(bed, "job", job["id"]).returncode == 0

    one_fails = write_app(tmp_path, "one_fails.py", ONE_FAILS)
    result = splay_cli(bed, "submit", one_fails, "-n", 3, "--wait", "--json")
    assert result.returncode == 1, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "FAILED"
    assert "1 with an error status, 0 lost: node 1 exit status 5" in job["reason"]
    assert splay_cli(bed, "job", job["id"], "--json").returncode == 1

    assert splay_cli(bed, "submit", good, "-n", 1, "--wait", "--no-wait").returncode == 2


def test_nodes_of_a_dropped_daemon_are_unreachable_at_once_then_lost(bed, tmp_path):
    app = write_app(tmp_path, "ticker.py", TICKER_APP)
    result = splay_cli(bed, "submit", app, "-n", 4, "--factor", 1, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    victim = job["instances"][0]["daemon"]
    index = int(victim[2:])
    on_victim = {i["id"] for i in job["instances"] if i["daemon"] == victim}
    bed.stop_daemon(index, signal.SIGKILL)
    try:
        seen = []

        def states():
            info = bed.client().get(f"/api/jobs/{job['id']}")
            seen.append({i["id"]: i["state"] for i in info["instances"] if i["id"] in on_victim})
            return info
        # The controller saw the connection drop: UNREACHABLE before the 6 s daemon timeout...
        info = wait_for(lambda: (lambda j: j if j["counts"].get("UNREACHABLE") else None)(states()),
                        30, "the dropped daemon's nodes to be UNREACHABLE")
        assert info["counts"]["UNREACHABLE"] == len(on_victim)
        shown = splay_cli(bed, "job", job["id"])
        assert shown.returncode == 0 and "UNREACHABLE" in shown.stdout
        # ... and LOST once the daemon timeout confirms the loss.
        info = wait_for(lambda: (lambda j: j if j["counts"].get("LOST") else None)(states()),
                        30, "the dropped daemon's nodes to be LOST")
        assert info["counts"]["LOST"] == len(on_victim) and info["state"] == "RUNNING"
        assert all(set(s.values()) <= {"RUNNING", "UNREACHABLE", "LOST"} for s in seen)
        assert splay_cli(bed, "job", job["id"]).returncode == 1      # a node was lost
        bed.client().post(f"/api/jobs/{job['id']}/kill")
    finally:
        bed.start_daemon(index)
        bed.wait_daemons(2)


def test_a_job_whose_every_instance_was_lost_is_FAILED(bed, tmp_path):
    app = write_app(tmp_path, "ticker.py", TICKER_APP)
    result = splay_cli(bed, "submit", app, "-n", 2, "--factor", 1, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    for index in range(2):
        bed.stop_daemon(index, signal.SIGKILL)
    try:
        info = wait_for(lambda: (lambda j: j if j["state"] != "RUNNING" else None)(
            bed.client().get(f"/api/jobs/{job['id']}")), 30, "the job to end")
        assert info["state"] == "FAILED"
        assert "0 with an error status, 2 lost" in info["reason"]
        assert "unreachable for more than 6 s" in info["reason"]
        assert info["counts"] == {"LOST": 2}
    finally:
        for index in range(2):
            bed.start_daemon(index)
        bed.wait_daemons(2)

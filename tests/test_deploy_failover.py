"""Failures during a job: the controller restarts, a daemon dies, the controller stays away."""
import json
import os
import signal
import time

import pytest

from test_deploy_support import TICKER_APP, job_processes, splay_cli, start_bed, wait_for, write_app


@pytest.fixture
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "failover", 4,
                    controller_args=["--daemon-timeout", "3", "--ping-interval", "1"])
    yield bed
    bed.down()


def job_info(bed, job_id):
    return bed.client().get(f"/api/jobs/{job_id}")


def run_ticker(bed, tmp_path, nodes):
    app = write_app(tmp_path, "ticker.py", TICKER_APP)
    result = splay_cli(bed, "submit", app, "-n", nodes, "--factor", 1)
    assert result.returncode == 0, result.stderr
    job_id = int(result.stderr.split()[1])
    return job_info(bed, job_id)


def newest_tick_time(bed, job_id):
    rows = bed.client().get(f"/api/jobs/{job_id}/logs?limit=100000")["lines"]
    return max((r["ts"] for r in rows if r["instance_id"] is not None), default=0)


def test_controller_restart_loses_no_job_or_instance(bed, tmp_path):
    job = run_ticker(bed, tmp_path, 12)
    pids = {i["id"]: i["pid"] for i in job["instances"]}
    bed.stop_controller(signal.SIGKILL)              # a crash, not a clean stop
    bed.start_controller()
    bed.wait_daemons(4, timeout=60)
    after = job_info(bed, job["id"])
    assert after["state"] == "RUNNING"
    assert after["counts"] == {"RUNNING": 12}
    assert {i["id"]: i["pid"] for i in after["instances"]} == pids
    restarted = time.time()
    wait_for(lambda: newest_tick_time(bed, job["id"]) > restarted, 30, "logs after the restart")
    assert sorted(job_processes(job["ref"])) == sorted(pids.values())
    assert splay_cli(bed, "kill", job["id"]).returncode == 0
    assert job_processes(job["ref"]) == []


def test_a_dead_daemon_loses_its_instances_and_the_others_keep_running(bed, tmp_path):
    job = run_ticker(bed, tmp_path, 8)
    victim = job["instances"][0]["daemon"]
    lost = {i["id"] for i in job["instances"] if i["daemon"] == victim}
    bed.stop_daemon(int(victim[2:]), signal.SIGKILL)

    def lost_reported():
        info = job_info(bed, job["id"])
        return info if info["counts"].get("LOST") == len(lost) else None
    info = wait_for(lost_reported, 30, "the dead daemon's instances to be LOST")
    assert info["state"] == "RUNNING"
    for instance in info["instances"]:
        assert instance["state"] == ("LOST" if instance["id"] in lost else "RUNNING")
        if instance["id"] in lost:
            assert victim in instance["reason"]
    # The survivors' nodes files now list only the nodes still alive (what job.nodes() reads).
    survivor = next(i for i in info["instances"] if i["id"] not in lost)
    nodes_file = os.path.join(bed.dir, f"daemon{survivor['daemon'][2:]}", "jobs", job["ref"],
                              str(survivor["id"]), "nodes.json")
    alive = sorted((i["ip"], i["port"]) for i in info["instances"] if i["id"] not in lost)

    def nodes_file_updated():
        with open(nodes_file) as f:
            return sorted((n["ip"], n["port"]) for n in json.load(f)) == alive
    wait_for(nodes_file_updated, 15, "the nodes file to list only the alive nodes")
    # The dead daemon's processes died with it; the others still write.
    wait_for(lambda: len(job_processes(job["ref"])) == 8 - len(lost), 15,
             "the dead daemon's processes to die with it")
    now = time.time()
    wait_for(lambda: newest_tick_time(bed, job["id"]) > now, 30, "the survivors' logs")
    daemons = {d["name"]: d["state"] for d in bed.client().get("/api/daemons")}
    assert daemons[victim] == "LOST"
    assert splay_cli(bed, "kill", job["id"]).returncode == 0
    assert job_processes(job["ref"]) == []


def test_daemons_stop_their_instances_when_the_controller_stays_away(tmp_path_factory, tmp_path):
    bed = start_bed(tmp_path_factory, "orphans", 2,
                    daemon_args=["--sandbox", "off", "--orphan-timeout", "2"])
    try:
        job = run_ticker(bed, tmp_path, 4)
        assert len(job_processes(job["ref"])) == 4
        bed.stop_controller()
        wait_for(lambda: not job_processes(job["ref"]), 30, "the daemons to stop their instances")
        for index in range(2):
            assert "stopping all" in open(os.path.join(bed.dir, f"daemon{index}.log")).read()
    finally:
        bed.down()

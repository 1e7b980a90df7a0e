"""At-least-once, deduplicated reporting from daemons to the controller (report_spool.py,
report_dedup.py): nothing a node prints or a churn replay does while the controller is away (or
killed) is lost, and nothing is applied twice."""
import json
import os
import signal
import time

import pytest

from splay.deploy.db import open_database
from splay.deploy.report_dedup import ReportMarks, ReportReceiver
from splay.deploy.report_spool import ReportSpool
from test_deploy_support import job_processes, splay_cli, start_bed, wait_for, write_app

# Prints numbered lines every 20 ms, forever: "n POSITION I".
NUMBERED_APP = '''
import itertools, json, os, time
job = json.loads(os.environ["SPLAY_JOB"])
for i in itertools.count():
    print(f"n {job['position']} {i}", flush=True)
    time.sleep(0.02)
'''


# -- the daemon's spool, on real files ----------------------------------------------------------
def test_spool_numbers_reports_and_keeps_them_across_a_restart(tmp_path):
    spool = ReportSpool(str(tmp_path))
    sent = [spool.append({"type": "log", "lines": [[1, 0.0, "stdout", f"l{i}"]]}) for i in range(5)]
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5]
    spool.ack(2)
    # Killed now: a new daemon on the same directory resends them all (the controller skips 1
    # and 2, it applied them) and goes on at 6.
    killed = ReportSpool(str(tmp_path))
    assert killed.incarnation == spool.incarnation
    assert [m["seq"] for m in killed.pending()] == [1, 2, 3, 4, 5]
    # Stopped cleanly instead: only 3..5 are left.
    spool.close()
    again = ReportSpool(str(tmp_path))
    assert [m["seq"] for m in again.pending()] == [3, 4, 5]
    assert again.append({"type": "churn", "id": 1})["seq"] == 6
    again.ack(6)
    assert again.pending() == []
    assert ReportSpool(str(tmp_path)).append({"type": "exited", "id": 1})["seq"] == 7


def test_a_torn_last_record_is_skipped(tmp_path):
    spool = ReportSpool(str(tmp_path))
    spool.append({"type": "exited", "id": 1})
    spool.close()
    with open(tmp_path / "records.jsonl", "ab") as f:
        f.write(b'{"type":"exited","seq":2,"i')          # the daemon died mid-write
    assert [m["seq"] for m in ReportSpool(str(tmp_path)).pending()] == [1]


def test_spool_overflow_drops_the_oldest_and_counts_them(tmp_path):
    spool = ReportSpool(str(tmp_path), max_bytes=2000)
    for i in range(100):
        spool.append({"type": "log", "lines": [[1, 0.0, "stdout", "x" * 50]] * 2})
    kept = spool.pending()
    assert kept[-1]["seq"] == 100 and len(kept) < 100
    assert spool.dropped == {"messages": 100 - len(kept), "lines": 2 * (100 - len(kept))}
    assert ReportSpool(str(tmp_path), max_bytes=2000).dropped == spool.dropped   # persisted
    spool.overflow_reported()
    assert spool.dropped == {"messages": 0, "lines": 0}


def test_a_new_directory_is_a_new_incarnation(tmp_path):
    assert ReportSpool(str(tmp_path / "a")).incarnation != ReportSpool(str(tmp_path / "b")).incarnation


# -- the controller's marks, in a real database ----------------------------------------------------
def test_marks_skip_repeats_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "c.db")
    db = open_database(path)
    stats = {}
    receiver = ReportReceiver(ReportMarks(db), "d0", "inc1", stats)
    assert not receiver.is_repeat(1)
    receiver.applied_now(1)
    assert receiver.is_repeat(1)
    assert not receiver.is_repeat(3)                 # 2 never came: counted, 3 still applied
    receiver.applied_now(3)
    assert stats == {"reports_repeated": 1, "reports_missing": 1, "reports_applied": 2}
    db.close()
    db = open_database(path)
    assert ReportReceiver(ReportMarks(db), "d0", "inc1", {}).applied == 3
    # A new incarnation of the daemon starts again at 0 and the old mark goes.
    assert ReportReceiver(ReportMarks(db), "d0", "inc2", {}).applied == 0
    assert ReportReceiver(ReportMarks(db), "d0", "inc1", {}).applied == 0


def test_a_nodes_times_never_go_backwards_across_a_controller_restart(tmp_path):
    # Line 250 stored by the controller before it was killed, line 251 (20 ms later on the
    # daemon's clock) by the restarted one, whose clock-offset estimate is 30 ms larger: without
    # the stored time, 251 would sort before 250 in `splay logs` (seen once in the full suite).
    from splay.deploy.logs import LogHub
    db = open_database(str(tmp_path / "c.db"))
    job = db.add_job("j", "code", 1, 0, "none", 1.0, None, None, {}, "RUNNING")
    [instance] = db.add_instances(job["id"], [db.daemon_connected("d", "127.0.0.1", {}, 0.0)],
                                  "RUNNING")
    LogHub(db).ingest(lambda i: job["id"], 0.0, [[instance, 100.00, "stdout", "250"]])
    LogHub(db).ingest(lambda i: job["id"], 0.03, [[instance, 100.02, "stdout", "251"]])
    assert [r["line"] for r in db.logs(job["id"], after_time=0)] == ["250", "251"]


# -- real controller, daemons and nodes ---------------------------------------------------------------
@pytest.fixture
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "reliability", 2,
                    controller_args=["--daemon-timeout", "60", "--ping-interval", "1"])
    yield bed
    bed.down()


def node_lines(bed, job_id):
    """{position: [numbers in the order `splay logs` gives them]}"""
    result = splay_cli(bed, "logs", job_id)
    assert result.returncode == 0, result.stderr
    numbers = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 3 and words[-3] == "n":
            numbers.setdefault(int(words[-2]), []).append(int(words[-1]))
    return numbers


def assert_complete(numbers, nodes):
    assert sorted(numbers) == list(range(nodes))
    for position, seen in numbers.items():
        assert seen == list(range(len(seen))), (position, _first_gap_or_repeat(seen))


def _first_gap_or_repeat(seen):
    return next(((i, s) for i, s in enumerate(seen) if s != i), None)


def test_lines_printed_while_the_controller_is_down_arrive_once_and_in_order(bed, tmp_path):
    app = write_app(tmp_path, "numbered.py", NUMBERED_APP)
    result = splay_cli(bed, "submit", app, "-n", 4, "--factor", 1)
    assert result.returncode == 0, result.stderr
    job_id = int(result.stderr.split()[1])
    job = bed.client().get(f"/api/jobs/{job_id}")
    wait_for(lambda: all(len(v) > 20 for v in node_lines(bed, job_id).values()), 30, "first lines")
    for _ in range(2):                                   # twice: killed, then killed again
        bed.stop_controller(signal.SIGKILL)
        time.sleep(2.0)          # the nodes print ~100 lines each while nobody listens
        bed.start_controller()
        bed.wait_daemons(2, timeout=60)
        assert bed.client().get(f"/api/jobs/{job_id}")["counts"] == {"RUNNING": 4}
    wait_for(lambda: max(r["ts"] for r in bed.client().get(
        f"/api/jobs/{job_id}/logs?limit=100000")["lines"]) > time.time() - 1, 30, "new lines")
    assert splay_cli(bed, "kill", job_id).returncode == 0
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "the job's processes to end")
    numbers = node_lines(bed, job_id)
    assert_complete(numbers, 4)
    assert all(len(seen) > 200 for seen in numbers.values()), {p: len(s) for p, s in numbers.items()}
    status = bed.client().get("/api/status")
    assert status.get("reports_missing", 0) == 0


def test_churn_while_the_controller_is_down_converges(bed):
    # Node 0 goes down (for a while) and node 1 comes up while the controller is away.
    trace = "0 3 50 60\n4 60\n0 60\n"
    job = bed.client().post("/api/jobs", {"code": NUMBERED_APP, "factor": 1,
                                          "churn": {"trace": trace, "speed": 1.0}})
    info = wait_for(lambda: (lambda j: j if j["state"] == "RUNNING" and
                             j["counts"].get("RUNNING") == 2 else None)(
        bed.client().get(f"/api/jobs/{job['id']}")), 30, "the job to run with two nodes up")
    bed.stop_controller(signal.SIGKILL)
    t0 = info["churn"]["t0"]
    time.sleep(max(0.0, t0 + 5.0 - time.time()))          # past node 0's down and node 1's up
    bed.start_controller()
    bed.wait_daemons(2, timeout=60)

    def converged():
        states = {i["position"]: i["state"] for i in
                  bed.client().get(f"/api/jobs/{job['id']}")["instances"]}
        return states if states == {0: "DOWN", 1: "RUNNING", 2: "RUNNING"} else None
    wait_for(converged, 30, "the controller's view to follow the churn done while it was away")
    instances = bed.client().get(f"/api/jobs/{job['id']}")["instances"]
    up = {i["position"]: (i["ip"], i["port"]) for i in instances}
    # The nodes files of the running nodes (a down node's process reads none).
    nodes_files = [os.path.join(bed.dir, f"daemon{i['daemon'][2:]}", "jobs", job["ref"],
                                str(i["id"]), "nodes.json") for i in instances if i["position"]]

    def nodes_files_right():
        for path in nodes_files:
            with open(path) as f:
                if sorted((n["ip"], n["port"]) for n in json.load(f)) != sorted([up[1], up[2]]):
                    return False
        return True
    wait_for(nodes_files_right, 30, "every nodes file (job.nodes()) to list nodes 1 and 2")
    bed.client().post(f"/api/jobs/{job['id']}/kill", {})
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "the job's processes to end")


def test_nodes_files_a_full_disk_kept_stale_are_written_once_there_is_room(tmp_path):
    import subprocess
    from splay.deploy.instances import Instance, InstanceManager
    from splay.deploy.job_limits import Limits
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): no disk to fill")
    try:
        manager = InstanceManager(Limits(), "127.0.0.1", str(small), lambda m: None,
                                  lambda *line: None, sandbox=False)
        instance = Instance(1, "job1", 20000, 0)
        instance.state = "RUNNING"
        manager.instances[1] = instance
        nodes_file = small / "jobs" / "job1" / "1" / "nodes.json"
        nodes_file.parent.mkdir(parents=True)
        manager.update_nodes("job1", [{"ip": "127.0.0.1", "port": 20000}])
        with open(small / "filler", "wb", buffering=0) as filler:
            with pytest.raises(OSError):
                while True:
                    filler.write(b"\0" * 4096)
        later = [{"ip": "127.0.0.1", "port": 20000}, {"ip": "127.0.0.1", "port": 20001}]
        manager.update_nodes("job1", later)             # no room: no error, kept for later
        assert manager.nodes_unwritten == {"job1"}
        assert len(json.loads(nodes_file.read_text())) == 1
        assert not os.path.exists(str(nodes_file) + ".tmp")
        os.unlink(small / "filler")
        manager.write_unwritten_nodes()
        assert json.loads(nodes_file.read_text()) == later and manager.nodes_unwritten == set()
    finally:
        subprocess.run(["umount", "-l", str(small)])

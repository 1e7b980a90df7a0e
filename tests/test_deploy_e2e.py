"""End to end: a controller and 8 daemons (real processes, SQLite), driven by the `splay` command."""
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from test_deploy_support import (COUNTER_APP, PYTHONPATH, QUICK_APP, ROOT, job_processes, splay_cli,
                                 start_bed, wait_for, write_app)

LINES = 20
SKEW = 100.0     # daemon 7 runs 100 s ahead: the controller must correct it


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "e2e", 8, daemon_extra={7: ["--clock-offset", str(SKEW)]})
    yield bed
    bed.down()


def submit(bed, app, *args):
    result = splay_cli(bed, "submit", app, *args, "--json")
    job = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, job


def test_forty_nodes_over_eight_daemons_run_log_in_order_and_die(bed, tmp_path):
    app = write_app(tmp_path, "counter.py", COUNTER_APP.format(lines=LINES))
    before = time.time()
    result, job = submit(bed, app, "-n", 40, "--factor", 1)
    assert result.returncode == 0, result.stderr
    assert job["state"] == "RUNNING"
    assert job["counts"] == {"RUNNING": 40}
    assert sorted(i["position"] for i in job["instances"]) == list(range(40))
    assert len({i["daemon"] for i in job["instances"]}) == 8
    addresses = {(i["ip"], i["port"]) for i in job["instances"]}
    assert len(addresses) == 40

    client = bed.client()

    def all_lines():
        rows = client.get(f"/api/jobs/{job['id']}/logs?after_time=-1&limit=100000")["lines"]
        return rows if sum(r["instance_id"] is not None for r in rows) >= 40 * LINES else None
    rows = wait_for(all_lines, 60, "every node's lines")
    node_rows = [r for r in rows if r["instance_id"] is not None]
    assert len(node_rows) == 40 * LINES
    stamps = [r["ts"] for r in rows]
    assert stamps == sorted(stamps)
    # The skewed daemon's lines were put back on the controller's clock.
    assert all(before - 5 < r["ts"] < time.time() + 5 for r in node_rows)
    per_node = {}
    for row in node_rows:
        position, number = map(int, re.fullmatch(r"node (\d+) line (\d+)", row["line"]).groups())
        assert position == row["position"]
        per_node.setdefault(position, []).append(number)
    assert per_node == {p: list(range(LINES)) for p in range(40)}

    printed = splay_cli(bed, "logs", job["id"])
    assert printed.returncode == 0
    assert len([line for line in printed.stdout.splitlines() if " line " in line]) == 40 * LINES

    assert len(job_processes(job["ref"])) == 40
    killed = splay_cli(bed, "kill", job["id"])
    assert killed.returncode == 0, killed.stderr
    assert "40 KILLED" in killed.stdout
    assert job_processes(job["ref"]) == []
    assert client.get(f"/api/jobs/{job['id']}")["state"] == "KILLED"
    again = splay_cli(bed, "kill", job["id"])
    assert again.returncode == 0 and "already ended" in again.stdout


def test_over_registration_keeps_the_fastest_and_frees_the_rest(bed, tmp_path):
    app = write_app(tmp_path, "counter.py", COUNTER_APP.format(lines=1))
    result, job = submit(bed, app, "-n", 4, "--factor", 3)
    assert result.returncode == 0, result.stderr
    assert job["counts"] == {"RUNNING": 4}
    assert sum(d["instances"] for d in bed.client().get("/api/daemons")) == 4
    assert splay_cli(bed, "kill", job["id"]).returncode == 0
    assert sum(d["instances"] for d in bed.client().get("/api/daemons")) == 0


def test_job_that_ends_by_itself_is_ENDED_and_logs_follow_stops(bed, tmp_path):
    app = write_app(tmp_path, "quick.py", QUICK_APP)
    result, job = submit(bed, app, "-n", 6, "--random", "--list-size", 3)
    assert result.returncode == 0, result.stderr
    followed = splay_cli(bed, "logs", job["id"], "-f", timeout=60)
    assert followed.returncode == 0
    assert sorted(re.findall(r"node (\d+) at .* sees 3", followed.stdout)) == sorted(map(str, range(6)))
    info = bed.client().get(f"/api/jobs/{job['id']}")
    assert info["state"] == "ENDED"
    assert info["counts"] == {"EXITED": 6}
    assert "0 with an error status" in info["reason"]


def test_max_time_kills_the_job(bed, tmp_path):
    app = write_app(tmp_path, "counter.py", COUNTER_APP.format(lines=1))
    result, job = submit(bed, app, "-n", 3, "--max-time", 1)
    assert result.returncode == 0, result.stderr
    info = wait_for(lambda: (lambda j: j if j["state"] == "KILLED" and not
                             any(i["state"] == "RUNNING" for i in j["instances"]) else None)(
        bed.client().get(f"/api/jobs/{job['id']}")), 30, "the max time to kill the job")
    assert "maximum time of 1 s" in info["reason"]
    assert job_processes(job["ref"]) == []


def test_a_job_that_does_not_parse_FAILS_with_the_reason(bed, tmp_path):
    app = write_app(tmp_path, "broken.py", "def broken(:\n    pass\n")
    result, job = submit(bed, app, "-n", 2)
    assert result.returncode == 1
    assert job["state"] == "FAILED"
    assert "does not parse" in job["reason"] and "line 1" in job["reason"]
    shown = splay_cli(bed, "job", job["id"])
    assert shown.returncode == 1 and "FAILED" in shown.stdout


def test_more_nodes_than_daemons_offer_is_NO_RESOURCES(bed, tmp_path):
    app = write_app(tmp_path, "quick.py", QUICK_APP)
    result, job = submit(bed, app, "-n", 8 * 64 + 1)
    assert result.returncode == 1
    assert job["state"] == "NO_RESOURCES"
    assert "needs 513 nodes" in job["reason"] and "room for 512" in job["reason"]
    assert job["instances"] == []


def test_more_memory_than_any_daemon_offers_is_NO_RESOURCES(bed, tmp_path):
    app = write_app(tmp_path, "quick.py", QUICK_APP)
    result, job = submit(bed, app, "-n", 2, "--memory", "64G")
    assert result.returncode == 1
    assert job["state"] == "NO_RESOURCES"
    assert "65536 MiB" in job["reason"] and "512 MiB" in job["reason"]


def test_command_line_errors_have_distinct_exit_statuses(bed, tmp_path):
    missing = splay_cli(bed, "submit", tmp_path / "nowhere.py", "-n", 2)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert splay_cli(bed, "submit", "-n", "x").returncode == 2
    assert splay_cli(bed, "job", "999999").returncode == 4
    wrong_token = splay_cli(bed, "jobs", SPLAY_TOKEN="not-the-token")
    assert wrong_token.returncode == 3 and "token" in wrong_token.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
    unreachable = splay_cli(bed, "daemons", SPLAY_CONTROLLER=nobody)
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    bad = bed.client()
    with pytest.raises(Exception, match="'nodes' must be at least 1"):
        bad.post("/api/jobs", {"code": "", "nodes": 0})
    listed = splay_cli(bed, "daemons")
    assert listed.returncode == 0 and listed.stdout.count("CONNECTED") == 8


def test_a_daemon_with_a_wrong_key_is_refused(bed, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "splay.deploy.daemon", "--controller",
         f"127.0.0.1:{bed.state['daemon_port']}", "--key", "wrong", "--name", "intruder",
         "--dir", str(tmp_path / "intruder"), "--ports", "40000-40010"],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert result.returncode == 3
    assert "wrong daemon key" in result.stderr
    assert "intruder" not in [d["name"] for d in bed.client().get("/api/daemons")]


def test_malformed_protocol_messages_are_logged_and_the_controller_keeps_serving(bed):
    address = ("127.0.0.1", bed.state["daemon_port"])
    with socket.create_connection(address, timeout=10) as raw, raw.makefile() as reader:
        raw.sendall(b"this is not json\n")          # garbage instead of a hello
        answer = json.loads(reader.readline())
        assert answer["type"] == "refused" and "bad hello" in answer["reason"]
    key = open(os.path.join(bed.dir, "daemon.key")).read().strip()
    hello = {"type": "hello", "key": key, "name": "raw-test", "ip": "127.0.0.1", "time": time.time(),
             "limits": {"max_instances": 0, "max_memory": 1, "start_port": 1, "end_port": 1,
                        "max_bandwidth": 0}}
    with socket.create_connection(address, timeout=10) as raw, raw.makefile() as reader:
        raw.sendall(json.dumps(hello).encode() + b"\n")
        assert json.loads(reader.readline())["type"] == "welcome"
        for garbage in (b"{broken\n", b"[1, 2]\n", b'{"type": "nonsense"}\n',
                        b'{"type": "exited"}\n', b'{"type": "log", "lines": [[1]]}\n'):
            raw.sendall(garbage)
            while True:                          # pings may come first
                answer = json.loads(reader.readline())
                if answer["type"] != "ping":
                    break
            assert answer["type"] == "error"
        raw.sendall(b'{"type": "pong", "t0": 0, "time": 0}\n')
    status = wait_for(lambda: (lambda st: st if st["daemons_connected"] == 8 else None)(
        bed.client().get("/api/status")), 30, "the raw connection to be closed")
    assert status["protocol_errors"] >= 5
    log = open(os.path.join(bed.dir, "controller.log")).read()
    assert "sent a malformed message" in log


@pytest.mark.parametrize("jobs_before", [0, 3])
def test_a_job_killed_while_it_deploys_leaves_nothing_behind(bed, jobs_before):
    client = bed.client()
    code = COUNTER_APP.format(lines=1)
    # Jobs submitted just before keep this one QUEUED a little longer (it waits for its turn).
    earlier = [client.post("/api/jobs", {"code": code, "nodes": 10}) for _ in range(jobs_before)]
    job = client.post("/api/jobs", {"name": "early", "code": code, "nodes": 40, "factor": 1})
    answer = client.post(f"/api/jobs/{job['id']}/kill")
    assert answer["killed"] is True
    for other in earlier:
        client.post(f"/api/jobs/{other['id']}/kill")
    info = wait_for(lambda: (lambda j: j if not any(i["state"] in ("REGISTERED", "STARTING", "RUNNING")
                                                    for i in j["instances"]) else None)(
        client.get(f"/api/jobs/{job['id']}")), 60, "every instance to be stopped")
    assert info["state"] == "KILLED"
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "no process of the job")
    try:
        wait_for(lambda: sum(d["instances"] for d in client.get("/api/daemons")) == 0, 60,
                 "every slot to be free again")
    except AssertionError:
        jobs = [client.get(f"/api/jobs/{j['id']}") for j in earlier + [job]]
        live = [(j["id"], j["state"], i) for j in jobs for i in j["instances"]
                if i["state"] in ("REGISTERED", "STARTING", "RUNNING")]
        raise AssertionError(f"slots still taken: {live}")


def test_the_chord_example_forms_its_ring_over_eight_daemons(bed):
    from examples import checkers
    app = os.path.join(ROOT, "examples", "chord.py")
    # Arguments after -- reach every node's sys.argv (demo=0: the checks below are made from here).
    result = splay_cli(bed, "submit", app, "-n", 40, "--factor", 1, "--json",
                       "--", "period=0.2", "demo=0")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "RUNNING" and job["settings"]["app_args"] == ["period=0.2", "demo=0"]
    assert len({i["daemon"] for i in job["instances"]}) == 8
    nodes = [{"ip": i["ip"], "port": i["port"]}
             for i in sorted(job["instances"], key=lambda i: i["position"])]

    def converge():
        ring = checkers.wait_for(lambda: checkers.chord_ring_problems(nodes), timeout=90)
        lookups, hops = ([], []) if ring else checkers.chord_lookup_problems(nodes, samples=20)
        return ring, lookups, hops
    ring, lookups, hops = checkers.run(converge)
    assert ring == [] and lookups == []
    assert all(0 <= h <= 40 for h in hops)
    assert bed.client().post(f"/api/jobs/{job['id']}/kill")["killed"] is True
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "no process of the job")

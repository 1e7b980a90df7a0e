"""``splay submit --churn TRACE`` and ``--topology FILE``: churn replay and network emulation on a
deployment (a real controller and daemons on this machine, real node processes)."""
import json

import pytest

from test_deploy_support import job_processes, splay_cli, start_bed, wait_for, write_app

# Says when it came up (its own clock), then, every 0.1 s, how many nodes job.nodes() lists.
WATCH_APP = '''
import time, splay
job = splay.job
print(f"up {job.position} {time.time():.6f}", flush=True)
while True:
    print(f"sees {job.position} {len(job.nodes())} {time.time():.6f}", flush=True)
    time.sleep(0.1)
'''

CRASH_APP = '''
import sys
print("crashing", flush=True)
sys.exit(3)
'''


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "churn", 4)
    yield bed
    bed.down()


def submit_churn(bed, trace, code=WATCH_APP, speed=1.0, **fields):
    return bed.client().post("/api/jobs", {"code": code, "factor": 1, **fields,
                                           "churn": {"trace": trace, "speed": speed}})


def final(bed, job, timeout=60):
    return wait_for(lambda: (lambda j: j if j["state"] in ("ENDED", "KILLED", "FAILED") else None)(
        bed.client().get(f"/api/jobs/{job['id']}")), timeout, f"job {job['id']} to end")


def lines(bed, job):
    return bed.client().get(f"/api/jobs/{job['id']}/logs?limit=100000")["lines"]


def test_a_50_node_trace_is_replayed_on_schedule(bed):
    # Every node up once, staggered; every fifth comes back for a second life; all end down.
    trace = []
    for i in range(50):
        times = [0.5 + 0.04 * i, 3.5 + 0.04 * i]
        if i % 5 == 0:
            times += [5.0 + 0.04 * i, 6.0 + 0.04 * i]
        trace.append(" ".join(f"{t:.2f}" for t in times))
    job = submit_churn(bed, "\n".join(trace) + "\n")
    assert job["nb_nodes"] == 50
    info = final(bed, job, 90)
    assert info["state"] == "ENDED", info["reason"]
    assert all(i["state"] == "KILLED" and i["reason"] == "down at the end of its churn trace"
               for i in info["instances"])
    churn = info["churn"]
    assert (churn["starts"], churn["stops"]) == (60, 60)
    # On schedule: a start is a release of a process created ahead (PRESTART), never a process's
    # boot (100 ms or more here), so most actions are milliseconds late at most. The target on
    # the worst one (100 ms) is a benchmark's (bench/churn_figures.py): beside the rest of CI a
    # daemon waits for the CPU like any process, and its worst action has been 167 ms late.
    assert churn["median_lag_ms"] < 50, churn
    assert churn["max_lag_ms"] < 1000, churn
    # Each node's own first line comes after its scheduled up, never before.
    t0 = churn["t0"]
    ups = {}
    for line in lines(bed, job):
        if line["line"].startswith("up "):
            _, position, when = line["line"].split()
            ups.setdefault(int(position), []).append(float(when) - t0)
    assert sorted(ups) == list(range(50))
    for position, times in ups.items():
        scheduled = [0.5 + 0.04 * position] + ([5.0 + 0.04 * position] if position % 5 == 0 else [])
        assert len(times) == len(scheduled)
        for seen, due in zip(sorted(times), scheduled):
            assert seen >= due - 0.005, (position, seen, due)
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "no process of the job")


def test_job_nodes_lists_the_nodes_alive_now(bed):
    trace = "0 3\n0\n1\n"          # node 0 leaves at 3 s; node 2 joins at 1 s
    job = submit_churn(bed, trace)

    def seen_by_node_1():
        """(time since t0, how many nodes node 1's job.nodes() listed), from its log lines."""
        t0 = bed.client().get(f"/api/jobs/{job['id']}")["churn"]["t0"]
        return [(float(when) - t0, int(count)) for kind, position, count, when in
                (line["line"].split() for line in lines(bed, job) if line["line"].startswith("sees "))
                if position == "1"]

    wait_for(lambda: any(t > 4.0 for t, _ in seen_by_node_1()), 60, "node 1 to run 4 s")
    seen = seen_by_node_1()
    # Two nodes up to 1 s, three from 1 s to 3 s, two from 3 s on; a nodes update takes a moment.
    assert {n for t, n in seen if 0.3 < t < 0.9} == {2}
    assert {n for t, n in seen if 1.3 < t < 2.9} == {3}
    assert {n for t, n in seen if t > 3.3} == {2}
    bed.client().post(f"/api/jobs/{job['id']}/kill")
    assert final(bed, job)["state"] == "KILLED"


def test_a_node_that_crashes_comes_back_at_its_next_up(bed):
    job = submit_churn(bed, "0 1 1.5\n", code=CRASH_APP)
    info = final(bed, job)
    assert info["state"] == "FAILED"          # its last life ended with an error status
    [instance] = info["instances"]
    assert (instance["state"], instance["exit_code"]) == ("EXITED", 3)
    text = [line["line"] for line in lines(bed, job)]
    assert text.count("crashing") == 2
    assert any("churn: node 0 crashed" in t and "exit status 3" in t for t in text)
    assert "1 with an error status" in info["reason"]


def test_a_killed_churn_job_leaves_no_process_and_frees_its_slots(bed):
    # Processes for ups within the first seconds are created ahead and wait: they must go too.
    job = submit_churn(bed, "0.5\n1 2 3\n4\n8\n")
    wait_for(lambda: bed.client().get(f"/api/jobs/{job['id']}")["state"] == "RUNNING", 60,
             "the job to run")
    wait_for(lambda: job_processes(job["ref"]), 30, "the first processes")
    assert bed.client().post(f"/api/jobs/{job['id']}/kill")["killed"] is True
    assert final(bed, job)["state"] == "KILLED"
    info = wait_for(lambda: (lambda j: j if not {"REGISTERED", "RUNNING", "DOWN"} & {
        i["state"] for i in j["instances"]} else None)(bed.client().get(f"/api/jobs/{job['id']}")),
        30, "every instance to end")
    assert {i["state"] for i in info["instances"]} == {"KILLED"}
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "no process of the job")
    wait_for(lambda: sum(d["instances"] for d in bed.client().get("/api/daemons")) == 0, 30,
             "every slot to be free again")


def test_churn_speed_replays_faster(bed):
    job = submit_churn(bed, "0 4\n2 6\n", speed=4.0)
    info = final(bed, job)
    assert info["state"] == "ENDED"
    t0 = info["churn"]["t0"]
    downs = [line for line in lines(bed, job) if "churn: node 1 down" in line["line"]]
    assert len(downs) == 1 and abs(downs[0]["ts"] - t0 - 1.5) < 0.2
    assert info["churn"]["speed"] == 4.0


@pytest.mark.parametrize("body, message", [
    ({"churn": {"trace": "0 5\n3 x\n"}}, "churn trace:2:3: 'x' is not a time"),
    ({"churn": {"trace": "5 1\n"}}, "not after"),
    ({"churn": {"trace": "# nothing\n"}}, "no node line"),
    ({"churn": {"trace": "0\n", "speed": 0}}, "positive"),
    ({"churn": "0 5\n"}, "'churn' must be an object"),
    ({"churn": {"trace": "0\n1\n"}, "nodes": 3}, "the trace sets the number of nodes"),
    ({"nodes": 2, "args": "period=1"}, "'args' must be a list of strings"),
    ({"nodes": 2, "args": ["period=1", 3]}, "'args' must be a list of strings"),
])
def test_bad_submissions_are_refused_with_the_reason(bed, body, message):
    from splay.deploy.cli import CommandError
    with pytest.raises(CommandError) as error:
        bed.client().post("/api/jobs", {"code": "print(1)\n", **body})
    assert message in str(error.value)
    assert bed.client().get("/api/status")["daemons_connected"] == 4     # still serving


def test_splay_submit_churn_from_the_command_line(bed, tmp_path):
    app = write_app(tmp_path, "app.py", WATCH_APP)
    trace = write_app(tmp_path, "trace.txt", "0 1\n0.5 1.5\n")
    result = splay_cli(bed, "submit", app, "--churn", trace, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["nb_nodes"] == 2 and job["churn"]["nodes"] == 2
    assert final(bed, job)["state"] == "ENDED"


def test_splay_submit_refuses_a_bad_trace_with_its_line(bed, tmp_path):
    app = write_app(tmp_path, "app.py", WATCH_APP)
    trace = write_app(tmp_path, "trace.txt", "0 1\n2 oops\n")
    result = splay_cli(bed, "submit", app, "--churn", trace)
    assert result.returncode != 0
    assert f"{trace}:2:3" in result.stderr and "'oops'" in result.stderr
    result = splay_cli(bed, "submit", app, "--churn", trace.replace("trace", "missing"))
    assert result.returncode != 0 and "cannot read the churn trace" in result.stderr
    good = write_app(tmp_path, "good.txt", "0\n")
    result = splay_cli(bed, "submit", app, "--churn", good, "-n", "4")
    assert result.returncode != 0 and "the trace sets the number of nodes" in result.stderr


def test_splay_submit_topology_shapes_the_deployed_nodes(bed, tmp_path):
    from test_emulation_socket import TOPOLOGY_APP
    app = write_app(tmp_path, "app.py", TOPOLOGY_APP)
    model = write_app(tmp_path, "net.model", "uniform delay_ms=40\n")
    result = splay_cli(bed, "submit", app, "-n", "2", "--factor", "1", "--topology", model,
                       "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    info = final(bed, job)
    assert info["state"] == "ENDED", info["reason"]
    rtts = [float(line["line"].split()[1]) for line in lines(bed, job)
            if line["line"].startswith("rtt ")]
    assert len(rtts) == 1 and abs(rtts[0] - 0.080) <= 0.008, rtts


def test_splay_submit_refuses_a_bad_topology_with_its_line(bed, tmp_path):
    app = write_app(tmp_path, "app.py", "print(1)\n")
    model = write_app(tmp_path, "bad.model", "uniform delay_ms=-5\n")
    result = splay_cli(bed, "submit", app, "-n", "2", "--topology", model)
    assert result.returncode != 0 and f"{model}:1" in result.stderr
    small = write_app(tmp_path, "small.matrix", "a b\na - 10\nb 10 -\n")
    result = splay_cli(bed, "submit", app, "-n", "3", "--topology", small)
    assert result.returncode != 0 and "describes 2 nodes, fewer than the job's 3" in result.stderr


def test_splay_submit_churn_compiles_a_churn_script(bed, tmp_path):
    app = write_app(tmp_path, "app.py", WATCH_APP)
    script = write_app(tmp_path, "small.churn", "at 0s join 2\nat 1s leave 1\nat 2s stop\n")
    result = splay_cli(bed, "submit", app, "--churn", script, "--json")
    assert result.returncode == 0, result.stderr
    assert f"{script} is a churn script, compiled with seed 0" in result.stderr
    assert "at 1s leave 1" in result.stderr and "2 nodes, 4 up/down events" in result.stderr
    job = json.loads(result.stdout)
    assert job["nb_nodes"] == 2
    assert final(bed, job)["state"] == "ENDED"
    typo = write_app(tmp_path, "typo.churn", "at 0s jion 2\n")
    result = splay_cli(bed, "submit", app, "--churn", typo)
    assert result.returncode == 2
    assert f"{typo}:1:7" in result.stderr and f"splay churn {typo} -o {typo}.trace" in result.stderr

"""A deployed job's metrics, end to end: node -> daemon -> controller's store -> /metrics, the
run-data document and ``splay report JOB``.

One job of two nodes on two daemons of a loopback testbed: node 1 makes exactly 1,000 rpcq calls
to node 0 (3 of them fail on purpose) and counts them with an application counter. The counts in
``GET /metrics`` (parsed with prometheus_client's own parser) and in the job's run data match
what the application did; the nodes' starts and stops are events on the same timeline.
"""
import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from splay.observatory import rundata
from test_deploy_support import splay_cli, start_bed, wait_for, write_app

# Node 0 serves; node 1 makes 1,000 calls (3 fail on purpose). Both stay up until the file named
# by their first argument exists.
APP = '''
import os, sys
from splay.base import *
from splay import metrics
import splay.rpcq as rpcq

def ping_me(x):
    if x < 0:
        raise ValueError("negative")
    return x + 1

def main():
    rpcq.server(job.me.port)
    if job.position == 1:
        other = job.nodes()[0]
        for _ in range(600):
            if rpcq.ping(other) is not None:
                break
            events.sleep(0.05)
        else:
            sys.exit("node 0 never answered")
        done = metrics.counter("done")
        for i in range(997):
            assert rpcq.call(other, ["ping_me", i]) == i + 1
            done.inc()
        for i in range(3):
            assert not rpcq.acall(other, ["ping_me", -1])[0]
        print("calls done", flush=True)
    while not os.path.exists(sys.argv[1]):
        events.sleep(0.05)
    rpcq.stop_server(job.me.port)

events.run(main)
'''


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "metrics", 2, max_instances=1)
    yield bed
    bed.down()


def scrape(bed):
    """The controller's /metrics as {name: family}."""
    request = urllib.request.Request(bed.url + "/metrics",
                                     headers={"Authorization": f"Bearer {bed.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, **labels):
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    family_name = name[:-len("_total")] if name.endswith("_total") else name
    family_name = family_name.rsplit("_bucket", 1)[0].rsplit("_count", 1)[0]
    family = families.get(family_name) or families.get(name)
    return sum(s.value for s in (family.samples if family else ())
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture(scope="module")
def finished(bed, tmp_path_factory):
    """The job, once it ended, with what /metrics showed while it ran."""
    directory = tmp_path_factory.mktemp("app")
    app = write_app(directory, "calls.py", APP)
    stop = str(directory / "stop")
    with open(app) as f:
        job = bed.client().post("/api/jobs", {"name": "calls.py", "code": f.read(), "nodes": 2,
                                              "args": [stop]})
    key = str(job["id"])

    def all_counted(f):
        """Both nodes' newest samples (each node samples on its own) hold every call."""
        return all(value(f, "splay_rpc_calls_total", job=key, side=side, function="ping_me")
                   == 1000 for side in ("made", "served")) and \
            value(f, "splay_app_done_total", job=key) == 997
    live = wait_for(lambda: (lambda f: f if all_counted(f) else None)(scrape(bed)), 90,
                    "1,000 calls made and served in /metrics")
    open(stop, "w").close()
    wait_for(lambda: bed.client().get(f"/api/jobs/{key}")["state"] == "ENDED", 60,
             "the job to end")
    return {"job": job, "live": live}


def test_metrics_of_a_running_job_count_every_call(bed, finished):
    f, key = finished["live"], str(finished["job"]["id"])
    assert value(f, "splay_rpc_calls_total", job=key, mode="rpcq", function="ping_me",
                 side="made") == 1000
    assert value(f, "splay_rpc_calls_total", job=key, mode="rpcq", function="ping_me",
                 side="served") == 1000
    assert value(f, "splay_rpc_errors_total", job=key, function="ping_me") >= 3
    assert value(f, "splay_rpc_latency_seconds_count", job=key, function="ping_me") == 1000
    assert value(f, "splay_nodes", job=key, state="RUNNING") == 2
    assert value(f, "splay_app_done_total", job=key) == 997
    assert value(f, "splay_bytes_sent_total", job=key) > 0
    # The job ended: its samples are written within a second, and it is still shown.
    stored = "splay_controller_metric_samples_stored_total"
    after = wait_for(lambda: (lambda f: f if value(f, stored) else None)(scrape(bed)), 30,
                     "samples written to the store")
    assert value(after, "splay_rpc_calls_total", job=key, function="ping_me",
                 side="served") == 1000
    assert value(after, "splay_nodes", job=key, state="EXITED") == 2


def test_run_data_of_a_deployed_job_has_samples_and_node_events(bed, finished):
    key = str(finished["job"]["id"])
    doc = rundata.validate(bed.client().get(f"/api/jobs/{key}/rundata"))
    assert doc["run"]["mode"] == "deployed" and doc["run"]["state"] == "ENDED"
    latest = {}
    for s in doc["samples"]:
        latest[s["node"]] = s
    assert set(latest) == {0, 1}
    assert latest[1]["rpc"]["rpcq/ping_me"]["made"] == 1000
    assert latest[0]["rpc"]["rpcq/ping_me"]["served"] == 1000
    assert latest[1]["app"]["done"]["value"] == 997
    kinds = [(e["kind"], e["node"]) for e in doc["events"]]
    for node in (0, 1):
        assert ("node_start", node) in kinds and ("node_stop", node) in kinds
    # A sample's time is the whole second it was taken in: the nodes' samples of one second
    # line up, and no node has two in one second.
    started = doc["run"]["started"]
    assert all(abs((s["t"] + started) - round(s["t"] + started)) < 1e-5 for s in doc["samples"])
    seconds = [(s["node"], s["t"]) for s in doc["samples"]]
    assert len(seconds) == len(set(seconds))


def test_splay_report_of_a_deployed_job_holds_its_figures(bed, finished, tmp_path):
    out = tmp_path / "job.html"
    result = splay_cli(bed, "report", finished["job"]["id"], "-o", out)
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert "rpcq/ping_me" in html and '"served":1000' in html.replace(" ", "")


def test_every_life_of_a_churned_node_is_on_the_timeline(bed, finished):
    from test_deploy_support import TICKER_APP
    trace = "0.2 1.5 2.5 4.0\n0.2 4.0\n"      # node 0 leaves and comes back; node 1 stays
    job = bed.client().post("/api/jobs", {"name": "ticker.py", "code": TICKER_APP, "factor": 1,
                                          "churn": {"trace": trace, "speed": 1.0}})
    wait_for(lambda: bed.client().get(f"/api/jobs/{job['id']}")["state"] == "ENDED", 60,
             "the churn job to end")
    doc = rundata.validate(bed.client().get(f"/api/jobs/{job['id']}/rundata"))
    node0 = [(e["kind"], e["detail"].split(":")[0]) for e in doc["events"] if e["node"] == 0]
    assert [k for k, _ in node0 if k != "churn"] == ["node_start", "node_stop"] * 2
    assert [d for k, d in node0 if k == "churn"] == ["churn"] * 4
    starts = [e["t"] for e in doc["events"] if e["node"] == 0 and e["kind"] == "node_start"]
    assert 1.5 < starts[1] - starts[0] < 3.5
    # Samples of both lives of node 0 (a new process counts from 0 again).
    lives = {s["t"] >= starts[1] for s in doc["samples"] if s["node"] == 0}
    assert lives == {False, True}


def test_a_node_spoiling_its_metrics_pipe_is_cut_off_and_marked_on_the_timeline(bed, finished):
    spoiler = ("import json, os, time\n"
               "if json.loads(os.environ['SPLAY_JOB'])['position'] == 1:\n"
               "    os.write(int(os.environ['SPLAY_METRICS_FD']), b'this is not a batch\\n')\n"
               "time.sleep(1.5)\n")
    job = bed.client().post("/api/jobs", {"name": "spoiler.py", "code": spoiler, "nodes": 2})
    wait_for(lambda: bed.client().get(f"/api/jobs/{job['id']}")["state"] == "ENDED", 60,
             "the job to end as usual")
    doc = rundata.validate(bed.client().get(f"/api/jobs/{job['id']}/rundata"))
    faults = [(e["node"], e["detail"]) for e in doc["events"] if e["kind"] == "fault"]
    assert faults == [(1, "metrics cut off: it sent a metrics line that is not JSON "
                          "(b'this is not a batch')")]
    assert {s["node"] for s in doc["samples"]} == {0}       # node 0's metrics went on
    logs = "".join(open(os.path.join(bed.dir, f"daemon{i}.log")).read() for i in range(2))
    assert "metrics cut off: it sent a metrics line that is not JSON" in logs

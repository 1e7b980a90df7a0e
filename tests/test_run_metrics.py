"""`splay run` collects every node's metrics into metrics.json and serves them to Prometheus.

Real runs (process per node and --in-process) of an application making exactly 1,000 rpcq calls:
the counts in metrics.json and in the Prometheus exposition (parsed by prometheus_client's own
parser) match what the application did; a node that sends garbage on its metrics pipe is cut
off with a logged reason while the run and the other node's metrics go on.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from splay.deploy.testbed import free_port_range
from splay.observatory import rundata
from splay.observatory.prometheus import DocumentSource, exposition

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))

# Node 0 serves; node 1 makes 1,000 calls (3 of them fail on purpose) and counts them itself.
# Both wait for the file named by their first argument (tests that scrape the run while it is
# alive create it when they are done; the others beforehand) and for node 1's calls to be done.
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
        hops = metrics.histogram("hops", buckets=[1, 2, 4])
        for i in range(997):
            assert rpcq.call(other, ["ping_me", i]) == i + 1
            done.inc()
            hops.observe(i % 3)
        for i in range(3):
            assert not rpcq.acall(other, ["ping_me", -1])[0]
        if len(sys.argv) > 2:     # the garbage test: this node spoils its own metrics pipe
            os.write(int(os.environ["SPLAY_METRICS_FD"]), b"this is not a batch\\n")
        print("calls done")
        open(sys.argv[1] + ".calls", "w").close()
    while not (os.path.exists(sys.argv[1]) and os.path.exists(sys.argv[1] + ".calls")):
        events.sleep(0.05)
    rpcq.stop_server(job.me.port)

events.run(main)
'''


def splay_run(tmp_path, *args):
    return [sys.executable, "-m", "splay.cli", "run", str(tmp_path / "app.py"), "-n", "2",
            "--log-dir", str(tmp_path), "--quiet", *map(str, args)]


def rpc_totals(doc):
    """The newest sample of each node, summed per rpc key."""
    latest = {}
    for s in doc["samples"]:
        latest[s["node"]] = s
    return latest


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["processes", "in-process"])
def test_metrics_json_counts_exactly_what_the_application_did(app, mode):
    port = free_port_range(2)       # fixed ports collide with other programs' ephemeral ones
    stop = app / "stop"
    stop.touch()
    out = subprocess.run(splay_run(app, "--first-port", port, *mode, "--", stop),
                         env=ENV, cwd=app, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    doc = rundata.load(str(app / "metrics.json"))
    assert doc["run"]["mode"] == ("in-process" if mode else "processes")
    assert doc["run"]["state"] == "ended" and doc["run"]["ended"] is not None
    latest = rpc_totals(doc)
    server, caller = latest[0]["rpc"]["rpcq/ping_me"], latest[1]["rpc"]["rpcq/ping_me"]
    assert (caller["made"], caller["served"], caller["errors"]) == (1000, 0, 3)
    assert (server["made"], server["served"], server["errors"]) == (0, 1000, 3)
    assert sum(caller["latency"]) == 1000
    assert latest[1]["app"]["done"] == {"type": "counter", "value": 997.0}
    assert latest[1]["app"]["hops"]["counts"] == [665, 332, 0, 0]
    assert latest[1]["bytes_sent"] > 1000 * 20 and latest[0]["bytes_received"] > 1000 * 20
    kinds = [(e["kind"], e["node"]) for e in doc["events"]]
    assert kinds[0] == ("job_state", None) and kinds[-1] == ("job_state", None)
    assert {("node_start", 0), ("node_start", 1), ("node_stop", 0), ("node_stop", 1)} <= set(kinds)
    assert any(line["line"] == "calls done" and line["node"] == 1 for line in doc["logs"])

    body, content_type = exposition(DocumentSource(doc))
    assert content_type.startswith("text/plain")
    served = made = None
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == "splay_rpc_calls_total" and s.labels["function"] == "ping_me":
                if s.labels["side"] == "served":
                    served = s.value
                else:
                    made = s.value
            if s.name == "splay_rpc_latency_seconds_count" and s.labels["function"] == "ping_me":
                assert s.value == 1000
            if s.name == "splay_app_done_total":
                assert s.value == 997
    assert (served, made) == (1000, 1000)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(r.read().decode()) for s in f.samples}


def test_metrics_port_serves_the_live_run_to_prometheus(app):
    stop, metrics_port = app / "stop", free_port_range(1)
    proc = subprocess.Popen(splay_run(app, "--first-port", free_port_range(2), "--metrics-port",
                                      metrics_port, "--metrics-interval", "0.2", "--", stop),
                            env=ENV, cwd=app, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        served = None
        while time.monotonic() < deadline:
            try:
                values = scrape(metrics_port)
            except OSError:          # the launcher is not listening yet
                values = {}
            served = {k: v for k, v in values.items() if k[0] == "splay_rpc_calls_total"
                      and ("side", "served") in k[1] and ("function", "ping_me") in k[1]}
            if list(served.values()) == [1000]:
                break
            time.sleep(0.1)          # polling a live endpoint until the counts arrive
        assert list(served.values()) == [1000]
        job = dict(next(iter(served))[1])["job"]
        assert values[("splay_nodes", (("job", job), ("state", "running")))] == 2
    finally:
        stop.touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_a_node_sending_garbage_is_cut_off_and_the_run_goes_on(app):
    stop = app / "stop"
    stop.touch()
    out = subprocess.run(splay_run(app, "--first-port", free_port_range(2), "--", stop, "garbage"),
                         env=ENV, cwd=app, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    log = (app / "splay-run.log").read_text()
    assert "metrics of node 1 cut off: it sent a metrics batch that is not JSON" in log
    doc = rundata.load(str(app / "metrics.json"))
    assert rpc_totals(doc)[0]["rpc"]["rpcq/ping_me"]["served"] == 1000   # node 0 unaffected
    assert any(e["kind"] == "fault" and e["node"] == 1 for e in doc["events"])
    assert doc["nodes"][1]["state"] == "ended"


def test_bad_metrics_options_are_refused(app):
    for args, message in ((["--metrics-interval", "0"], "positive number of seconds"),
                          (["--metrics-port", "70000"], "between 1 and 65535"),
                          (["--no-metrics", "--metrics-port", "9000"], "cannot go with"),
                          (["--no-metrics", "--report", "r.html"], "--report plots the run"),
                          (["--report", "no/such/dir/r.html"], "its directory does not exist")):
        out = subprocess.run(splay_run(app, *args, "--", "x"), env=ENV, cwd=app,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr, out.stderr


# Each node sleeps for the seconds of its first argument from its own start, then ends. (Not
# until a wall time computed by the test: under load, starting `splay run` alone can take 2-3 s.)
SLEEPER = '''
import sys
from splay.base import *
events.run(lambda: events.sleep(float(sys.argv[1])))
'''


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["processes", "in-process"])
def test_churn_actions_and_partitions_are_events_of_the_timeline(tmp_path, mode):
    (tmp_path / "app.py").write_text(SLEEPER)
    # node 0 stays up; node 1 leaves at 1 s; node 2 joins at 0.5 s
    (tmp_path / "trace.txt").write_text("0\n0 1\n0.5\n")
    out = subprocess.run(
        [sys.executable, "-m", "splay.cli", "run", str(tmp_path / "app.py"), "--log-dir",
         str(tmp_path), "--quiet", "--first-port", str(free_port_range(3)), "--churn", "trace.txt",
         "--partition", "0|1-2@0.5-1.5", *mode, "--", "2.5"],
        env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    doc = rundata.load(str(tmp_path / "metrics.json"))
    events = [(e["kind"], e["node"], e["detail"]) for e in doc["events"]]
    churn = [e for e in events if e[0] == "churn"]
    assert sorted(churn) == [("churn", 0, "up"), ("churn", 1, "down"), ("churn", 1, "up"),
                             ("churn", 2, "up")]
    # Each node starts when the trace brings it up, not when its process is created ahead.
    starts = {e["node"]: e["t"] for e in doc["events"] if e["kind"] == "node_start"}
    ups = {e["node"]: e["t"] for e in doc["events"] if e["kind"] == "churn" and e["detail"] == "up"}
    assert starts.keys() == {0, 1, 2} and all(starts[n] >= ups[n] for n in starts)
    assert starts[2] > max(ups[0], ups[1])        # its process may exist from t = 0 on
    stops = [e for e in events if e[0] == "node_stop"]
    assert sorted(e[1] for e in stops) == [0, 1, 2]
    partitions = [e for e in doc["events"] if e["kind"] == "partition"]
    assert [e["detail"] for e in partitions] == ["cut 0 | 1-2", "healed 0 | 1-2"]
    assert partitions[1]["t"] - partitions[0]["t"] == pytest.approx(1.0, abs=1e-3)

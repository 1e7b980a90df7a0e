"""splay.observatory.rundata: the run-data document round-trips and bad documents are refused."""
import copy
import json

import pytest

from splay.observatory import rundata
from splay.observatory.buckets import empty


def sample_doc():
    run = {"id": "r1", "mode": "processes", "app": "app.py", "app_sha256": "ab" * 32,
           "command": "splay run app.py -n 2", "args": [], "seed": 7, "nodes": 2,
           "started": 1700000000.0, "ended": None, "state": "running", "pysplay": "0.1.0",
           "python": "3.11", "churn": None, "topology": None, "partitions": [], "interval": 1.0}
    nodes = [{"node": i, "address": f"127.0.0.1:{20000 + i}", "daemon": None, "state": "running",
              "started": 0.1, "ended": None, "exit_code": None} for i in range(2)]
    lat = empty()
    lat[3] = 5
    samples = [{"t": 1.0, "node": 0,
                "rpc": {"rpcq/ping": {"made": 5, "served": 0, "errors": 0, "timeouts": 0,
                                      "latency": lat}},
                "bytes_sent": 100, "bytes_received": 90, "threads": 3, "rss": 10_000_000,
                "cpu": 0.2,
                "app": {"hops": {"type": "histogram", "counts": [1, 0, 0], "sum": 1.0,
                                 "bounds": [1, 2]},
                        "view": {"type": "gauge", "value": 4}}}]
    events = [{"t": 0.1, "kind": "node_start", "node": 0, "detail": ""},
              {"t": 0.2, "kind": "job_state", "node": None, "detail": "running"}]
    logs = [{"t": 0.5, "node": 0, "line": "hello"}]
    return rundata.new(run, nodes, samples, events, logs)


def test_dump_then_load_round_trips(tmp_path):
    doc = sample_doc()
    path = tmp_path / "metrics.json"
    rundata.dump(doc, str(path))
    assert rundata.load(str(path)) == json.loads(json.dumps(doc))


BAD = [
    (lambda d: d.update(version=2), "version 2"),
    (lambda d: d.pop("events"), "lacks 'events'"),
    (lambda d: d["run"].update(mode="cloud"), "run.mode"),
    (lambda d: d["run"].pop("seed"), "lacks the field 'seed'"),
    (lambda d: d["nodes"][0].update(exit_code="0"), "nodes\\[0\\].exit_code"),
    (lambda d: d["samples"][0]["rpc"].update({"grpc/x": d["samples"][0]["rpc"]["rpcq/ping"]}),
     "grpc/x"),
    (lambda d: d["samples"][0]["rpc"]["rpcq/ping"].update(latency=[1, 2]), "25 bucket counts"),
    (lambda d: d["samples"][0]["app"].update(x={"type": "summary"}), "'counter', 'gauge'"),
    (lambda d: d["events"].reverse(), "back in time"),
    (lambda d: d["events"][0].update(kind="explosion"), "kind 'explosion'"),
    (lambda d: d["samples"][0].update(threads=True), "threads has the wrong type"),
]


@pytest.mark.parametrize("spoil,message", BAD)
def test_validate_says_what_is_wrong(spoil, message):
    doc = copy.deepcopy(sample_doc())
    spoil(doc)
    with pytest.raises(ValueError, match=message):
        rundata.validate(doc)


def test_load_refuses_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        rundata.load(str(path))


def test_dump_refuses_an_invalid_document_and_writes_nothing(tmp_path):
    doc = sample_doc()
    doc["run"]["mode"] = "cloud"
    path = tmp_path / "metrics.json"
    with pytest.raises(ValueError):
        rundata.dump(doc, str(path))
    assert not path.exists()


def test_dump_without_check_writes_what_it_is_given(tmp_path):
    # The launcher's periodic writes: the collector checked every sample as it came in.
    doc = sample_doc()
    doc["run"]["mode"] = "cloud"
    path = tmp_path / "metrics.json"
    rundata.dump(doc, str(path), check=False)
    assert json.loads(path.read_text())["run"]["mode"] == "cloud"
    with pytest.raises(ValueError, match="run.mode 'cloud'"):
        rundata.load(str(path))

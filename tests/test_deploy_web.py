"""The controller's HTTP server (aiohttp): /metrics, run data, the event stream, reports, errors."""
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from splay.observatory import rundata
from test_deploy_support import QUICK_APP, start_bed, wait_for, write_app


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "web", 2)
    yield bed
    bed.down()


def fetch(bed, path, token=True):
    """(status, headers, body bytes) of a GET."""
    headers = {"Authorization": f"Bearer {bed.token}"} if token else {}
    request = urllib.request.Request(bed.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def ended_job(bed, tmp_path_factory):
    app = write_app(tmp_path_factory.mktemp("app"), "quick.py", QUICK_APP)
    with open(app) as f:
        job = bed.client().post("/api/jobs", {"name": "quick.py", "code": f.read(), "nodes": 4})
    wait_for(lambda: bed.client().get(f"/api/jobs/{job['id']}")["state"] == "ENDED", 60,
             "the quick job to end")
    return job


def test_metrics_need_the_token_and_parse_with_prometheus_client(bed, ended_job):
    status, _, body = fetch(bed, "/metrics", token=False)
    assert status == 401 and "token" in json.loads(body)["error"]
    status, headers, body = fetch(bed, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["splay_daemons"].samples
    connected = [s for s in families["splay_daemons"].samples if s.labels["state"] == "CONNECTED"]
    assert connected[0].value == 2


def test_run_data_of_an_ended_job_is_a_valid_document(bed, ended_job):
    status, _, body = fetch(bed, f"/api/jobs/{ended_job['id']}/rundata")
    assert status == 200
    doc = json.loads(body)
    rundata.validate(doc)
    assert doc["run"]["mode"] == "deployed" and doc["run"]["state"] == "ENDED"
    assert [n["node"] for n in doc["nodes"]] == [0, 1, 2, 3]
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds.count("node_start") == 4 and kinds.count("node_stop") == 4
    assert doc["logs"], "the job's log lines are in the document"
    later = json.loads(fetch(bed, f"/api/jobs/{ended_job['id']}/rundata?since=1e9")[2])
    assert later["events"] == [] and later["logs"] == []


def test_bad_since_and_unknown_job_are_refused(bed, ended_job):
    status, _, body = fetch(bed, f"/api/jobs/{ended_job['id']}/rundata?since=soon")
    assert status == 400 and "'since' must be a number" in json.loads(body)["error"]
    status, _, body = fetch(bed, "/api/jobs/999999/rundata")
    assert status == 404 and "no job" in json.loads(body)["error"]
    assert fetch(bed, "/api/status")[0] == 200       # still serving


def test_stream_of_an_ended_job_sends_its_data_then_ends(bed, ended_job):
    status, headers, body = fetch(bed, f"/api/jobs/{ended_job['id']}/stream")
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [block.split("\n") for block in body.decode().strip().split("\n\n")]
    assert [e[0] for e in events] == ["event: rundata", "event: end"]
    rundata.validate(json.loads(events[0][1][len("data: "):]))


def test_report_of_a_job_is_one_html_file(bed, ended_job):
    status, headers, body = fetch(bed, f"/api/jobs/{ended_job['id']}/report")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<script src=" not in body and b"Plotly" in body


def test_page_and_its_plotly_are_served_without_token(bed):
    status, headers, body = fetch(bed, "/", token=False)
    assert status == 200 and b"<html" in body
    status, _, body = fetch(bed, "/static/plotly.min.js", token=False)
    assert status == 200 and len(body) > 1_000_000
    assert fetch(bed, "/static/..%2fapi.py", token=False)[0] == 404
    assert fetch(bed, "/nothing", token=False)[0] == 404

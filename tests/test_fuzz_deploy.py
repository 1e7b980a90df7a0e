"""Hostile input to a running controller and a running daemon (real processes, real sockets):
generated daemon-channel messages (malformed, truncated, of the wrong shape, replayed,
unauthenticated) and HTTP API requests. Both sides keep serving, say why they refused something,
and the controller's database stays intact. Hypothesis draws the inputs; the number of examples
is bounded so that the file runs in tens of seconds (``SPLAY_FUZZ_EXAMPLES`` raises it)."""
import json
import os
import socket
import sqlite3
import threading
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from splay.deploy.protocol import DAEMON_MESSAGES
from test_deploy_support import start_bed, wait_for

EXAMPLES = int(os.environ.get("SPLAY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=12)
# Messages shaped like the daemon's, with fields of any type (and the real field names).
FIELDS = ["id", "lines", "exit_code", "state", "change", "at", "scheduled", "job", "ports",
          "instances", "failed", "scheduled", "t0", "time", "seq", "reason", "pid"]
daemon_messages = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(sorted(DAEMON_MESSAGES) + ["nonsense", "ack", "welcome"]),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
raw_lines = st.one_of(
    daemon_messages.map(lambda m: json.dumps(m).encode() + b"\n"),
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    json_values.map(lambda v: json.dumps(v).encode() + b"\n"),
)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "fuzz", 1, controller_args=["--ping-interval", "1"])
    yield bed
    bed.down()


def daemon_key(bed):
    with open(bed.path("daemon.key")) as f:
        return f.readline().strip()


def hello(bed, name):
    return {"type": "hello", "key": daemon_key(bed), "name": name, "ip": "127.0.0.1",
            "limits": {"max_instances": 1, "max_memory": 1, "start_port": 1, "end_port": 2,
                       "max_bandwidth": 0}, "instances": [], "time": 0.0,
            "incarnation": "fuzz-" + name}


def connect(bed):
    return socket.create_connection(bed.controller_address(), timeout=10)


def controller_serves(bed):
    """The API answers, the real daemon is still connected, the process is alive."""
    assert bed.controller.poll() is None
    daemons = {d["name"]: d["state"] for d in bed.client().get("/api/daemons")}
    assert daemons.get("tb0") == "CONNECTED", daemons


@FUZZ
@given(lines=st.lists(raw_lines, min_size=1, max_size=6), truncated=st.binary(max_size=50))
def test_a_daemon_connection_survives_any_messages(bed, lines, truncated):
    with connect(bed) as s:
        f = s.makefile("rwb")
        f.write(json.dumps(hello(bed, "fuzzer")).encode() + b"\n")
        f.flush()
        assert json.loads(f.readline())["type"] == "welcome"
        for line in lines:
            f.write(line)
        f.write(truncated.replace(b"\n", b""))     # the connection ends mid-line
        f.flush()
    controller_serves(bed)


@FUZZ
@given(first=st.one_of(raw_lines, st.binary(max_size=200)))
def test_a_connection_without_the_right_hello_is_refused(bed, first):
    with connect(bed) as s:
        s.sendall(first if first.endswith(b"\n") else first + b"\n")
        answer = s.makefile("rb").readline()
    if answer:
        assert json.loads(answer)["type"] == "refused"
    controller_serves(bed)


@FUZZ
@given(incarnation=json_values, dropped=json_values)
def test_a_hello_with_any_report_fields_is_welcomed_or_refused(bed, incarnation, dropped):
    message = dict(hello(bed, "odd-hello"), incarnation=incarnation, spool_dropped=dropped)
    with connect(bed) as s:
        s.sendall(json.dumps(message).encode() + b"\n")
        answer = json.loads(s.makefile("rb").readline())
    assert answer["type"] == ("welcome" if incarnation is None or
                              (isinstance(incarnation, str) and incarnation) else "refused")
    controller_serves(bed)


def test_a_wrong_key_is_refused_and_logged(bed):
    message = dict(hello(bed, "intruder"), key="not the key")
    with connect(bed) as s:
        s.sendall(json.dumps(message).encode() + b"\n")
        assert json.loads(s.makefile("rb").readline()) == {"type": "refused",
                                                         "reason": "wrong daemon key"}
    wait_for(lambda: "wrong daemon key" in open(bed.path("controller.log")).read(), 10,
             "the refusal in the controller's log")
    controller_serves(bed)


def test_an_oversized_line_closes_only_that_connection(bed):
    with connect(bed) as s:
        f = s.makefile("rwb")
        f.write(json.dumps(hello(bed, "big")).encode() + b"\n")
        f.flush()
        assert json.loads(f.readline())["type"] == "welcome"
        try:
            s.sendall(b'{"type":"log","lines":"' + b"x" * (65 * 2**20))
        except OSError:
            pass                                  # closed while we were still sending: fine
    wait_for(lambda: "longer than" in open(bed.path("controller.log")).read(), 30,
             "the reason in the controller's log")
    controller_serves(bed)


def test_a_replayed_report_is_applied_once(bed):
    client = bed.client()
    job = client.post("/api/jobs", {"code": "import time\nprint('up', flush=True)\n"
                                            "time.sleep(60)\n", "nodes": 1, "factor": 1})
    info = wait_for(lambda: (lambda j: j if j["state"] == "RUNNING" else None)(
        client.get(f"/api/jobs/{job['id']}")), 30, "the job to run")
    instance = info["instances"][0]["id"]
    # A second daemon sends the same numbered line three times (as after reconnections): it is
    # stored once and acknowledged each time.
    with connect(bed) as s:
        f = s.makefile("rwb")
        f.write(json.dumps(hello(bed, "replayer")).encode() + b"\n")
        f.flush()
        welcome = json.loads(f.readline())
        report = {"type": "log", "seq": welcome["acked"] + 1,
                  "lines": [[instance, 0.0, "stdout", "replayed line"]]}
        for _ in range(3):
            f.write(json.dumps(report).encode() + b"\n")
        f.flush()
        acks = []
        while len(acks) < 3:                      # pings come in between
            answer = json.loads(f.readline())
            if answer["type"] == "ack":
                acks.append(answer["seq"])
    assert acks == [report["seq"]] * 3
    assert client.get("/api/status")["reports_repeated"] >= 2
    stored = [r["line"] for r in client.get(f"/api/jobs/{job['id']}/logs")["lines"]]
    assert stored.count("replayed line") == 1
    client.post(f"/api/jobs/{job['id']}/kill", {})
    controller_serves(bed)


# -- the HTTP API ---------------------------------------------------------------------------------
paths = st.one_of(
    st.sampled_from(["/api/status", "/api/daemons", "/api/jobs", "/api/jobs/1", "/api/jobs/1/logs",
                     "/api/jobs/1/kill", "/api/jobs/x/logs", "/api/jobs/1/rundata", "/"]),
    st.text(alphabet="/apijobslg0123456789?=&%.-_x", max_size=40).map(lambda p: "/" + p))
bodies = st.one_of(st.none(), st.binary(max_size=200),
                   json_values.map(lambda v: json.dumps(v).encode()))


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), path=paths, body=bodies,
       token=st.sampled_from(["right", "wrong", None]))
def test_the_api_answers_any_request_without_a_server_error(bed, method, path, body, token):
    request = urllib.request.Request(bed.url + path, data=body, method=method)
    if token is not None:
        request.add_header("Authorization",
                           "Bearer " + (bed.token if token == "right" else "wrong"))
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            status = reply.status
    except urllib.error.HTTPError as e:
        status = e.code
        if token != "right" and path.startswith("/api/"):
            assert status in (401, 403, 404), (status, path)
    except (urllib.error.URLError, ValueError) as e:
        if isinstance(e, urllib.error.URLError) and isinstance(e.reason, ConnectionError):
            raise
        return                                  # a path urllib itself refuses to send
    assert status < 500, (method, path, status)
    controller_serves(bed)


def test_the_database_is_intact_after_the_fuzzing(bed):
    # Runs last in this file (pytest keeps the order): the hostile input corrupted nothing.
    with sqlite3.connect(bed.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    controller_serves(bed)


# -- a running daemon facing a hostile controller ---------------------------------------------------
controller_lines = st.one_of(
    st.builds(lambda kind, fields: json.dumps({"type": kind, **fields}).encode() + b"\n",
              st.sampled_from(["ping", "register", "free", "start", "release", "nodes", "stop",
                               "error", "ack", "welcome", "nonsense"]),
              st.dictionaries(st.sampled_from(["t0", "job", "instances", "nodes", "memory",
                                               "seq", "churn", "reason"]), json_values,
                              max_size=4)),
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    json_values.map(lambda v: json.dumps(v).encode() + b"\n"))


class FakeController:
    """A listening socket a real splayd connects to; the test then speaks for the controller."""

    def __init__(self, tmp_path):
        import subprocess
        import sys
        from test_deploy_support import PYTHONPATH
        self.server = socket.create_server(("127.0.0.1", 0))
        port = self.server.getsockname()[1]
        self.log = tmp_path / "daemon.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "splay.deploy.daemon", "--controller", f"127.0.0.1:{port}",
                 "--key", "k", "--name", "fuzzed", "--dir", str(tmp_path / "d"), "--sandbox",
                 "off", "--ports", "0-0", "--max-backoff", "0.5"],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=PYTHONPATH))
        self.server.settimeout(30)
        self.connection, _ = self.server.accept()
        self.connection.settimeout(30)
        self.file = self.connection.makefile("rwb")
        assert json.loads(self.file.readline())["type"] == "hello"
        self.send(b'{"type":"welcome","daemon_id":1,"time":0,"acked":0}\n')
        self.pings = 0

    def send(self, line):
        self.file.write(line)
        self.file.flush()

    def answers_a_ping(self):
        """The daemon answers a ping (skipping whatever else it sends)."""
        self.pings += 1
        self.send(json.dumps({"type": "ping", "t0": self.pings}).encode() + b"\n")
        while True:
            message = json.loads(self.file.readline())
            if message["type"] == "pong" and message["t0"] == self.pings:
                return True

    def close(self):
        self.process.terminate()
        self.process.wait(15)
        self.connection.close()
        self.server.close()


@pytest.fixture(scope="module")
def fake_controller(tmp_path_factory):
    controller = FakeController(tmp_path_factory.mktemp("fuzzed-daemon"))
    yield controller
    controller.close()


@FUZZ
@given(lines=st.lists(controller_lines, min_size=1, max_size=6))
def test_a_daemon_survives_any_controller_messages(fake_controller, lines):
    for line in lines:
        if b'"refused"' not in line:            # a refusal ends the daemon, as it should
            fake_controller.send(line)
    assert fake_controller.answers_a_ping()
    assert fake_controller.process.poll() is None


def test_the_fuzzed_daemon_logged_why(fake_controller):
    assert fake_controller.answers_a_ping()
    text = open(fake_controller.log).read()
    assert "malformed message from the controller" in text
    assert "Traceback" not in text or "could not carry out" in text

"""A daemon sending garbage or oversized ``metrics`` messages: each is refused with a logged
reason and an ``error`` answer, the daemon's metrics are cut off after three, and the controller
keeps serving (its API, the other daemons' jobs and their metrics)."""
import json
import os
import socket
import time

import pytest

from test_deploy_support import QUICK_APP, start_bed, wait_for, write_app
from test_deploy_metrics import scrape, value


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "ingest", 1)
    yield bed
    bed.down()


class RogueDaemon:
    """A daemon connection speaking the protocol by hand, over a real socket."""

    def __init__(self, bed, name):
        with open(os.path.join(bed.dir, "daemon.key")) as f:
            key = f.readline().strip()
        self.sock = socket.create_connection(("127.0.0.1", bed.state["daemon_port"]), timeout=30)
        self.lines = self.sock.makefile("rb")
        limits = {"max_instances": 1, "max_memory": 2 ** 29, "start_port": 1, "end_port": 1,
                  "max_bandwidth": 0}
        self.send({"type": "hello", "key": key, "name": name, "ip": "127.0.0.1",
                   "limits": limits, "instances": [], "time": time.time()})
        assert self.receive()["type"] == "welcome"

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self):
        """The next message other than a ping."""
        while True:
            message = json.loads(self.lines.readline())
            if message["type"] != "ping":
                return message

    def close(self):
        self.lines.close()
        self.sock.close()


def good_sample():
    return {"ts": time.time(), "rpc": {}, "bytes_sent": 0, "bytes_received": 0, "threads": 1,
            "rss": 1, "cpu": 0.0, "app": {}}


def test_bad_metrics_are_refused_then_cut_off_and_the_controller_goes_on(bed, tmp_path):
    rogue = RogueDaemon(bed, "rogue")
    try:
        rogue.send({"type": "metrics", "samples": "lots", "dropped": {}})
        assert "metrics message refused: not {" in rogue.receive()["reason"]
        rogue.send({"type": "metrics", "samples": [[999999, good_sample()]], "dropped": {}})
        assert "instance 999999, which is not a started node" in rogue.receive()["reason"]
        rogue.send({"type": "metrics", "samples": [[1, good_sample()]] * 5001, "dropped": {}})
        reason = rogue.receive()["reason"]
        assert "5001 samples in one message" in reason and "ignored until it reconnects" in reason
        # Cut off: the next metrics message is ignored without an answer; other messages are
        # still answered.
        rogue.send({"type": "metrics", "samples": "lots", "dropped": {}})
        rogue.send({"type": "exited"})
        assert "malformed message" in rogue.receive()["reason"]
    finally:
        rogue.close()
    log = open(os.path.join(bed.dir, "controller.log")).read()
    assert "daemon rogue: metrics message refused: 5001 samples in one message" in log
    assert "daemon rogue: metrics cut off after 3 refused messages" in log
    assert value(scrape(bed), "splay_controller_metric_batches_refused_total") == 3
    # A daemon that reconnects starts afresh; a sample over the size limit is refused.
    again = RogueDaemon(bed, "rogue")
    try:
        big = dict(good_sample(), app={f"m{i}": {"type": "gauge", "value": i}
                                       for i in range(20000)})
        again.send({"type": "metrics", "samples": [[1, big]], "dropped": {}})
        reason = again.receive()["reason"]
        assert "a sample of instance 1 of" in reason and "bytes (at most 262144)" in reason
        assert "ignored until" not in reason
    finally:
        again.close()
    # The real daemon's job runs and its nodes' metrics arrive.
    app = write_app(tmp_path, "quick.py", QUICK_APP)
    with open(app) as f:
        job = bed.client().post("/api/jobs", {"name": "quick.py", "code": f.read(), "nodes": 2})
    wait_for(lambda: bed.client().get(f"/api/jobs/{job['id']}")["state"] == "ENDED", 60,
             "the job to end")
    doc = bed.client().get(f"/api/jobs/{job['id']}/rundata")
    assert {s["node"] for s in doc["samples"]} == {0, 1}

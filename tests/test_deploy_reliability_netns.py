"""Reliability across a network cut (network namespaces): a daemon cut off from the controller
while the job's alive set changes gets the new set when it reconnects, so that ``job.nodes()`` is
right again without waiting for the next change. Run under `flock /tmp/pysplay-netns.lock` on a
shared machine."""
import json
import os
import subprocess

import pytest

from splay.deploy.testbed import netns_usable
from test_deploy_reliability import NUMBERED_APP
from test_deploy_support import job_processes, start_bed, wait_for


@pytest.fixture
def netns_bed(tmp_path_factory):
    if not netns_usable():
        pytest.skip("network namespaces need root and a working 'ip netns'")
    bed = start_bed(tmp_path_factory, "cutbed", 2, netns=True,
                    controller_args=["--daemon-timeout", "60", "--ping-interval", "1"],
                    daemon_args=["--sandbox", "off", "--silence-timeout", "2",
                                 "--max-backoff", "1"])
    yield bed
    bed.down()


def instances_of(bed, job):
    return bed.client().get(f"/api/jobs/{job['id']}")["instances"]


def test_a_daemon_cut_off_during_a_change_gets_the_nodes_when_it_reconnects(netns_bed):
    bed = netns_bed
    # Node 0 goes down at 6 s (and would come up again at 60).
    job = bed.client().post("/api/jobs", {"code": NUMBERED_APP, "factor": 1, "churn": {
        "trace": "0 6 60\n0 60\n0 60\n0 60\n", "speed": 1.0}})
    wait_for(lambda: sum(i["state"] == "RUNNING" for i in instances_of(bed, job)) == 4, 30,
             "the job's 4 nodes to run")
    daemon_of = {i["position"]: i["daemon"] for i in instances_of(bed, job)}
    away = next(d for d in daemon_of.values() if d != daemon_of[0])
    link = bed.veth_name(int(away[2:]))
    # The daemon's link to the bridge goes down: its controller connection dies silently (the
    # controller keeps it for 30 s and writes the change into it; the daemon gives up after 2 s).
    subprocess.run(["ip", "link", "set", link, "down"], check=True)
    try:
        wait_for(lambda: {i["position"]: i["state"] for i in instances_of(bed, job)}[0] == "DOWN",
                 30, "node 0 to go down")
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    instances = instances_of(bed, job)
    up = sorted((i["ip"], i["port"]) for i in instances if i["position"] != 0)
    files = [os.path.join(bed.dir, f"daemon{away[2:]}", "jobs", job["ref"], str(i["id"]),
                          "nodes.json") for i in instances if i["daemon"] == away]

    def listed():
        result = []
        for path in files:
            with open(path) as f:
                result.append(sorted((n["ip"], n["port"]) for n in json.load(f)))
        return result
    wait_for(lambda: listed() == [up] * len(files), 30,
             f"the nodes files on {away} (job.nodes()) to lose node 0")
    bed.client().post(f"/api/jobs/{job['id']}/kill", {})
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "the job's processes to end")

"""``splay submit --topology FILE --shaping kernel``: each daemon shapes its host's traffic with tc
(real controller, daemons in their own network namespaces, real node processes and TCP).

The namespace tests need root, ``ip netns`` and a kernel with htb and u32 (netem is not needed:
the model has a bandwidth only). The refusals (no --shaping-device, bad --shaping, bogus
settings) run on a loopback testbed, as any user."""
import json
import os
import signal
import subprocess
import sys

import pytest

from test_deploy_support import PYTHONPATH, splay_cli, start_bed, wait_for, write_app

KBIT = 1000 / 8                  # bytes per second in one kbit/s (tc's kbit is 1000 bits)
RATE = 2000 * KBIT               # the model's 2 Mbit/s
STREAM_BYTES = int(RATE * 2)     # about 2 s at the model's rate

# Node 1 receives over a plain TCP socket (the kernel shapes any program, not only splay's
# sockets) and prints the rate it measured, its first fifth (slow start) left out; node 0 sends.
STREAM_APP = f'''
import socket, time
import splay
from splay.node import address
job = splay.job
if job.position == 1:
    server = socket.create_server((job.me.ip, job.me.port))
    connection, _ = server.accept()
    connection.settimeout(60)
    marks, total = [], 0
    while True:
        data = connection.recv(65536)
        if not data:
            break
        total += len(data)
        marks.append((time.monotonic(), total))
    start = next(mark for mark in marks if mark[1] >= total / 5)
    print(f"received {{total}} {{(total - start[1]) / (marks[-1][0] - start[0]):.1f}}", flush=True)
    connection.close()
else:
    peer = address(job.nodes()[1])
    deadline = time.monotonic() + 30
    while True:                  # node 1 may not listen yet: the nodes start together
        try:
            sender = socket.create_connection(peer, timeout=10)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    sender.sendall(b"x" * {STREAM_BYTES})
    # Wait for node 1 to have it all: the shaping goes when this daemon's last node ends, and
    # what is still in this socket's buffers would then leave unshaped.
    sender.shutdown(socket.SHUT_WR)
    sender.settimeout(60)
    sender.recv(1)
    print("sent", flush=True)
'''

SLEEP_APP = "import time\ntime.sleep(3600)\n"


def kernel_shaping_or_skip():
    """Skip, saying why, unless this host can run daemons in namespaces and shape with htb."""
    from splay.deploy.testbed import netns_usable
    from splay.emulation import kernel
    if not netns_usable():
        pytest.skip("the kernel shaping tests need root and a working 'ip netns'")
    found = kernel.probe()
    if not (found.htb and found.u32):
        pytest.skip(f"this kernel cannot shape bandwidth with tc: {found.reason}")
    return found


def namespace_tc(bed, index):
    """``tc qdisc show dev eth0`` in daemon ``index``'s namespace."""
    return subprocess.run(["ip", "netns", "exec", bed.netns_name(index), "tc", "qdisc", "show",
                           "dev", "eth0"], capture_output=True, text=True, timeout=20).stdout


def wait_unshaped(bed, *indexes):
    """Wait until the daemons ``indexes`` have removed their htb root (their shaping)."""
    for index in indexes:
        wait_for(lambda: "htb" not in namespace_tc(bed, index), 30,
                 f"daemon {index} to remove its shaping")


@pytest.fixture(scope="module")
def netns_bed(tmp_path_factory):
    kernel_shaping_or_skip()
    bed = start_bed(tmp_path_factory, "kshape", 2, netns=True)
    try:
        # One TCP segment per packet on the daemons' devices: with segmentation offload TCP hands
        # the device 64 KB packets, which htb releases whole, a quarter of a second apart at
        # 2 Mbit/s: too coarse to measure a rate over 2 s (see docs/emulation.md, "Fidelity").
        for index in range(2):
            subprocess.run(["ip", "-n", bed.netns_name(index), "link", "set", "eth0",
                            "gso_max_segs", "1"], check=True, timeout=20)
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="module")
def loopback_bed(tmp_path_factory):
    # Daemon 0 has no --shaping-device; daemon 1 names a device that does not exist.
    bed = start_bed(tmp_path_factory, "kshape-lo", 2,
                    daemon_extra={1: ["--shaping-device", "nosuchdev0"]})
    yield bed
    bed.down()


def submit(bed, tmp_path, app_source, model, *options):
    """``splay submit`` a 2-node job with one node per daemon; returns (CompletedProcess, job)."""
    app = write_app(tmp_path, "app.py", app_source)
    topology = write_app(tmp_path, "net.model", model)
    result = splay_cli(bed, "submit", app, "-n", "2", "--factor", "1", "--topology", topology,
                       "--shaping", "kernel", "--json", *options)
    job = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, job


def final(bed, job, timeout=60):
    return wait_for(lambda: (lambda j: j if j["state"] in ("ENDED", "KILLED", "FAILED") else None)(
        bed.client().get(f"/api/jobs/{job['id']}")), timeout, f"job {job['id']} to end")


def lines(bed, job):
    return [line["line"] for line in
            bed.client().get(f"/api/jobs/{job['id']}/logs?limit=100000")["lines"]]


def test_kernel_shaping_limits_the_rate_between_deployed_nodes_and_is_removed(netns_bed, tmp_path):
    result, job = submit(netns_bed, tmp_path, STREAM_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 0, result.stderr
    assert len({i["daemon"] for i in job["instances"]}) == 2, job["instances"]
    info = final(netns_bed, job)
    assert info["state"] == "ENDED", info["reason"]
    assert all(i["exit_code"] == 0 for i in info["instances"]), lines(netns_bed, job)
    [received] = [line.split() for line in lines(netns_bed, job) if line.startswith("received ")]
    total, rate = int(received[1]), float(received[2])
    assert total == STREAM_BYTES
    # The limit counts whole packets, headers too: TCP payload gets about 95 % of it.
    assert 0.85 * RATE <= rate <= 1.15 * RATE, f"{rate * 8 / 1e6:.3f} Mbit/s"
    print(f"\n2 Mbit/s shaped by the daemons' hosts: {rate * 8 / 1e6:.3f} Mbit/s of TCP payload")
    wait_unshaped(netns_bed, 0, 1)


def test_one_kernel_shaped_job_at_a_time_and_a_kill_removes_the_shaping(netns_bed, tmp_path):
    result, first = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 0, result.stderr
    assert first["state"] == "RUNNING"
    for index in range(2):
        shown = namespace_tc(netns_bed, index)
        assert "qdisc htb 1: root" in shown, shown
    result, second = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=1000\n")
    assert result.returncode == 1
    assert second["state"] == "FAILED"
    assert f"already shapes its host's traffic for job {first['ref']}" in second["reason"]
    assert "one job at a time" in second["reason"]
    assert netns_bed.client().post(f"/api/jobs/{first['id']}/kill")["killed"] is True
    assert final(netns_bed, first)["state"] == "KILLED"
    wait_unshaped(netns_bed, 0, 1)


def test_a_daemon_that_stops_removes_its_shaping_first(netns_bed, tmp_path):
    result, job = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 0, result.stderr
    assert "qdisc htb 1: root" in namespace_tc(netns_bed, 1)
    netns_bed.stop_daemon(1)                        # SIGTERM: it kills its nodes, clears, exits
    assert "htb" not in namespace_tc(netns_bed, 1)
    assert "qdisc htb 1: root" in namespace_tc(netns_bed, 0)
    netns_bed.start_daemon(1)
    netns_bed.wait_daemons()
    netns_bed.client().post(f"/api/jobs/{job['id']}/kill")
    assert final(netns_bed, job)["state"] == "KILLED"
    wait_unshaped(netns_bed, 0)


def test_a_daemon_killed_while_shaping_removes_its_shaping_when_it_restarts(netns_bed, tmp_path):
    result, job = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 0, result.stderr
    assert "qdisc htb 1: root" in namespace_tc(netns_bed, 1)
    netns_bed.stop_daemon(1, signal.SIGKILL)        # a crash: it cannot clear anything
    assert "qdisc htb 1: root" in namespace_tc(netns_bed, 1)
    netns_bed.client().post(f"/api/jobs/{job['id']}/kill")
    netns_bed.start_daemon(1)                       # removes what its crashed run installed
    netns_bed.wait_daemons()
    assert "htb" not in namespace_tc(netns_bed, 1)
    log = open(os.path.join(netns_bed.dir, "daemon1.log")).read()
    assert "removed the kernel shaping a previous run left on eth0" in log
    assert final(netns_bed, job)["state"] == "KILLED"
    wait_unshaped(netns_bed, 0)


def test_a_delay_without_netem_fails_the_job_naming_netem(netns_bed, tmp_path):
    from splay.emulation import kernel
    if kernel.probe().netem:
        pytest.skip("this kernel has netem: a delay is shaped, not refused")
    result, job = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=30 kbps=2000\n")
    assert result.returncode == 1
    assert job["state"] == "FAILED"
    assert "netem is missing" in job["reason"] and "modprobe sch_netem" in job["reason"]
    assert "30 ms delay" in job["reason"] and "--shaping core" in job["reason"]
    assert {i["state"] for i in job["instances"]} == {"FAILED"}
    for index in range(2):
        assert "htb" not in namespace_tc(netns_bed, index)
    # The daemons keep serving: the next kernel-shaped job runs.
    result, after = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 0, result.stderr
    netns_bed.client().post(f"/api/jobs/{after['id']}/kill")
    assert final(netns_bed, after)["state"] == "KILLED"


def test_a_churn_job_is_shaped_while_it_runs_and_the_shaping_goes_with_its_last_node(
        netns_bed, tmp_path):
    trace = write_app(tmp_path, "trace.txt", "0 1.5\n0.5 2\n")
    result, job = submit(netns_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n",
                         "--churn", trace)
    assert result.returncode == 0, result.stderr
    assert job["state"] == "RUNNING"
    for index in range(2):                          # installed before the replay began
        assert "qdisc htb 1: root" in namespace_tc(netns_bed, index)
    assert final(netns_bed, job)["state"] == "ENDED"
    wait_unshaped(netns_bed, 0, 1)


def test_nodes_leave_a_kernel_shaped_topology_to_the_kernel():
    from splay.emulation import apply_job, has_emulation
    from splay.job import Job
    deployed = {"topology_text": "uniform delay_ms=40\n",
                "topology_nodes": [{"ip": "10.0.0.1", "port": 1}, {"ip": "10.0.0.2", "port": 2}]}
    assert has_emulation(deployed) and has_emulation({**deployed, "shaping": "core"})
    kernel_shaped = {**deployed, "shaping": "kernel"}
    assert not has_emulation(kernel_shaped)
    job = Job(me={"ip": "10.0.0.1", "port": 1}, position=0, nodes=deployed["topology_nodes"],
              settings=kernel_shaped)
    assert apply_job(job) is None                   # nothing in this node's sockets
    # Partitions are still the nodes' to apply (over links that change nothing).
    assert has_emulation({**kernel_shaped, "partitions": [{"a": [0], "b": [1], "start": 1.0}]})


# A node of a kernel-shaped job with a partition from 0.2 s: its in-core links change nothing
# until the partition cuts them.
PARTITIONED_NODE = """
import json, math, time
from splay.emulation import apply_job
from splay.job import Job
settings = {"topology_text": "uniform delay_ms=40 kbps=100\\n", "shaping": "kernel",
            "topology_nodes": [{"ip": "10.0.0.1", "port": 1}, {"ip": "10.0.0.2", "port": 2}],
            "partitions": [{"a": [0], "b": [1], "start": 0.2}], "partition_epoch": time.time()}
emulation = apply_job(Job(me=("10.0.0.1", 1), position=0, nodes=settings["topology_nodes"],
                          settings=settings))
before = emulation.model.between(0, 1)
deadline = time.monotonic() + 30
while emulation.model.between(0, 1) == before and time.monotonic() < deadline:
    time.sleep(0.02)
print(json.dumps([before, emulation.model.between(0, 1)]))
"""


def test_a_kernel_shaped_node_still_applies_its_partitions_in_its_sockets():
    done = subprocess.run([sys.executable, "-c", PARTITIONED_NODE], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert before == [0.0, float("inf"), 0.0]       # not the topology's 40 ms, 100 kbit/s
    assert after[2] == 1.0                          # cut by the partition


def test_daemons_that_cannot_shape_fail_the_job_saying_what_to_do(loopback_bed, tmp_path):
    result, job = submit(loopback_bed, tmp_path, SLEEP_APP, "uniform delay_ms=0 kbps=2000\n")
    assert result.returncode == 1
    assert job["state"] == "FAILED" and "2 of 2 nodes did not start" in job["reason"]
    reasons = {i["daemon"]: i["reason"] for i in job["instances"]}
    assert set(reasons) == {"tb0", "tb1"}
    assert "tb0 was started without --shaping-device" in reasons["tb0"]
    assert "start splayd with --shaping-device DEV" in reasons["tb0"]
    if os.geteuid() == 0:
        assert "there is no network device 'nosuchdev0'" in reasons["tb1"]
    else:
        assert "kernel shaping needs root" in reasons["tb1"]
    # Nothing is left reserved, and the daemons keep serving other jobs.
    wait_for(lambda: sum(d["instances"] for d in loopback_bed.client().get("/api/daemons")) == 0,
             30, "every slot to be free again")
    app = write_app(tmp_path, "quick.py", "print('hello')\n")
    result = splay_cli(loopback_bed, "submit", app, "-n", "2")
    assert result.returncode == 0, result.stderr


def test_splayd_refuses_a_shaping_device_that_cannot_be_a_device_name():
    done = subprocess.run([sys.executable, "-m", "splay.deploy.daemon", "--key", "k",
                           "--shaping-device", "eth0/1"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert done.returncode == 2
    assert "bad option value: --shaping-device: 'eth0/1' is not a network device name" in done.stderr


def test_shaping_without_a_topology_is_a_usage_error(loopback_bed, tmp_path):
    jobs_before = len(loopback_bed.client().get("/api/jobs"))
    app = write_app(tmp_path, "app.py", "print(1)\n")
    for mode in ("kernel", "core"):
        result = splay_cli(loopback_bed, "submit", app, "-n", "2", "--shaping", mode)
        assert result.returncode == 2
        assert f"--shaping {mode} says how to emulate a topology" in result.stderr
        assert "--topology FILE" in result.stderr
    topology = write_app(tmp_path, "net.model", "uniform delay_ms=0\n")
    result = splay_cli(loopback_bed, "submit", app, "-n", "2", "--topology", topology,
                       "--shaping", "tc")
    assert result.returncode == 2 and "invalid choice: 'tc'" in result.stderr
    assert len(loopback_bed.client().get("/api/jobs")) == jobs_before    # nothing submitted


@pytest.mark.parametrize("settings, message", [
    ({"topology_text": "uniform delay_ms=0\n", "shaping": "tc"},
     "'settings.shaping' must be \"core\""),
    ({"topology_text": "uniform delay_ms=0\n", "shaping": 1}, "got 1"),
    ({"shaping": "kernel"}, "needs 'settings.topology_text'"),
])
def test_bad_shaping_settings_are_refused_by_the_api(loopback_bed, settings, message):
    from splay.deploy.cli import CommandError
    with pytest.raises(CommandError) as error:
        loopback_bed.client().post("/api/jobs", {"code": "print(1)\n", "nodes": 2,
                                                 "settings": settings})
    assert error.value.status == 2                  # a 400 answer
    assert message in str(error.value)
    assert loopback_bed.client().get("/api/status")["daemons_connected"] == 2     # still serving

"""`splay testbed up/down` as a user runs it: loopback, and network namespaces when possible.

These daemons use the sandbox when splay.sandbox is installed (their default), so the
application reads its job through ``splay.job``, as a confined node must.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from test_deploy_support import PYTHONPATH, wait_for, write_app
from splay.deploy.testbed import alive, free_port_range, netns_usable, network_tag

# Prints what it sees of its job at its start, then ends only when every node of the job has
# printed: job.nodes() lists the nodes alive, so a node ending at once would shrink the list of a
# node that boots later (under load). A node serves its "hello" only after its print, and ends
# when it has greeted every node and been greeted by every node.
SPLAY_JOB_APP = '''
import splay
from splay.base import events
from splay import rpc
job = splay.job
nodes = job.nodes()
print(f"node {job.position} at {job.me.ip}:{job.me.port} sees {len(nodes)}", flush=True)
greeted_by = set()

def hello(position):
    greeted_by.add(position)
    if len(greeted_by) == len(nodes):
        events.fire("everyone")
    return True

def main():
    rpc.server(job.me.port)
    for node in nodes:
        while not rpc.acall(node, ["hello", job.position], 5)[0]:
            events.sleep(0.1)          # refused: that node has not printed yet
    if len(greeted_by) < len(nodes):
        events.wait("everyone")
    events.exit()

events.run(main)
'''


def splay(home, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, SPLAY_HOME=str(home))
    env.pop("SPLAY_CONTROLLER", None)
    env.pop("SPLAY_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "splay.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def live_pids(directory):
    with open(os.path.join(directory, "testbed.json")) as f:
        state = json.load(f)
    pids = [state["controller_pid"], *state["daemon_pids"].values()]
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("netns", ["off", "on"])
def test_testbed_up_runs_a_job_and_down_stops_everything(tmp_path, netns):
    if netns == "on" and not netns_usable():
        pytest.skip("network namespaces need root and a working 'ip netns'")
    home = tmp_path / "home"
    directory = home / "testbed"
    up = splay(home, "testbed", "up", "--daemons", 3, "--netns", netns,
               "--first-port", free_port_range(60), "--ports-per-daemon", 20)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        assert "testbed up" in up.stdout and "export SPLAY_CONTROLLER=" in up.stdout
        assert len(live_pids(directory)) == 4
        again = splay(home, "testbed", "up", "--daemons", 3)
        assert again.returncode == 1 and "already runs" in again.stderr
        assert os.stat(directory / "client.json").st_mode & 0o777 == 0o600     # it holds the API token
        daemons = splay(home, "daemons")          # found through $SPLAY_HOME/testbed/client.json
        assert daemons.returncode == 0 and daemons.stdout.count("CONNECTED") == 3
        app = write_app(tmp_path, "where.py", SPLAY_JOB_APP)
        submitted = splay(home, "submit", app, "-n", 6)
        assert submitted.returncode == 0, submitted.stderr
        job_id = re.search(r"job (\d+) \(ref", submitted.stderr).group(1)
        logs = splay(home, "logs", job_id, "-f", "--raw")
        assert logs.returncode == 0
        seen = re.findall(r"node (\d) at ([\d.]+):(\d+) sees 6", logs.stdout)
        assert sorted(int(p) for p, _, _ in seen) == list(range(6)), logs.stdout
        addresses = {ip for _, ip, _ in seen}
        if netns == "on":
            subnet = json.loads((directory / "testbed.json").read_text())["subnet"]
            assert addresses <= {f"{subnet}.0.{i}" for i in (2, 3, 4)} and len(addresses) > 1
        else:
            assert addresses == {"127.0.0.1"}
        assert "ENDED" in splay(home, "job", job_id).stdout
    finally:
        pids = live_pids(directory)
        down = splay(home, "testbed", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert [pid for pid in pids if alive(pid)] == []
    assert not (directory / "testbed.json").exists()
    if netns == "on":
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"sptb{network_tag(str(directory))}-0" not in names
    assert splay(home, "testbed", "down").returncode == 0      # nothing left to stop: still fine


def test_free_port_range_finds_ports_nobody_holds():
    import socket
    start = free_port_range(50)
    assert 10000 <= start and (start + 50 <= 32768 or start >= 61000)
    for port in (start, start + 49):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def up_args(count, ports=20):
    return ["--daemons", count, "--netns", "off", "--first-port", free_port_range(count * ports),
            "--ports-per-daemon", ports]


def test_status_shows_each_command_and_down_stops_a_component_restarted_by_hand(tmp_path):
    home = tmp_path / "home"
    directory = home / "testbed"
    up = splay(home, "testbed", "up", *up_args(2))
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        status = splay(home, "testbed", "status")
        assert status.returncode == 0, status.stderr
        assert "controller: pid" in status.stdout and "daemon1: pid" in status.stdout
        restart = next(line.strip() for line in status.stdout.splitlines()
                       if line.strip().startswith("cd ") and "--name tb1" in line)
        assert "-m splay.deploy.daemon" in restart
        state = json.loads((directory / "testbed.json").read_text())
        old = state["processes"]["daemon1"]["pid"]
        os.kill(old, 9)
        # Restarted by hand with the command status printed: testbed.json does not know its pid.
        by_hand = subprocess.Popen(["sh", "-c", restart], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: splay(home, "daemons").stdout.count("CONNECTED") == 2, 60,
                 "the daemon restarted by hand to connect")
        status = splay(home, "testbed", "status")
        assert "daemon1: pid" in status.stdout and "not running" in status.stdout
        assert "started by hand" in status.stdout
    finally:
        down = splay(home, "testbed", "down")
    assert down.returncode == 0, down.stderr
    by_hand.wait(timeout=30)          # the shell ends once its daemon was stopped
    from splay.deploy.testbed_processes import processes_of
    assert processes_of(str(directory)) == []


def test_a_killed_testbed_up_is_cleaned_up_by_the_next_up(tmp_path):
    home = tmp_path / "home"
    directory = home / "testbed"
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, SPLAY_HOME=str(home))
    first = subprocess.Popen([sys.executable, "-m", "splay.cli", "testbed", "up",
                              *map(str, up_args(3))], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    from splay.deploy.testbed_processes import processes_of
    try:
        # Kill it mid-way, once it has started something.
        wait_for(lambda: processes_of(str(directory)) or first.poll() is not None, 60,
                 "testbed up to start a process")
        assert first.poll() is None, "testbed up ended before it could be killed"
        first.kill()
        first.wait()
        assert processes_of(str(directory)), "the killed up left nothing to clean"
        again = splay(home, "testbed", "up", *up_args(2))
        assert again.returncode == 0, again.stderr
        assert "removing what a previous testbed left" in again.stderr
        assert splay(home, "daemons").stdout.count("CONNECTED") == 2
    finally:
        splay(home, "testbed", "down")
    assert processes_of(str(directory)) == []


def test_two_netns_testbeds_run_side_by_side(tmp_path):
    if not netns_usable():
        pytest.skip("network namespaces need root and a working 'ip netns'")
    homes = [tmp_path / "a", tmp_path / "b"]
    states = []
    try:
        for home in homes:
            up = splay(home, "testbed", "up", "--daemons", 2, "--netns", "on",
                       "--ports-per-daemon", 20)
            assert up.returncode == 0, up.stderr + up.stdout
            states.append(json.loads((home / "testbed" / "testbed.json").read_text()))
        assert states[0]["subnet"] != states[1]["subnet"]
        assert states[0]["network"]["bridge"] != states[1]["network"]["bridge"]
        assert not set(states[0]["network"]["namespaces"]) & set(states[1]["network"]["namespaces"])
        app = write_app(tmp_path, "where.py", SPLAY_JOB_APP)
        for home, state in zip(homes, states):
            assert splay(home, "daemons").stdout.count("CONNECTED") == 2
            submitted = splay(home, "submit", app, "-n", 2, "--wait")
            assert submitted.returncode == 0, submitted.stderr
            job_id = re.search(r"job (\d+) \(ref", submitted.stderr).group(1)
            seen = re.findall(r"at ([\d.]+):", splay(home, "logs", job_id, "--raw").stdout)
            assert len(seen) == 2 and all(ip.startswith(state["subnet"] + ".0.") for ip in seen)
    finally:
        downs = [splay(home, "testbed", "down") for home in homes]
    assert all(d.returncode == 0 for d in downs)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for state in states:
        assert not any(ns in names for ns in state["network"]["namespaces"])
        # the host ends of the veth pairs go with their namespaces, which the kernel finishes
        # deleting a moment after `ip netns del` returns
        wait_for(lambda: state["network"]["bridge"] not in subprocess.run(
            ["ip", "link", "show"], capture_output=True, text=True).stdout, 15,
            f"the links of {state['network']['bridge']} to be gone")

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

from test_deploy_support import PYTHONPATH, write_app
from splay.deploy.testbed import NETNS_PREFIX, alive, free_port_range, netns_usable

SPLAY_JOB_APP = '''
import splay
job = splay.job
print(f"node {job.position} at {job.me.ip}:{job.me.port} sees {len(job.nodes())}")
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
            assert addresses <= {"10.213.0.2", "10.213.0.3", "10.213.0.4"} and len(addresses) > 1
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
        assert f"{NETNS_PREFIX}0" not in names
    assert splay(home, "testbed", "down").returncode == 0      # nothing left to stop: still fine


def test_free_port_range_finds_ports_nobody_holds():
    import socket
    start = free_port_range(50)
    assert 10000 <= start and (start + 50 <= 32768 or start >= 61000)
    for port in (start, start + 49):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))

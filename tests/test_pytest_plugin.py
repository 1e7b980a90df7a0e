"""The splay_cluster fixture (splay.pytest_plugin): nodes, RPC into them, their logs, kill and
restart, partitions, bad inputs, and the example test of docs/testing.md."""
import os
import re
import subprocess
import sys

import pytest

from splay.pytest_plugin import ClusterError
from test_app_files import two_file_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Answers echo(x) and says when it is up; node 1 prints a line every 0.1 s.
ECHO_APP = '''
from splay.base import *
from splay import rpc
def echo(x):
    return [job.position, x]
def main():
    rpc.server(job.me.port)
    print("up", job.position, flush=True)
    if job.position == 1:
        for i in range(1000):
            print("tick", i, flush=True)
            events.sleep(0.1)
events.run(main)
'''


@pytest.fixture
def echo_app(tmp_path):
    path = tmp_path / "echo.py"
    path.write_text(ECHO_APP)
    return str(path)


@pytest.mark.parametrize("mode", ["processes", "in-process"])
def test_calls_and_logs_of_every_node(splay_cluster, echo_app, mode):
    cluster = splay_cluster(echo_app, n=3, mode=mode)
    for i in range(3):
        cluster.wait_for_log(i, r"^up \d", timeout=30)
        assert cluster.call(i, "echo", "hi") == [i, "hi"]
    found = cluster.wait_for_log(1, r"tick (\d+)", timeout=30)
    assert int(found.group(1)) >= 0 and "up 1" in cluster.logs(1)
    assert cluster.logs(0) == ["up 0"]


def test_kill_and_restart_a_node(splay_cluster, echo_app):
    cluster = splay_cluster(echo_app, n=2)
    cluster.wait_for_log(0, "up 0")
    cluster.kill(0)
    assert not cluster.alive(0)
    with pytest.raises(ClusterError, match="did not answer"):
        cluster.call(0, "echo", 1, timeout=2)
    cluster.restart(0)
    assert cluster.wait_until(lambda: cluster.call(0, "echo", 2), timeout=30) == [0, 2]
    assert cluster.logs(0).count("up 0") == 2


def test_a_partition_cuts_nodes_apart(splay_cluster, tmp_path):
    app = tmp_path / "cut.py"
    app.write_text('''
from splay.base import *
from splay import rpc
def main():
    rpc.server(job.me.port)
    other = job.nodes()[1 - job.position]
    events.sleep(0.5)
    print("reach", rpc.ping(other, timeout=2) is not None, flush=True)
events.run(main)
''')
    cluster = splay_cluster(str(app), n=2, partitions=["0|1@0"])
    assert cluster.wait_for_log(0, r"reach (\w+)").group(1) == "False"


def test_a_two_file_directory_and_bad_inputs(splay_cluster, tmp_path):
    cluster = splay_cluster(two_file_app(tmp_path / "app"), n=2, args=["X"])
    cluster.wait_for_log(1, "hello from node 1 X")
    with pytest.raises(ClusterError, match="not found"):
        splay_cluster(str(tmp_path / "missing.py"))
    with pytest.raises(ClusterError, match="mode must be"):
        splay_cluster(two_file_app(tmp_path / "b"), mode="threads")
    in_process = splay_cluster(two_file_app(tmp_path / "c"), n=1, mode="in-process")
    with pytest.raises(ClusterError, match="in-process"):
        in_process.kill(0)


def test_the_documented_chord_ring_test_passes(tmp_path):
    text = open(os.path.join(ROOT, "docs", "testing.md")).read()
    block = re.search(r"^```python pytest\n(.*?)^```", text, re.S | re.M).group(1)
    (tmp_path / "test_ring.py").write_text(block)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "splay.pytest_plugin", "--rootdir", str(tmp_path),
                             str(tmp_path / "test_ring.py")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout

"""examples/epidemic.py: every broadcast reaches every node, and is delivered once.

Real node processes under ``splay run``, each knowing only a few random peers (--random-list),
with a small fanout so that pushes alone may miss nodes and the pulls must complete the job.
The test broadcasts from several nodes over RPC and reads every node's ``delivered`` list.
"""
import random

from splay import rpc

from examples import checkers
from examples.checkers import local_nodes, run, wait_for

LIVENESS = 90       # seconds: generous, only a lost message ever waits this long


def broadcast_and_check(nodes, rng):
    up = wait_for(lambda: [n for n in nodes if rpc.ping(n, 5) is None], LIVENESS, period=0.1)
    if up:
        return [f"{len(up)} node(s) never answered"], None
    ids = [f"msg-{i}" for i in range(6)]
    accepted = [rpc.call(rng.choice(nodes), ["broadcast", i, f"payload of {i}"], 10) for i in ids]
    problems = wait_for(lambda: checkers.epidemic_problems(nodes, ids), LIVENESS)
    checkers.stop_nodes(nodes)
    return problems, accepted


def test_every_broadcast_reaches_every_node_once(tmp_path):
    n = 16
    first = checkers.free_port_range(n)
    proc = checkers.start_run("epidemic.py", n, first, ["period=0.2", "fanout=2", "demo=0"],
                              extra=["--random-list", "4"], time_limit=LIVENESS + 30,
                              log=tmp_path / "run.log")
    try:
        problems, accepted = run(broadcast_and_check, local_nodes(n, first), random.Random(3))
        out, _ = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert problems == []
    assert accepted == [True] * 6
    assert proc.returncode == 0, out


def test_demo_reports_full_delivery_and_ends_cleanly(tmp_path):
    n = 10
    first = checkers.free_port_range(n)
    proc = checkers.start_run("epidemic.py", n, first, ["period=0.2"], time_limit=LIVENESS,
                              log=tmp_path / "run.log")
    try:
        proc.communicate(timeout=LIVENESS + 30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    log = (tmp_path / "run.log").read_text()
    assert "time limit" not in log                   # node 0 stopped the run, not the launcher
    assert log.count(f"delivered by {n}/{n} nodes") == 5

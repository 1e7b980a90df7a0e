"""examples/chord.py: the minimal Chord forms a correct ring and answers lookups correctly.

The nodes run under ``splay run`` (real processes, or one process with ``--in-process``); the
checks read every node's ``successor`` and ``predecessor`` over RPC and compare them with the ring
computed from the nodes' ids, then look keys up from random nodes (examples/checkers.py).
"""
import re

import pytest

from splay import rpc

from examples import checkers
from examples.checkers import local_nodes, run, wait_for

LIVENESS = 90       # seconds: generous, only a broken ring ever waits this long


def converge_and_check(nodes):
    ring = wait_for(lambda: checkers.chord_ring_problems(nodes), timeout=LIVENESS)
    # A bad request fails that call only: the node keeps serving and the ring stays right.
    bad = [rpc.acall(nodes[1], ["find_successor", "not an id"], 10),
           rpc.acall(nodes[1], ["notify", None], 10)]
    lookups, hops = ([], []) if ring else checkers.chord_lookup_problems(nodes, samples=30)
    ring += checkers.chord_ring_problems(nodes)
    checkers.stop_nodes(nodes)
    return ring, lookups, hops, bad


@pytest.mark.parametrize("in_process", [False, True], ids=["process-per-node", "in-process"])
def test_ring_is_correct_after_stabilization(tmp_path, in_process):
    n = 12
    first = checkers.free_port_range(n)
    proc = checkers.start_run("chord.py", n, first, ["period=0.2", "demo=0"],
                              in_process=in_process, time_limit=LIVENESS + 30,
                              log=tmp_path / "run.log")
    try:
        ring, lookups, hops, bad = run(converge_and_check, local_nodes(n, first))
        out, _ = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert ring == []
    assert [ok for ok, _ in bad] == [False, False]
    assert bad[0][1].startswith("TypeError")        # the remote exception, named
    assert lookups == []
    assert all(0 <= h <= n for h in hops)
    assert proc.returncode == 0, out      # every node ended by the stop call, none failed


def test_demo_prints_the_whole_ring_and_lookups_then_ends_cleanly(tmp_path):
    n = 8
    first = checkers.free_port_range(n)
    proc = checkers.start_run("chord.py", n, first, ["period=0.2"], time_limit=LIVENESS,
                              extra=[], log=tmp_path / "run.log")
    try:
        proc.communicate(timeout=LIVENESS + 30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    log = (tmp_path / "run.log").read_text()
    assert "time limit" not in log                   # node 0 stopped the run, not the launcher
    ring_line = re.search(r"\[node 0\] ring of (\d+) nodes: (.*)", log)
    assert ring_line and int(ring_line.group(1)) == n
    printed = ring_line.group(2).split(" -> ")
    ids = sorted(checkers.chord_key(node) for node in local_nodes(n, first))
    start = ids.index(int(printed[0], 16))
    assert [int(x, 16) for x in printed] == ids[start:] + ids[:start]   # in ring order
    lookups = re.findall(r"\[node 0\] lookup ([0-9a-f]{12}): node ([0-9a-f]{12}) .*, (\d+) hops", log)
    assert len(lookups) == 5
    for key, owner, hops in lookups:
        assert int(owner, 16) == checkers.chord_owner(int(key, 16), ids)

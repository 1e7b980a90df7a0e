"""examples/cyclon.py: from a skewed start, the views converge to a random-like overlay.

All nodes in one process (``splay run --in-process``). The check reads every node's view over
RPC: no node in its own view, no duplicates, full views, every node in some view, and an
in-degree standard deviation that fell from the skewed start to below MAX_STDEV.
"""
import statistics

from examples import checkers
from examples.checkers import local_nodes, run, wait_for

LIVENESS = 90       # seconds: generous, only a stuck overlay ever waits this long
C = 8               # view size
MAX_STDEV = 4.0     # converged, 40 nodes with views of 8 measure about 2 to 3.3; the start ~16


def converge(nodes):
    answered = lambda: [n for n, v in zip(nodes, checkers.cyclon_views(nodes)) if v is None]
    assert wait_for(answered, LIVENESS, period=0.05) == []
    first = checkers.cyclon_views(nodes)
    start_spread = statistics.pstdev(checkers.cyclon_in_degrees(nodes, first))
    problems = wait_for(lambda: checkers.cyclon_view_problems(nodes, checkers.cyclon_views(nodes),
                                                              C, MAX_STDEV), LIVENESS)
    checkers.stop_nodes(nodes)
    return start_spread, problems


def test_views_converge(tmp_path):
    n = 40
    first = checkers.free_port_range(n)
    proc = checkers.start_run("cyclon.py", n, first, ["period=0.5", f"view={C}", "demo=0"],
                              in_process=True, time_limit=LIVENESS + 30, log=tmp_path / "run.log")
    try:
        start_spread, problems = run(converge, local_nodes(n, first))
        out, _ = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert start_spread > MAX_STDEV                # the start was skewed: convergence happened
    assert problems == []
    assert proc.returncode == 0, out

"""examples/cyclon.py: from a skewed start, the views converge to a random-like overlay.

All nodes in one process (``splay run --in-process``), started by the splay_cluster fixture. The check reads every node's view over
RPC: no node in its own view, no duplicates, full views, every node in some view, and an
in-degree standard deviation that fell from the skewed start to below MAX_STDEV.
"""
import os
import statistics

from examples import checkers
from examples.checkers import ROOT, run, wait_for

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


def test_views_converge(splay_cluster):
    cluster = splay_cluster(os.path.join(ROOT, "examples", "cyclon.py"), n=40, mode="in-process",
                            args=["period=0.5", f"view={C}", "demo=0"])
    start_spread, problems = run(converge, cluster.addresses)
    assert start_spread > MAX_STDEV                # the start was skewed: convergence happened
    assert problems == []
    assert cluster.wait(LIVENESS) == [0], cluster.logs(0)

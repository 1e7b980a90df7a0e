"""An example protocol, unchanged, with its property checked from inside a simulation.

``splay run tests/sim_checked_example.py -n N --sim -- example=chord.py check=chord [KEY=VALUE...]``:
every node runs ``examples/<example>`` (its code executed as this module's, so its RPC functions
are served as usual); node 0 also runs the check of examples/checkers.py the real-run tests use
(ground truth computed there, never what the nodes print), prints one ``PROPERTY <name> ok`` or
``PROPERTY <name> FAILED: <problems>`` line per property (and ``HOPS h h h ...`` for Chord's
lookups), then stops every node. The options after the file go to the example too (its
``key=value`` parser ignores the keys it does not know).
"""
import os
import random
import sys

from splay import events
from splay.base import job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = dict(arg.split("=", 1) for arg in sys.argv[1:])
EXAMPLE = os.path.join(ROOT, "examples", OPTIONS["example"])
LIVENESS = float(OPTIONS.get("liveness", 600))     # virtual seconds a property may take to hold

# What the example imports from beside it, and examples.checkers: once per process (each node
# executes this module afresh; a path inserted per node made every later lookup longer).
for directory in (os.path.join(ROOT, "examples"), ROOT):
    if directory not in sys.path:
        sys.path.insert(0, directory)
from sim_example_code import compiled                    # noqa: E402 (tests/, beside this file)
exec(compiled(EXAMPLE))                                  # the protocol, unchanged


def report(name, problems):
    print(f"PROPERTY {name} " + ("ok" if not problems else f"FAILED: {problems[:5]}"), flush=True)


def check_chord(checkers, nodes, rng):
    report("ring", checkers.wait_for(lambda: checkers.chord_ring_problems(nodes), LIVENESS,
                                     period=float(OPTIONS.get("check_period", 0.5))))
    print(f"ring correct at virtual time {events.time():.1f}",
          flush=True)
    events.sleep(float(OPTIONS.get("settle", 0)))        # the fingers, after the ring
    problems, hops = checkers.chord_lookup_problems(nodes, samples=int(OPTIONS.get("lookups", 20)),
                                                    rng=rng)
    report("lookups", problems)
    print("HOPS " + " ".join(map(str, hops)), flush=True)


def check_cyclon(checkers, nodes, rng):
    view, max_stdev = int(OPTIONS.get("view", 8)), float(OPTIONS.get("max_stdev", 4.0))
    report("views", checkers.wait_for(lambda: checkers.cyclon_view_problems(
        nodes, checkers.cyclon_views(nodes), view, max_stdev), LIVENESS))


def check_epidemic(checkers, nodes, rng):
    from splay import rpc
    ids = [f"msg-{i}" for i in range(6)]
    accepted = [rpc.call(rng.choice(nodes), ["broadcast", i, f"payload of {i}"], 10) for i in ids]
    report("accepted", [] if accepted == [True] * len(ids) else [accepted])
    report("delivered", checkers.wait_for(lambda: checkers.epidemic_problems(nodes, ids), LIVENESS))


CHECKS = {"chord": check_chord, "cyclon": check_cyclon, "epidemic": check_epidemic}


def checker():
    from examples import checkers
    # Every node of the run (job.nodes() is node 0's own list, a sample with --random-list).
    count = int(OPTIONS.get("nodes", 0))
    nodes = checkers.local_nodes(count, job.me.port - job.position) if count else job.nodes()
    dead = checkers.wait_for(lambda: [n for n in nodes if checkers.rpc.ping(n, 5) is None],
                             LIVENESS, period=0.1)
    report("up", dead)
    # Read the nodes between their periodic rounds: with zero-delay links every node's round
    # falls on the same virtual instants (k * period), and a view read mid-exchange is one short.
    events.sleep(float(OPTIONS.get("phase", 0.1)))
    CHECKS[OPTIONS["check"]](checkers, nodes, random.Random(int(OPTIONS.get("check_seed", 1))))
    checkers.stop_nodes(nodes)


if job.position == 0 and "check" in OPTIONS:
    events.thread(checker)

"""Running ``splay run --sim`` from the tests (:func:`splay_run`), and Chord lookups in a real
run and in a simulation, for the agreement test (tests/test_sim_run_agreement.py) and its
1,000-node figure (bench/test_sim.py).

Both sides run examples/chord.py unchanged on the same addresses (so the same ring), wait until
the ring is correct, let the fingers settle, then make the same seeded lookups with
examples/checkers.py and return their hop counts.
"""
import os
import pathlib
import random
import re
import subprocess
import sys

from splay import events

from examples import checkers
from examples.checkers import local_nodes, run, wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 300   # real seconds: generous, only a hung run ever waits this long


def splay_run(tmp_path, app, *args, log="run.log"):
    """Run ``splay run APP --sim ARGS`` in ``tmp_path``; returns (exit status, log text, stderr)."""
    command = [sys.executable, "-m", "splay.cli", "run", str(app), "--sim", "--quiet",
               "--no-metrics", "--log", str(tmp_path / log), *args]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=LIVENESS)
    path = tmp_path / log
    return done.returncode, path.read_text() if path.exists() else "", done.stderr


def real_chord_hops(tmp_path, n, first, lookups, period, settle, liveness, extra=()):
    """Hop counts of ``lookups`` lookups in a real ``--in-process`` run over loopback (``extra``:
    more ``splay run`` options, such as a ``--topology``)."""
    proc = checkers.start_run("chord.py", n, first, [f"period={period}", "demo=0"],
                              in_process=True, time_limit=liveness * 2, log=tmp_path / "real.log",
                              extra=extra)

    def measure(nodes):
        ring = wait_for(lambda: checkers.chord_ring_problems(nodes), liveness,
                        period=max(0.5, n / 1000))
        events.sleep(settle)
        problems, hops = checkers.chord_lookup_problems(nodes, samples=lookups, rng=random.Random(1))
        checkers.stop_nodes(nodes)
        return ring, problems, hops
    try:
        ring, problems, hops = run(measure, local_nodes(n, first))
        proc.communicate(timeout=liveness)
    finally:
        proc.kill()
    assert ring == [] and problems == [], (ring[:5], problems[:5])
    return hops


def simulated_chord_hops(tmp_path, n, first, lookups, period, settle, liveness, extra=()):
    """Hop counts of the same lookups under ``splay run --sim`` (tests/sim_checked_example.py)."""
    command = [sys.executable, "-m", "splay.cli", "run", str(ROOT / "tests" / "sim_checked_example.py"),
               "-n", str(n), "--first-port", str(first), "--sim", "--quiet", "--no-metrics",
               "--log", str(tmp_path / "sim.log"), *extra, "--", "example=chord.py", "check=chord",
               "demo=0", f"period={period}", f"lookups={lookups}", f"settle={settle}",
               "check_seed=1", f"check_period={max(0.5, n / 1000)}"]
    done = subprocess.run(command, env=checkers.ENV, capture_output=True, text=True,
                          timeout=liveness * 4, cwd=tmp_path)
    log = (tmp_path / "sim.log").read_text()
    assert done.returncode == 0, done.stderr
    assert "PROPERTY ring ok" in log and "PROPERTY lookups ok" in log, log[-3000:]
    return [int(h) for h in re.search(r"HOPS (.*)", log).group(1).split()]

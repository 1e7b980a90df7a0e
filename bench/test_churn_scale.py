"""What a churn replay costs per join at scale: ``splay run APP --churn TRACE`` (``--sim``, ``--workers``).

``test_churn_joins[sim-N]``: a trace of N joins 1 ms apart (N from ``SPLAY_BENCH_CHURN_JOINS``,
comma-separated, default 20000) replayed in ``--sim`` with an application that does nothing but
start; its peer in the same run is the same N nodes started at once without churn (``-n N
--sim``). The churn replay's wall time over the peer's is the cost of the replay itself; the bytes
the host process wrote (``/proc/self/io`` read by the last node) show whether each join rewrote
the whole nodes file (O(N) each: about 65 MB for 2,000 joins) or not.

``test_churn_joins[workers-N]``: the same trace over ``--in-process --workers 2``, where the launcher
writes the nodes file for every worker's nodes; its wall time and the bytes *the launcher* wrote
(its own ``/proc/self/io``, ``splay run`` called in the measuring process), against the same N
nodes over 2 workers without churn.

Run::

    python -m pytest bench/test_churn_scale.py -s
    SPLAY_BENCH_CHURN_JOINS=2000,5000,20000 python -m pytest bench/test_churn_scale.py -s

Figures in BENCHMARKS.md ("Churn replay at scale").
"""
import os
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
RUN_ENV.pop("SPLAY_JOB", None)
SCALES = [int(n) for n in os.environ.get("SPLAY_BENCH_CHURN_JOINS", "20000").split(",")]

# The last node prints how many bytes its process (the host of every node) wrote in all.
APP = """
    import splay
    from splay import events

    def main():
        if splay.job.position == {last}:
            with open("/proc/self/io") as f:
                wchar = dict(line.split(": ") for line in f.read().splitlines())["wchar"]
            print("host wrote", int(wchar))

    events.run(main)
"""


def _measure(tmp_path, n, churn, last, command, options, marker):
    """Run ``command + [APP, the churn trace of n joins or -n n] + options``, node ``last`` of
    the app printing; ``(wall seconds, the number at the end of the line that holds marker)``."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP.format(last=last)))
    if churn:
        trace = tmp_path / "joins.txt"
        trace.write_text("".join(f"{i / 1000:.3f}\n" for i in range(n)))
        how = ["--churn", str(trace)]
    else:
        how = ["-n", str(n)]
    began = time.monotonic()
    done = subprocess.run([*command, str(app), *how, *options], env=RUN_ENV, cwd=tmp_path,
                          capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    found = [line for line in out.splitlines() if marker in line]
    assert len(found) == 1, out[-2000:]
    return wall, int(found[0].split()[-1])


def _run(tmp_path, n, churn):
    """``splay run --sim``: wall time and the bytes the host process wrote."""
    return _measure(tmp_path, n, churn, n - 1, [sys.executable, "-m", "splay.cli", "run"], ["--sim"],
                    "host wrote")


# Runs ``splay run`` in this process, then prints the bytes this process (the launcher) wrote.
LAUNCHER = """
import sys
from splay.launch.run_cmd import main
rc = main(sys.argv[1:])
io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
print("launcher wrote", io["wchar"], file=sys.stderr)
sys.exit(rc)
"""


def _run_workers(tmp_path, n, churn):
    """``splay run --in-process --workers 2``: wall time and the bytes the launcher wrote."""
    return _measure(tmp_path, n, churn, -1, [sys.executable, "-c", LAUNCHER],
                    ["--in-process", "--workers", "2", "-q"], "launcher wrote")


# mode -> (how it runs, what wrote the bytes)
MODES = {"sim": (_run, "--sim: the host"), "workers": (_run_workers, "--in-process --workers 2: the launcher")}


@pytest.mark.parametrize("n", SCALES)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_churn_joins(benchmark, tmp_path, mode, n):
    run, who = MODES[mode]
    results = []
    benchmark.pedantic(lambda: results.append(run(tmp_path, n, True)), rounds=1, iterations=1)
    churn_wall, churn_bytes = results[0]
    peer_wall, peer_bytes = run(tmp_path, n, False)
    print(f"\n{n} joins ({n / 1000:g} s of trace), {who} wrote {churn_bytes / 1e6:.2f} MB "
          f"({churn_bytes / n:.0f} B per join) in {churn_wall:.2f} s; without churn: {peer_wall:.2f} s, "
          f"{peer_bytes / 1e6:.2f} MB")
    benchmark.extra_info.update(mode=mode, joins=n, churn_seconds=churn_wall, churn_bytes=churn_bytes,
                                peer_seconds=peer_wall, peer_bytes=peer_bytes)
    if mode == "sim":
        # Linear: a join's control record, and the list written once at the end.
        assert churn_bytes < 1000 * n

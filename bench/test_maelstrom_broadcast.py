"""Maelstrom's broadcast workload at scale: `splay run --maelstrom broadcast` on 1,000 nodes in
one process (`--in-process`), with a partition that cuts the nodes in two halves for 5 s, the
checker judging the history at the end. The 25-node run (Maelstrom's largest documented
broadcast configuration) is measured in the same session for the scaling ratio.

    python -m pytest bench/test_maelstrom_broadcast.py --benchmark-only -s

Each case records wall time, the operations recorded, the final reads checked and the peak RSS
of the run (``benchmark.extra_info``); BENCHMARKS.md reports them.
"""
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from splay.deploy.testbed import free_port_range  # noqa: E402

APP = os.path.join(ROOT, "examples", "maelstrom", "broadcast_node.py")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
ENV.pop("SPLAY_JOB", None)


def run_broadcast(nodes):
    """One run; returns (wall seconds, the checker's report, peak RSS in MiB of the run)."""
    half = nodes // 2
    with tempfile.TemporaryDirectory() as logs:
        cmd = [sys.executable, "-m", "splay.cli", "run", "--maelstrom", "broadcast", "--app", APP,
               "-n", str(nodes), "--in-process", "--shape", "tree4",
               "--partition", f"0-{half - 1}|{half}-{nodes - 1}@5-10",
               "--workload-time", "15", "--rate", "50", "--recovery", "15", "--quiet",
               "--log-dir", logs, "--first-port", str(free_port_range(nodes))]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.monotonic()
        run = subprocess.run(cmd, env=ENV, cwd=logs, capture_output=True, text=True, timeout=900)
        wall = time.monotonic() - start
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return wall, run.stdout, peak


@pytest.mark.parametrize("nodes", [25, 1000])
def test_broadcast_with_a_partition(benchmark, nodes):
    wall, report, peak = benchmark.pedantic(run_broadcast, args=(nodes,), rounds=1, iterations=1)
    assert report.startswith("broadcast: VALID")
    final = int(re.search(r"final reads: (\d+)", report).group(1))
    assert final == nodes
    benchmark.extra_info.update({
        "wall_s": round(wall, 1), "peak_rss_mib": round(peak),
        "operations": int(re.search(r"(\d+) operations", report).group(1)),
        "acknowledged": int(re.search(r"acknowledged: (\d+)", report).group(1)),
        "final_reads": final})
    print(f"\n{nodes} nodes: {wall:.1f} s wall, peak RSS {peak:.0f} MiB\n{report}")

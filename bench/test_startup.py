"""Start-up of process-per-node runs: nodes forked from the fork server against new interpreters.

``splay run APP -n N --progress`` on an application that waits 2 s, so that every node is alive
at once (the launcher's "started N/N nodes in X s" line is the figure): with the fork server
(the default, splay.launch.fork_server: one fork per node with CLONE_PARENT), with the server's
old path of two forks per node (``SPLAY_FORK_SERVER_TWICE=1``), and with ``--no-fork-server``, in
the same run. The ratios are what each path costs per node against the default; the absolute times
depend on the machine's load. So each line also gives the CPU seconds of the whole process tree
(launcher, fork server, nodes: ``RUSAGE_CHILDREN`` of this process around the run, every one of
them reaped), which the load does not inflate, and the load average at the time.

    python -m pytest bench/test_startup.py -s -q                     # N = 200
    SPLAY_STARTUP_NODES=1000 python -m pytest bench/test_startup.py -s -q

Each run prints one line ``startup {json}``.
"""
import json
import os
import re
import resource
import subprocess
import sys

import pytest

from splay.launch.fork_server import TWICE_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = int(os.environ.get("SPLAY_STARTUP_NODES", "200"))
APP = "import time\nfrom splay.base import job\ntime.sleep(2)\n"
RESULTS = {}
pytestmark = pytest.mark.timeout(3600)      # a thousand new interpreters on a loaded machine


def start_time(tmp_path, flags, extra_env=None):
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]),
               **(extra_env or {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", str(NODES),
                          "--quiet", "--progress", "--log", str(tmp_path / "run.log"), *flags],
                         env=env, capture_output=True, text=True, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert run.returncode == 0, run.stderr
    found = re.findall(r"started (\d+)/(\d+) nodes in ([\d.]+) s", run.stderr)
    assert found and found[-1][0] == found[-1][1] == str(NODES), run.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(found[-1][2]), cpu


@pytest.mark.parametrize("variant", ["fork-server", "fork-server-twice", "new-interpreter"])
def test_startup(benchmark, tmp_path, variant):
    flags = ["--no-fork-server"] if variant == "new-interpreter" else []
    # fork-server-twice: the server's old path (fork twice, wait for the middle process).
    extra_env = {TWICE_ENV: "1"} if variant == "fork-server-twice" else None
    measured = benchmark.pedantic(start_time, args=(tmp_path, flags, extra_env), rounds=1,
                                  iterations=1)
    seconds, cpu = start_time(tmp_path, flags, extra_env) if measured is None else measured
    RESULTS[variant] = seconds
    line = {"variant": variant, "nodes": NODES, "seconds": seconds,
            "ms_per_node": round(1000 * seconds / NODES, 2), "tree_cpu_s": round(cpu, 2),
            "cpu_ms_per_node": round(1000 * cpu / NODES, 2), "load": os.getloadavg()[0]}
    if variant != "fork-server" and "fork-server" in RESULTS:
        line[variant.replace("-", "_") + "_over_fork_server"] = round(
            RESULTS[variant] / RESULTS["fork-server"], 2)
    print("startup", json.dumps(line))

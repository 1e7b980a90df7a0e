"""Start-up of process-per-node runs: nodes forked from the fork server against new interpreters.

``splay run APP -n N --progress`` on an application that waits 2 s, so that every node is alive
at once (the launcher's "started N/N nodes in X s" line is the figure): with the fork server
(the default, splay.launch.fork_server) and with ``--no-fork-server``, in the same run. The
ratio is what the fork server buys per node; the absolute times depend on the machine's load.

    python -m pytest bench/test_startup.py -s -q                     # N = 200
    SPLAY_STARTUP_NODES=1000 python -m pytest bench/test_startup.py -s -q

Each run prints one line ``startup {json}``.
"""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = int(os.environ.get("SPLAY_STARTUP_NODES", "200"))
APP = "import time\nfrom splay.base import job\ntime.sleep(2)\n"
RESULTS = {}


def start_time(tmp_path, flags):
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    run = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", str(NODES),
                          "--quiet", "--progress", "--log", str(tmp_path / "run.log"), *flags],
                         env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr
    found = re.findall(r"started (\d+)/(\d+) nodes in ([\d.]+) s", run.stderr)
    assert found and found[-1][0] == found[-1][1] == str(NODES), run.stderr
    return float(found[-1][2])


@pytest.mark.parametrize("variant", ["fork-server", "new-interpreter"])
def test_startup(benchmark, tmp_path, variant):
    flags = [] if variant == "fork-server" else ["--no-fork-server"]
    seconds = benchmark.pedantic(start_time, args=(tmp_path, flags), rounds=1, iterations=1)
    RESULTS[variant] = start_time(tmp_path, flags) if seconds is None else seconds
    line = {"variant": variant, "nodes": NODES, "seconds": RESULTS[variant],
            "ms_per_node": round(1000 * RESULTS[variant] / NODES, 2)}
    if len(RESULTS) == 2:
        line["new_interpreter_over_fork_server"] = round(
            RESULTS["new-interpreter"] / RESULTS["fork-server"], 2)
    print("startup", json.dumps(line))

"""Memory per idle node of ``splay run --in-process``, against gevent and asyncio holding as many
idle tasks or listening servers, in the same run.

Two kinds of idle node:

- **idle**: the node's one thread sleeps (``events.sleep(3600)``); the peers hold as many tasks
  sleeping (``gevent.sleep``, ``asyncio.sleep``);
- **listen**: the node also serves RPCs on its port (``rpc.server(job.me.port)``); the peers
  hold as many listening servers (``gevent.server.StreamServer``, ``asyncio.start_server``)
  and as many sleeping tasks.

The figure is the *marginal* cost of a node: the resident set size (RSS) of the one process with
N2 nodes minus that with N1 nodes, divided by N2 - N1 (what the interpreter, the imports and the
launcher cost once cancels out). For pysplay the node measuring it is the last one, after every
node has started and gone idle. A third pysplay run at N1 under ``tracemalloc`` says where the
Python-heap part of a node goes (bytes per node by file), which RSS does not.

    python -m pytest bench/test_memory.py -s -q                       # N1, N2 = 1000, 10000
    SPLAY_MEMORY_NODES=1000,3000 python -m pytest bench/test_memory.py -s -q

Each measurement prints one line ``memory {json}``.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N1, N2 = (int(n) for n in os.environ.get("SPLAY_MEMORY_NODES", "1000,10000").split(","))

RSS = '''
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
'''

# The pysplay application: argv = MODE REPORT_FILE NODES TRACE(0/1).
SPLAY_APP = RSS + '''
import gc, json, os, sys
from splay import events, rpc
from splay.base import job

mode, report, nodes, trace = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if trace and job.position == 0:
    import tracemalloc
    tracemalloc.start()

def idle():
    if mode == "listen":
        rpc.server(job.me.port)
    events.sleep(3600)

def measure():
    events.sleep(1.0)                 # every node's thread has started and gone idle by now
    gc.collect()
    found = {"rss": rss()}
    import tracemalloc
    if tracemalloc.is_tracing():
        found["traced"] = tracemalloc.get_traced_memory()[0]
        stats = tracemalloc.take_snapshot().statistics("filename")
        found["by_file"] = [(s.traceback[0].filename, s.size) for s in stats[:12]]
    with open(report, "w") as f:
        json.dump(found, f)
    os._exit(0)                       # the figure is taken: end the run here

events.run(idle)
if job.position == nodes - 1:
    events.thread(measure)
'''

GEVENT_APP = RSS + '''
import gc, sys
import gevent
from gevent.server import StreamServer
mode, nodes = sys.argv[1], int(sys.argv[2])
servers = []
def idle():
    if mode == "listen":
        server = StreamServer(("127.0.0.1", 0), lambda sock, address: None)
        server.start()
        servers.append(server)
    gevent.sleep(3600)
tasks = [gevent.spawn(idle) for _ in range(nodes)]
gevent.sleep(1.0)
gc.collect()
print(rss())
'''

ASYNCIO_APP = RSS + '''
import asyncio, gc, sys
mode, nodes = sys.argv[1], int(sys.argv[2])
servers = []
async def idle():
    if mode == "listen":
        servers.append(await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0))
    await asyncio.sleep(3600)
async def main():
    tasks = [asyncio.ensure_future(idle()) for _ in range(nodes)]
    await asyncio.sleep(1.0)
    gc.collect()
    print(rss())
asyncio.run(main())
'''


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))


def splay_run(tmp_path, mode, nodes, trace=False):
    """What the last of ``nodes`` idle in-process nodes measured (rss, and traced with ``trace``)."""
    from splay.deploy.testbed import free_port_range
    app = tmp_path / "idle_app.py"
    app.write_text(SPLAY_APP)
    report = tmp_path / f"report-{mode}-{nodes}-{int(trace)}.json"
    run = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", str(nodes),
                          "--in-process", "--quiet", "--first-port", str(free_port_range(nodes)),
                          "--log", str(tmp_path / "run.log"), "--",
                          mode, str(report), str(nodes), "1" if trace else "0"],
                         env=_env(), capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0 and report.exists(), run.stderr[-3000:]
    return json.loads(report.read_text())


def peer_run(tmp_path, source, mode, nodes):
    """The RSS of a peer program holding ``nodes`` idle tasks (and servers with ``listen``)."""
    app = tmp_path / "peer_app.py"
    app.write_text(source)
    run = subprocess.run([sys.executable, str(app), mode, str(nodes)], env=_env(),
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return int(run.stdout.split()[-1])


RESULTS = {}
pytestmark = pytest.mark.timeout(3600)


@pytest.mark.parametrize("mode", ["idle", "listen"])
@pytest.mark.parametrize("system", ["pysplay", "gevent", "asyncio"])
def test_memory_per_idle_node(benchmark, tmp_path, system, mode):
    if system == "gevent":
        pytest.importorskip("gevent")

    def per_node():
        if system == "pysplay":
            small, big = (splay_run(tmp_path, mode, n)["rss"] for n in (N1, N2))
        else:
            source = GEVENT_APP if system == "gevent" else ASYNCIO_APP
            small, big = (peer_run(tmp_path, source, mode, n) for n in (N1, N2))
        return (big - small) / (N2 - N1)

    per = benchmark.pedantic(per_node, rounds=1, iterations=1)
    RESULTS[system, mode] = per
    line = {"system": system, "mode": mode, "nodes": [N1, N2], "rss_bytes_per_node": round(per)}
    if system == "pysplay":
        traced = splay_run(tmp_path, mode, N1, trace=True)
        line["traced_bytes_per_node"] = round(traced["traced"] / N1)
        line["traced_by_file"] = {os.path.relpath(f, ROOT) if f.startswith(ROOT) else f: round(s / N1)
                                  for f, s in traced["by_file"] if s >= N1 * 8}
    if ("pysplay", mode) in RESULTS and system != "pysplay":
        line["pysplay_over_" + system] = round(RESULTS["pysplay", mode] / per, 2)
    print("memory", json.dumps(line))
    assert per > 0

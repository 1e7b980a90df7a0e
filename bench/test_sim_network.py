"""The simulated network (splay.sim.network): its speed, its memory, and what it costs real runs.

* ``rpcq calls``: N sequential rpcq calls between two nodes of one process, simulated (virtual
  time, 1 ms links) against the same calls over real loopback sockets (the peer: what the calls
  cost without the simulation) -- calls per second of real time.
* ``idle listeners``: RSS per simulated node that only listens (a TCP server socket bound on its
  own IP, the rpcq server's socket), N_IDLE nodes in a fresh process.
* The real path must not get slower (the simulation's hooks are in tcp.pyx, udp.pyx, sockbase.pxd
  and the hub): instructions per real rpcq call, measured with callgrind as
  bench/test_metrics_overhead.py does (``counting`` variant: what ``splay run`` nodes run), on
  this commit and on the one before the simulated network.

Run::

    python -m pytest bench/test_sim_network.py      # wall time, pytest-benchmark
    python bench/test_sim_network.py                # the figures of BENCHMARKS.md
    python bench/test_sim_network.py --callgrind     # instructions per real rpcq call
"""
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CALLS = 20_000
N_IDLE = 20_000
CALLGRIND_SCALE = (200, 1200)


def sim_rpcq_calls(n):
    """``n`` sequential rpcq calls between two simulated nodes; returns the real seconds taken."""
    from splay import events, rpcq
    from splay.sim import network
    elapsed = []

    def main():
        rpcq.server(7000, namespace={"concat": lambda a, b: a + b})
        start = time.perf_counter()
        for _ in range(n):
            rpcq.call(("127.0.0.1", 7000), ["concat", "one", "two"])
        elapsed.append(time.perf_counter() - start)
        rpcq.stop_server(7000)

    with network.simulated(delay=0.001):
        events.run(main)
    return elapsed[0]


def real_rpcq_calls(n):
    """The same calls over loopback sockets (bench/test_metrics_overhead.py's workload)."""
    sys.path.insert(0, HERE)
    from test_metrics_overhead import rpcq_calls
    return rpcq_calls(n)


def idle_listener_bytes(n):
    """RSS bytes per simulated node listening on its own IP (``n`` nodes), in this process."""
    import gc
    import psutil
    from splay import socket
    from splay.sim import network
    from splayc import hub
    proc = psutil.Process()
    kept = []

    class Node:
        def __init__(self, ip):
            self.job = type("Job", (), {"me": type("Me", (), {"ip": ip, "port": 7000})})()

    with network.simulated():
        nodes = [Node(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}") for i in range(n)]
        gc.collect()
        before = proc.memory_info().rss
        for node in nodes:
            hub.set_default_node(node)
            kept.append(socket.bind("*", 7000))
        hub.set_default_node(None)
        gc.collect()
        after = proc.memory_info().rss
        assert all(s.getsockname()[1] == 7000 for s in kept)
        for s in kept:
            s.close()
    return (after - before) / n


def _child(what, n):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", what, str(n)],
                         check=True, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             [os.path.join(ROOT, "python"), ROOT])))
    return float(out.stdout.split()[-1])


@pytest.mark.parametrize("kind", ["simulated", "loopback"])
def test_rpcq_calls(benchmark, kind):
    """Real seconds of CALLS sequential rpcq calls, simulated or over loopback."""
    benchmark.group = "rpcq calls: simulated network vs loopback sockets"
    benchmark.extra_info["calls"] = CALLS
    seconds = benchmark.pedantic(lambda: _child(kind, CALLS), rounds=3, iterations=1)
    assert seconds > 0


def test_idle_listener_memory(benchmark):
    """RSS per idle simulated listening node."""
    per_node = benchmark.pedantic(lambda: _child("idle", N_IDLE), rounds=1, iterations=1)
    benchmark.extra_info["bytes_per_node"] = per_node
    assert per_node > 0


def callgrind_per_call(root=ROOT):
    """Instructions per real rpcq call of the tree at ``root`` (its bench/test_metrics_overhead.py
    child, ``counting`` variant), by callgrind at two scales."""
    import tempfile
    sys.path.insert(0, HERE)
    from test_metrics_overhead import _instructions
    totals = []
    with tempfile.TemporaryDirectory() as workdir:
        for n in CALLGRIND_SCALE:
            out = os.path.join(workdir, f"rpcq-{n}")
            subprocess.run(["valgrind", "--tool=callgrind", "--quiet",
                            f"--callgrind-out-file={out}", sys.executable,
                            os.path.join(root, "bench", "test_metrics_overhead.py"), "--child",
                            "counting", "rpcq", str(n)],
                           check=True, capture_output=True, timeout=1800, cwd=root,
                           env=dict(os.environ, PYTHONHASHSEED="0"))
            totals.append(_instructions(out))
    return (totals[1] - totals[0]) / (CALLGRIND_SCALE[1] - CALLGRIND_SCALE[0])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        what, n = sys.argv[2], int(sys.argv[3])
        print({"simulated": sim_rpcq_calls, "loopback": real_rpcq_calls,
               "idle": idle_listener_bytes}[what](n))
    elif len(sys.argv) >= 2 and sys.argv[1] == "--callgrind":
        # --callgrind [OTHER_TREE]: a checkout of the commit before, with its .so files built
        for root in [ROOT] + sys.argv[2:]:
            print(f"{root}: {callgrind_per_call(root):,.0f} instructions per real rpcq call")
    else:
        sim = _child("simulated", CALLS)
        real = _child("loopback", CALLS)
        print(f"{CALLS} sequential rpcq calls: simulated {CALLS / sim:,.0f} calls/s of real time, "
              f"loopback {CALLS / real:,.0f} calls/s (simulated ÷ loopback x{real / sim:.2f})")
        print(f"idle simulated listening node: {_child('idle', N_IDLE):,.0f} bytes of RSS each "
              f"({N_IDLE} nodes)")

"""splay.emulation.apply: a link model applied in the socket layer (delays, rates, partitions).

Four nodes in one process, each a node object with its own emulation (as ``--in-process`` nodes),
each serving a small TCP protocol on its job address: ``ping`` (echo a line), ``sink N`` (read N
bytes, answer ok), ``source N`` (send N bytes). Timings are checked within 10 % of the model's
values; the delays are tens of milliseconds so that timer granularity (1 ms) and scheduling noise
stay well inside that margin.
"""
import statistics
import time

import pytest

from splay import events, socket
from splay.emulation import apply, parse_matrix
from splayc import hub

pytestmark = pytest.mark.timeout(60)

MATRIX = """
        a           b           c       d
a       -           20/16000    40      60
b       20/16000    -           30      50
c       40          30          -       25
d       60/4000     50          25      -
"""


class EmulatedNode:
    """A node object of its own (threads inherit it); ``apply`` gives it a policy with links."""

    def __init__(self):
        self.net_policy = None


def free_ports(n):
    socks = [socket.bind("127.0.0.1", 0) for _ in range(n)]
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def serve(srv):
    while True:
        c = srv.accept()
        if c is None:
            return
        events.thread(lambda c=c: handle(c))


def handle(c):
    while True:
        line = c.receive()
        if line is None:
            break
        if line.startswith(b"sink "):
            if c.receive(int(line[5:])) is None:
                break
            c.send(b"ok\n")
        elif line.startswith(b"source "):
            c.send(b"s" * int(line[7:]))
        else:
            c.send(line + b"\n")
    c.close()


def run_cluster(test):
    """Start four emulated nodes with servers; run ``test(addrs, nodes, emus)`` in node 0."""
    model = parse_matrix(MATRIX, "four.matrix")
    out = {}

    def main():
        ports = free_ports(4)
        addrs = [("127.0.0.1", p) for p in ports]
        nodes = [EmulatedNode() for _ in range(4)]
        emus = [apply(model, i, addrs, node=nodes[i]) for i in range(4)]
        servers = []
        for i, node in enumerate(nodes):
            def start(i=i):
                srv = socket.bind(addrs[i])
                servers.append(srv)
                events.thread(lambda: serve(srv))
            hub.spawn_in_node(node, start).join()
        t = hub.spawn_in_node(nodes[0], lambda: test(addrs, nodes, emus))
        t.join()
        out["exception"], out["result"] = t.exception, t.result
        for srv in servers:
            srv.close()

    events.run(main)
    if out["exception"] is not None:
        raise out["exception"]
    return out["result"]


def round_trip(s):
    t0 = time.perf_counter()
    s.send(b"ping\n")
    assert s.receive() == b"ping"
    return time.perf_counter() - t0


def test_round_trip_times_follow_the_model():
    def test(addrs, nodes, emus):
        results = {}
        for j, expected in ((1, 0.040), (2, 0.080), (3, 0.120)):
            s = socket.connect(addrs[j])
            results[j] = (statistics.median(round_trip(s) for _ in range(5)), expected)
            s.close()
        # and between two other nodes (c -> d: 25 ms each way), from node c's own emulation
        def from_c():
            s = socket.connect(addrs[3])
            rtt = statistics.median(round_trip(s) for _ in range(5))
            s.close()
            return rtt
        t = hub.spawn_in_node(nodes[2], from_c)
        t.join()
        results["c-d"] = (t.result, 0.050)
        return results

    for pair, (measured, expected) in run_cluster(test).items():
        assert abs(measured - expected) <= 0.1 * expected, (pair, measured, expected)


def test_connect_takes_one_emulated_round_trip():
    def test(addrs, nodes, emus):
        t0 = time.perf_counter()
        s = socket.connect(addrs[2])
        took = time.perf_counter() - t0
        s.close()
        return took

    took = run_cluster(test)
    assert abs(took - 0.080) <= 0.008, took


def test_transfer_rates_follow_the_model_both_ways():
    size = 1_000_000

    def test(addrs, nodes, emus):
        s = socket.connect(addrs[1])            # a -> b: 2 MB/s, b -> a: 2 MB/s, 20 ms each way
        t0 = time.perf_counter()
        s.send(b"sink %d\n" % size)
        s.send(b"u" * size)
        assert s.receive() == b"ok"
        upload = time.perf_counter() - t0 - 0.040
        t0 = time.perf_counter()
        s.send(b"source %d\n" % size)
        assert s.receive(size) == b"s" * size
        download = time.perf_counter() - t0 - 0.040
        s.close()
        s = socket.connect(addrs[3])            # d -> a: 500 kB/s, a -> d: unlimited
        t0 = time.perf_counter()
        s.send(b"source %d\n" % (size // 4))
        assert len(s.receive(size // 4)) == size // 4
        slow = time.perf_counter() - t0 - 0.120
        s.close()
        return size / upload, size / download, (size // 4) / slow

    upload, download, slow = run_cluster(test)
    assert abs(upload - 2e6) <= 0.1 * 2e6, upload
    assert abs(download - 2e6) <= 0.1 * 2e6, download
    assert abs(slow - 5e5) <= 0.1 * 5e5, slow


def test_a_partition_stops_traffic_between_groups_and_healing_restores_it():
    def test(addrs, nodes, emus):
        seen = {}
        cut = emus[0].cut([0, 1], [2, 3])
        s = socket.connect(addrs[2])
        seen["0->2 cut"] = (s, socket.last_error)
        inside = socket.connect(addrs[1])
        seen["0->1 cut"] = inside is not None
        inside.close()

        def c_to_a():
            return socket.connect(addrs[0]) is None and socket.last_error == "connection refused"
        t = hub.spawn_in_node(nodes[2], c_to_a)
        t.join()
        seen["2->0 cut"] = t.result

        # UDP: node 2 listens on its address; node 0's datagrams are dropped during the cut
        def udp_listener():
            u = socket.udp()
            u.setsockname(addrs[2])
            u.settimeout(0.5)
            first = u.receive()
            events.fire("healed?")
            u.settimeout(5)
            second = u.receive()
            u.close()
            return first, second
        listener = hub.spawn_in_node(nodes[2], udp_listener)
        events.yield_()
        u = socket.udp()
        seen["udp sent during cut"] = u.sendto(b"lost", addrs[2])
        events.wait("healed?")
        emus[0].heal(cut)
        t0 = time.perf_counter()
        u.sendto(b"through", addrs[2])
        listener.join()
        seen["udp"] = listener.result
        seen["udp delay"] = time.perf_counter() - t0
        u.close()
        s = socket.connect(addrs[2])
        seen["0->2 healed"] = s is not None and round_trip(s) > 0.07
        s.close()
        return seen

    seen = run_cluster(test)
    assert seen["0->2 cut"] == (None, "connection refused")
    assert seen["0->1 cut"] and seen["2->0 cut"]
    assert seen["udp sent during cut"] is True
    assert seen["udp"] == (None, b"through")
    assert seen["udp delay"] >= 0.040
    assert seen["0->2 healed"]


def test_an_all_zero_model_changes_nothing():
    from splay.emulation import LinkModel

    def main():
        ports = free_ports(2)
        addrs = [("127.0.0.1", p) for p in ports]
        node = EmulatedNode()
        emu = apply(LinkModel.uniform(0), 0, addrs, node=node)
        out = {}

        def body():
            srv = socket.bind(addrs[1])
            events.thread(lambda: serve(srv))
            s = socket.connect(addrs[1])
            out["rtt"] = min(round_trip(s) for _ in range(20))
            out["active"] = [link.active for pair in emu.links.values() for link in pair]
            s.close()
            srv.close()
        hub.spawn_in_node(node, body).join()
        return out

    result = {}
    events.run(lambda: result.update(main()))
    assert result["active"] == [False, False]
    assert result["rtt"] < 0.01


# ---------------------------------------------------------------------------- splay run --topology

TOPOLOGY_APP = """
import time
from splay.base import *

def main():
    srv = socket.bind(job.me)
    def serve():
        c = srv.accept()
        while True:
            line = c.receive()
            if line is None:
                break
            c.send(line + b"\\n")
    events.thread(serve)
    if job.position == 0:
        events.sleep(1.0)                       # the other node is listening by then
        s = socket.connect(job.nodes()[1])
        rtts = []
        for _ in range(5):
            t0 = time.perf_counter()
            s.send(b"ping\\n")
            s.receive()
            rtts.append(time.perf_counter() - t0)
        print("rtt %.4f" % sorted(rtts)[2])
        s.close()
    else:
        events.sleep(4.0)                       # until node 0 has measured
    events.exit()

events.run(main)
"""


@pytest.mark.parametrize("in_process", [False, True])
def test_splay_run_topology_applies_the_model_in_every_node(tmp_path, in_process):
    import os
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parent.parent
    (tmp_path / "app.py").write_text(TOPOLOGY_APP)
    (tmp_path / "net.model").write_text("uniform delay_ms=40\n")
    port = free_port_block()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "python"), str(root)]))
    args = ["run", "app.py", "-n", "2", "--first-port", str(port), "--topology", "net.model"]
    if in_process:
        args.append("--in-process")
    out = subprocess.run([sys.executable, "-m", "splay.cli", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    rtts = [float(line.split("rtt ")[1]) for line in out.stdout.splitlines() if "rtt " in line]
    assert len(rtts) == 1 and abs(rtts[0] - 0.080) <= 0.008, out.stdout


def test_splay_run_refuses_a_bad_topology(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parent.parent
    (tmp_path / "app.py").write_text("print('ran')\n")
    (tmp_path / "bad.model").write_text("uniform delay_ms=-5\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "python"), str(root)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "--topology",
                          "bad.model"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "--topology" in out.stderr and "ran" not in out.stdout


def free_port_block():
    """A first port with the next one free too (for a 2-node run), outside the ephemeral range
    (where ports of closed connections linger in TIME_WAIT)."""
    from splay.deploy.testbed import free_port_range
    return free_port_range(2)

"""The simulated network (splay.sim.network, splayc/simnet.pyx): TCP and UDP between the nodes of
one process in virtual time, with the emulation layer's links (topologies, partitions)."""
import time

import pytest

from splay import events, misc, net, rpc, rpcq, socket, urpc
from splay.emulation import LinkModel, apply
from splay.sim import clock, network
from splayc import hub

pytestmark = pytest.mark.timeout(60)


class Node:
    """A node of the test: what in-process nodes carry (its job's address, its own policy)."""

    def __init__(self, ip, port=7000):
        self.job = _Job(ip, port)
        self.net_policy = None

    @property
    def address(self):
        return (self.job.me.ip, self.job.me.port)


class _Job:
    def __init__(self, ip, port):
        self.me = _Me(ip, port)


class _Me:
    def __init__(self, ip, port):
        self.ip, self.port = ip, port


def run_nodes(*mains):
    """Run ``(node, fn)`` pairs: each ``fn`` as a thread of its node; returns when all ended."""
    try:
        for node, fn in mains:
            hub.set_default_node(node)
            events.thread(fn)
    finally:
        hub.set_default_node(None)
    events.run()


def echo_server(port, log=None):
    """A thread serving line echo (upper case) on ``port``; ``log`` gets each connection's end."""
    srv = socket.bind("*", port)

    def serve(c):
        while True:
            line = c.receive("*l")
            if line is None:
                if log is not None:
                    log.append((c.error, misc.time()))
                return
            c.send(line.upper() + b"\n")

    def accept_loop():
        while True:
            c = srv.accept()
            if c is None:
                return
            events.thread(lambda: serve(c))
    events.thread(accept_loop)
    return srv


# ---------------------------------------------------------------------------- TCP


def test_connect_takes_one_round_trip_and_bytes_arrive_in_order():
    got = []
    a, b = Node("10.0.0.1"), Node("10.0.0.2")

    def server():
        srv = socket.bind("*", 7000)
        c = srv.accept()
        got.append(("accepted", misc.time(), c.getpeername()[0], c.getsockname()))
        got.append(("data", c.receive("*a"), misc.time()))

    def client():
        s = socket.connect("10.0.0.2", 7000)
        got.append(("connected", misc.time(), s.getsockname()[0]))
        for i in range(200):
            s.send(b"%d," % i * (i % 7 + 1))
        s.close()

    with network.simulated(delay=0.02):
        run_nodes((b, server), (a, client))
    assert ("accepted", 0.02, "10.0.0.1", ("10.0.0.2", 7000)) in got
    assert ("connected", 0.04, "10.0.0.1") in got
    data = next(g for g in got if g[0] == "data")
    assert data[1] == b"".join(b"%d," % i * (i % 7 + 1) for i in range(200))
    assert data[2] == pytest.approx(0.06)      # EOF one delay after the close


def test_a_rate_limited_link_paces_a_transfer():
    got = []
    model = LinkModel.uniform(10, kbps=8000)         # 10 ms one way, 1,000,000 bytes/s
    a, b = Node("10.0.0.1"), Node("10.0.0.2")
    with network.simulated():
        apply(model, 0, [a.address, b.address], node=a)

        def server():
            c = socket.bind("*", 7000).accept()
            got.append((len(c.receive("*a")), misc.time()))

        def client():
            s = socket.connect(b.address)
            s.send(b"x" * 500_000)
            s.close()
        run_nodes((b, server), (a, client))
    # connected at 20 ms; 0.5 s on the wire, 10 ms of delay; the EOF comes right after
    assert got == [(500_000, pytest.approx(0.53))]


def test_close_gives_eof_after_the_delay_and_late_data_gets_a_reset():
    got = []

    def main():
        srv = socket.bind("*", 7000)
        s = socket.connect("127.0.0.1", 7000)
        c = srv.accept()
        c.close()                                    # the server end goes away at t = 0.2
        got.append(s.receive("*l"))
        got.append((s.error, misc.time()))
        s.send(b"late\n")                            # reaches a closed socket: reset back
        events.sleep(1)
        got.append((s.send(b"more\n"), s.error))

    with network.simulated(delay=0.1):
        events.run(main)
    assert got == [None, ("closed", pytest.approx(0.3)), (None, "closed")]


def test_a_host_going_down_resets_its_connections_at_the_peers():
    ends = []
    client_saw = []
    a, b = Node("10.0.0.1"), Node("10.0.0.2")

    def server():
        echo_server(7000, ends)

    def client():
        s = socket.connect("10.0.0.2", 7000)
        s.send(b"ping\n")
        client_saw.append(s.receive())
        hub_time = misc.time()
        client_saw.append(("down at", hub_time, network.node_down("10.0.0.2")))
        client_saw.append((s.receive(), s.error, misc.time()))
        client_saw.append((socket.connect("10.0.0.2", 7000), socket.last_error, misc.time()))
        network.node_up("10.0.0.2")
        client_saw.append((socket.connect("10.0.0.2", 7000), socket.last_error, misc.time()))

    with network.simulated(delay=0.05, connect_timeout=30):
        run_nodes((b, server), (a, client))
    assert client_saw[0] == b"PING"
    assert client_saw[1] == ("down at", pytest.approx(0.2), 2)   # the listener, the connection
    assert client_saw[2] == (None, "closed", pytest.approx(0.25))  # the reset, one delay later
    # a down host answers nothing: the connect gives up at connect_timeout
    assert client_saw[3] == (None, "timeout", pytest.approx(30.25))
    # up again but its application is gone: refused after one round trip
    assert client_saw[4] == (None, "connection refused", pytest.approx(30.35))


def test_connect_to_a_down_host_fails_at_the_socket_timeout():
    got = []

    def main():
        network.node_down("10.9.9.9")
        s = socket.tcp()
        s.settimeout(2.5)
        got.append((s.connect("10.9.9.9", 80), s.error, misc.time()))

    with network.simulated(delay=0.05):
        events.run(main)
    assert got == [(None, "timeout", 2.5)]


def test_connect_to_a_port_nobody_listens_on_is_refused_after_one_round_trip():
    got = []

    def main():
        got.append((socket.connect("127.0.0.1", 9), socket.last_error, misc.time()))

    with network.simulated(delay=0.125) as net:
        events.run(main)
        assert net.stats()["refused"] == 1
    assert got == [(None, "connection refused", 0.25)]


def test_crash_of_one_node_resets_its_connections_and_its_port_refuses():
    got = []
    a, b = Node("127.0.0.1", 7001), Node("127.0.0.1", 7002)

    def server():
        echo_server(7002)

    def client():
        s = socket.connect("127.0.0.1", 7002)
        s.send(b"x\n")
        s.receive()
        got.append(network.crash(b))
        got.append((s.receive(), s.error, misc.time()))
        got.append((socket.connect("127.0.0.1", 7002), socket.last_error, misc.time()))

    with network.simulated(delay=0.01):
        run_nodes((b, server), (a, client))
    assert got == [2, (None, "closed", pytest.approx(0.05)),
                   (None, "connection refused", pytest.approx(0.07))]


def test_net_servers_clients_udp_helpers_and_select_work_unchanged():
    got = []

    def main():
        net.server(7000, lambda s: s.send(s.receive() + b"!\n"))
        net.udp_helper(7001, lambda data, ip, port: got.append((data, ip, misc.time())))

        def exchange(s):
            s.send(b"hi\n")
            got.append((s.receive(), misc.time()))
        net.client(("127.0.0.1", 7000), {"receive": exchange})
        u = socket.udp()
        u.sendto(b"dgram", "127.0.0.1", 7001)
        a, b = socket.udp(), socket.udp()
        b.setsockname("*", 7002)
        readable, _, err = socket.select([b], None, 5)
        got.append((readable, err, misc.time()))
        a.sendto(b"x", "127.0.0.1", 7002)
        readable, _, err = socket.select([b], None, 5)
        got.append((readable == [b], err, misc.time()))
        events.sleep(1)
        net.stop_server(7000)

    with network.simulated(delay=0.5):
        events.run(main)
    # net.client returns once connected (one round trip: t = 1), then the datagram leaves
    assert got == [(b"dgram", "127.0.0.1", 1.5), (b"hi!", 2.0), ([], "timeout", 6.0),
                   (True, None, 6.5)]


def test_bind_conflicts_and_bad_ports_are_errors():
    got = []

    def main():
        first = socket.bind("*", 7000)
        got.append((socket.bind("*", 7000), socket.last_error))
        s = socket.tcp()
        got.append((s.connect("127.0.0.1", 0), s.error))
        u = socket.udp()
        got.append((u.sendto(b"x", "127.0.0.1", 0), u.error))
        got.append(first.getsockname())

    with network.simulated():
        events.run(main)
    assert got == [(None, "address already in use"),
                   (None, "invalid port 0: a port is in 1..65535"),
                   (None, "invalid port 0: a port is in 1..65535"), ("127.0.0.1", 7000)]


def test_bad_network_settings_and_calls_without_a_network_are_clear_errors():
    with pytest.raises(ValueError, match="delay >= 0"):
        with network.simulated(delay=-1):
            pass
    with pytest.raises(ValueError, match="0 <= loss <= 1"):
        with network.simulated(loss=2):
            pass
    assert network.installed() is None and not clock.is_virtual()
    with pytest.raises(network.NetworkError, match="no simulated network is installed"):
        network.node_down("10.0.0.1")


def test_install_needs_virtual_time_and_one_network_at_a_time():
    with pytest.raises(network.NetworkError, match="virtual time"):
        network.install()
    with network.simulated():
        with pytest.raises(network.NetworkError, match="installed already"):
            network.install()
    assert network.installed() is None
    assert type(socket.tcp()).__name__ == "TCP"         # real sockets again


# ---------------------------------------------------------------------------- UDP


def _udp_losses(seed, loss=0.3, count=400):
    got = []

    def main():
        r = socket.udp()
        r.setsockname("*", 6000)
        s = socket.udp()
        for i in range(count):
            s.sendto(b"%d" % i, "127.0.0.1", 6000)
        r.settimeout(1)
        while True:
            d = r.receive()
            if d is None:
                return
            got.append(int(d))

    with network.simulated(seed=seed, loss=loss, delay=0.001) as net:
        events.run(main)
        stats = net.stats()
    assert stats["datagrams"] == count and stats["lost"] == count - len(got)
    return got


def test_udp_loss_is_reproducible_from_the_seed():
    first, again, other = _udp_losses(7), _udp_losses(7), _udp_losses(8)
    assert first == again
    assert first != other
    assert 0.2 < 1 - len(first) / 400 < 0.4
    assert first == sorted(first)                     # one link, no reordering


def test_datagrams_to_a_down_host_or_an_unbound_port_are_lost():
    got = []

    def main():
        r = socket.udp()
        r.setsockname("*", 6000)
        s = socket.udp()
        s.sendto(b"nobody", "127.0.0.1", 6001)
        network.node_down("10.0.0.5")
        s.sendto(b"down", "10.0.0.5", 6000)
        s.sendto(b"ok", "127.0.0.1", 6000)
        got.append(r.receivefrom())
        got.append(misc.time())

    with network.simulated(delay=0.01) as net:
        events.run(main)
        assert net.stats()["lost"] == 2
    assert got[0][0] == b"ok" and got[0][1] == "127.0.0.1"
    assert got[1] == pytest.approx(0.01)


# ---------------------------------------------------------------------------- RPC


@pytest.mark.parametrize("module, first, then", [
    (rpc, 0.2, 0.2),          # a connection per call: connect + call, two round trips each
    (rpcq, 0.2, 0.1),         # a kept connection: only the first call connects
    (urpc, 0.1, 0.1),         # one datagram each way
])
def test_rpc_calls_between_simulated_nodes_take_round_trips(module, first, then):
    got = []
    a, b = Node("10.0.0.1"), Node("10.0.0.2")

    def server():
        module.server(7000, namespace={"add": lambda x, y: x + y,
                                       "slow": lambda: events.sleep(60)})
        events.sleep(100)
        module.stop_server(7000)

    def client():
        t0 = misc.time()
        got.append(module.call(b.address, ["add", 2, 3]))
        t1 = misc.time()
        got.append(module.call(b.address, ["add", 4, 5]))
        got.append((round(t1 - t0, 9), round(misc.time() - t1, 9)))
        got.append(module.acall(b.address, ["slow"], 5))
        got.append(round(misc.time() - t1, 9))

    with network.simulated(delay=0.05):
        run_nodes((b, server), (a, client))
    assert got[:3] == [5, 9, (first, then)]
    assert got[3] == (False, "timeout")
    assert got[4] == pytest.approx(then + 5)


def test_a_day_of_periodic_rpcs_in_virtual_time_takes_under_a_second():
    calls = []
    a, b = Node("10.0.0.1"), Node("10.0.0.2")

    def server():
        rpcq.server(7000, namespace={"now": misc.time})
        events.sleep(24 * 3600 + 30)
        rpcq.stop_server(7000)

    def client():
        p = events.periodic(60, lambda: calls.append(rpcq.call(b.address, ["now"])))
        events.sleep(24 * 3600 + 30)
        events.kill(p)

    start = time.monotonic()
    with network.simulated(delay=0.01):
        run_nodes((b, server), (a, client))
    assert time.monotonic() - start < 1.0
    assert len(calls) == 24 * 60
    assert calls[0] == pytest.approx(60.03)           # connect (20 ms), then 10 ms to the server
    assert calls[-1] == pytest.approx(24 * 3600 + 0.01)


# ---------------------------------------------------------------------------- topologies


MATRIX = """
       a     b     c       # one-way delays in ms
a      -     10    40
b      10    -     5
c      40    5     -
"""


def test_a_latency_matrix_gives_the_round_trip_times_and_a_partition_cuts():
    from splay.emulation.matrix import parse_matrix
    model = parse_matrix(MATRIX)
    nodes = [Node(f"10.0.0.{i + 1}") for i in range(3)]
    addresses = [n.address for n in nodes]
    rtts = {}

    def server():
        urpc.server(7000, namespace={"ping": lambda: True})
        rpcq.server(7000, namespace={"ping": lambda: True})
        events.sleep(100)

    def client():
        for j in (1, 2):
            t = misc.time()
            urpc.call(addresses[j], ["ping"])
            rtts[j] = round(misc.time() - t, 9)
        emulation.cut([0], [2])
        rtts["cut"] = urpc.acall(addresses[2], ["ping"], 2)
        s = socket.tcp()
        s.settimeout(3)
        rtts["connect"] = (s.connect(addresses[2]), s.error)
        emulation.heal()
        t = misc.time()
        rtts["healed"] = (rpcq.call(addresses[2], ["ping"]), round(misc.time() - t, 9))

    with network.simulated():
        emulation = None
        for i, n in enumerate(nodes):
            e = apply(model, i, addresses, node=n)
            if i == 0:
                emulation = e
        run_nodes(*[(n, server) for n in nodes[1:]], (nodes[0], client))
    assert rtts[1] == 0.02 and rtts[2] == 0.08
    assert rtts["cut"] == (False, "timeout")
    assert rtts["connect"] == (None, "timeout")
    assert rtts["healed"] == (True, 0.16)             # connect + call over 40 ms each way


# ---------------------------------------------------------------------------- determinism


def _gossip_trace(seed):
    """Eight nodes calling each other at random over lossy links (rpcq and urpc): the trace of
    (virtual time, caller, callee, result)."""
    import random
    trace = []
    nodes = [Node(f"10.0.1.{i + 1}") for i in range(8)]
    model = LinkModel.uniform(20, kbps=800, loss=0.2)

    def node_main(i):
        rng = random.Random(i)
        module = rpcq if i % 2 else urpc
        module.server(7000, namespace={"hello": lambda x: x + 1})
        for _ in range(15):
            events.sleep(rng.uniform(0.1, 1.0))
            j = rng.randrange(len(nodes))
            ok, r = module.acall(nodes[j].address, ["hello", i], 0.5)
            trace.append((misc.time(), i, j, ok, r))
        events.sleep(5)
        module.stop_server(7000)

    with network.simulated(seed=seed):
        for i, n in enumerate(nodes):
            apply(model, i, [m.address for m in nodes], node=n)
        run_nodes(*[(n, (lambda i=i: node_main(i))) for i, n in enumerate(nodes)])
    return trace


def _trace_in_a_fresh_process(seed):
    """_gossip_trace(seed) in a new interpreter, as each simulation run is (module state such as
    urpc's key counter starts afresh)."""
    import json
    import os
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); import test_sim_network as t; "
            f"print(json.dumps(t._gossip_trace({seed})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             [os.path.join(root, "python"), root, here])))
    return json.loads(out.stdout.splitlines()[-1])


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    first = _trace_in_a_fresh_process(3)
    assert len(first) == 8 * 15
    assert any(ok for _, _, _, ok, _ in first) and not all(ok for _, _, _, ok, _ in first)
    assert _trace_in_a_fresh_process(3) == first
    assert _trace_in_a_fresh_process(4) != first

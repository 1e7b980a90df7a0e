"""Counters that measure time read the hub's clock: virtual in a simulation.

``splayc.rpcstats`` (the latency of each RPC call made) and ``SocketBase.getstats`` (a socket's
age) are measured on the clock of the deadlines (``hub.clock_ns``): a call over a 50 ms link
lasts 0.1 virtual seconds in a simulation, whatever the real machine took to simulate it.
"""
import pytest

from splay import events, misc, rpcq, socket
from splay.sim import network
from splayc import hub, rpcstats


class Node:
    """A node object with its own RPC counters (as ``--in-process`` nodes have)."""

    def __init__(self):
        self.rpc_stats = rpcstats.RpcStats()
        self.net_policy = None


def test_rpc_latencies_are_counted_in_virtual_time():
    node = Node()
    times = []

    def calls():
        rpcq.server(7000, namespace={"add": lambda a, b: a + b})
        for _ in range(3):
            start = misc.time()
            assert rpcq.call(("127.0.0.1", 7000), ["add", 1, 2]) == 3
            times.append(misc.time() - start)
        rpcq.stop_server(7000)

    with network.simulated(seed=1, delay=0.05):
        events.run(lambda: hub.spawn_in_node(node, calls).join())
    made = node.rpc_stats.function("rpcq", "add").as_dict()
    assert made["made"] == 3 and made["errors"] == made["timeouts"] == 0
    assert times == pytest.approx([0.2, 0.1, 0.1])           # connect + call, then a round trip
    assert made["latency_sum"] == pytest.approx(0.4)         # the same virtual durations
    assert made["latency"][rpcstats.latency_bucket(0.1)] == 2
    assert made["latency"][rpcstats.latency_bucket(0.2)] == 1


def test_a_socket_age_is_counted_in_virtual_time():
    ages = {}

    def main():
        u = socket.udp()
        events.sleep(3600)                     # an hour: milliseconds of real time
        ages["udp"] = u.getstats()[2]
        t = socket.bind("127.0.0.1", 7001)
        events.sleep(1.5)
        ages["tcp"] = t.getstats()[2]
        t.setstats(0, 0, 10)                   # an age given back counts on the same clock
        events.sleep(2)
        ages["reset"] = t.getstats()[2]
        u.close()
        t.close()

    with network.simulated(seed=1):
        events.run(main)
    assert ages == {"udp": 3600.0, "tcp": 1.5, "reset": 12.0}


def test_real_sockets_keep_counting_real_time():
    ages = {}

    def main():
        u = socket.udp()
        events.sleep(0.05)
        ages["udp"] = u.getstats()[2]
        u.close()

    events.run(main)
    assert 0.04 <= ages["udp"] < 30           # real seconds (a loaded machine may be slow)

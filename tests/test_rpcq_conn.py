"""splayc/rpcq_conn.pyx, pooled_transport: the connection of the previous call is taken again
without a pool lookup; the pool's order (least recently used first) and its closing of connections
must come out as if every call had looked it up."""
import pytest

from splay import events, rpcq
from lua_peer import free_port
from support_events import restored_settings, run

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings():
    yield from restored_settings(rpcq)


def test_runs_of_calls_to_one_peer_keep_the_pool_order(settings):
    settings["max_connections"] = 2
    ports = [free_port() for _ in range(3)]

    def main():
        for i, p in enumerate(ports):
            rpcq.server(p, namespace={"v": i})
        order = []
        got = []
        for p in (ports[0], ports[1], ports[1], ports[1], ports[0], ports[0]):
            got.append(rpcq.call(("127.0.0.1", p), "v"))
            order.append([c.port for c in rpcq.connections()])
        got.append(rpcq.call(("127.0.0.1", ports[2]), "v"))    # makes room: closes ports[1]
        open_ports = [c.port for c in rpcq.connections()]
        for p in ports:
            rpcq.stop_server(p)
        return got, order, open_ports

    got, order, open_ports = run(main)
    assert got == [0, 1, 1, 1, 0, 0, 2]
    assert order[-1] == [ports[1], ports[0]]           # ports[0], used last, is at the end
    assert open_ports == [ports[0], ports[2]]


def test_a_closed_connection_is_not_taken_again(settings):
    port = free_port()

    def main():
        rpcq.server(port, namespace={"v": 7})
        node = ("127.0.0.1", port)
        first = rpcq.call(node, "v")
        (conn,) = rpcq.connections()
        conn.close()                    # e.g. by the pool's cleaning, or its node exiting
        second = rpcq.call(node, "v")
        (again,) = rpcq.connections()
        rpcq.stop_server(port)
        return first, second, again is not conn, conn.connected

    assert run(main) == (7, 7, True, False)

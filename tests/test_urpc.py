"""splay.urpc specifics: retries with at-most-once execution, the reply cache, free messages."""
import time
from socket import SOCK_DGRAM

import pytest

from splay import benc, events, socket, urpc
from lua_peer import free_port, urpc_key
from support_events import restored_settings, run, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings():
    """urpc.settings, restored after the test."""
    yield from restored_settings(urpc)


def cache_of(port):
    return urpc._servers.by_port[port].cache


def test_retries_run_a_slow_call_once(settings):
    settings["retry_number"] = 9          # a retry every 0.2 s while the call runs 0.7 s
    runs = []
    port = free_port(SOCK_DGRAM)

    def slow():
        runs.append(1)
        events.sleep(0.7)
        return "done"

    def main():
        urpc.server(port, namespace={"slow": slow})
        r = urpc.acall(("127.0.0.1", port), "slow", 2)
        freed = wait_until(lambda: not cache_of(port))
        urpc.stop_server(port)
        return r, freed
    r, freed = run(main)
    assert r == (True, ["done"])
    assert len(runs) == 1
    assert freed                           # the caller's free emptied the cache


def test_replies_are_cached_until_cleaning_after(settings):
    settings["cleaning_after"] = 0.2
    port = free_port(SOCK_DGRAM)
    runs = []

    def main():
        urpc.server(port, namespace={"f": lambda: runs.append(1) or len(runs)})
        s = socket.udp()
        s.settimeout(5)

        def raw_call(key):
            k = key.encode()
            s.sendto(b"d4:calll1:fe4:type4:call3:key%d:%se" % (len(k), k), "127.0.0.1", port)
            return benc.decode(s.receive())["call"]

        first = raw_call(urpc_key(1))
        repeat = raw_call(urpc_key(1))              # no free sent: answered from the cache
        events.sleep(0.3)                           # older than cleaning_after
        other = raw_call(urpc_key(2))               # the cleaning runs on arrival
        keys = list(cache_of(port))
        s.close()
        urpc.stop_server(port)
        return first, repeat, other, keys
    first, repeat, other, keys = run(main)
    assert first == repeat == [1] and other == [2]
    assert keys == [urpc_key(2)]
    assert len(runs) == 2


def test_retry_interval_spreads_over_the_timeout(settings):
    """With nothing answering, the call is sent retry_number + 1 times within its timeout."""
    settings["retry_number"] = 3
    listener = socket.udp()
    got = []

    def main():
        listener.setsockname("127.0.0.1", 0)
        port = listener.getsockname()[1]

        def count():
            listener.settimeout(1.5)
            while listener.receive() is not None:
                got.append(time.monotonic())
        t = events.thread(count)
        start = time.monotonic()
        r = urpc.acall(("127.0.0.1", port), "f", 0.8)
        took = time.monotonic() - start
        t.join()
        listener.close()
        return r, took
    r, took = run(main)
    assert r == (False, "timeout") and 0.7 < took < 3
    assert len(got) == 4


def test_ping_and_max_ignored_for_udp():
    port = free_port(SOCK_DGRAM)

    def main():
        assert urpc.server(port, max=3, namespace={}) is True
        rtt = urpc.ping(("127.0.0.1", port), 5)
        urpc.stop_server(port)
        return rtt
    assert isinstance(run(main), float)


def test_calls_of_a_node_share_one_socket():
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"echo": lambda x: x})
        node = ("127.0.0.1", port)
        results = []
        threads = [events.thread(lambda i=i: results.append(urpc.call(node, ["echo", i], 10)))
                   for i in range(200)]
        for t in threads:
            t.join()
        sockets = {id(c.sock) for c in urpc._clients.values() if not c.closed}
        urpc.stop_server(port)
        return sorted(results), len(sockets)
    results, n_sockets = run(main)
    assert results == list(range(200))
    assert n_sockets == 1


def test_call_to_a_stopped_server_times_out():
    """urpc's shared, unconnected UDP socket cannot see ICMP port unreachable (Linux reports it
    only to connected sockets): a call to a dead peer ends at its timeout (docs/rpc.md)."""
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"v": 1})
        first = urpc.acall(("127.0.0.1", port), "v", 10)
        urpc.stop_server(port)
        start = time.monotonic()
        second = urpc.acall(("127.0.0.1", port), "v", 1)
        return first, second, time.monotonic() - start
    first, second, took = run(main)
    assert first == (True, [1])
    assert second == (False, "timeout") and 0.9 <= took < 10

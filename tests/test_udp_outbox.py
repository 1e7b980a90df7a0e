"""splayc.udp_outbox through splay.urpc: calls, frees and replies queued in a round leave together
(one sendmmsg before the loop polls), a datagram the kernel refuses fails its own call only, and
what is queued when a node's client closes still leaves."""
import subprocess
import sys
import textwrap
import time
from socket import SOCK_DGRAM

import pytest

from splay import events, urpc
from lua_peer import free_port
from support_events import run, wait_until
from test_urpc import cache_of, settings  # noqa: F401  (the fixture restoring urpc.settings)

pytestmark = pytest.mark.timeout(60)


def test_many_callers_in_one_round_all_get_their_own_reply(settings):
    # 200 callers start in one round: more than the outbox's 64 datagrams, so it is sent at once
    # when full as well as before the poll; every caller gets the reply to its own call.
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"twice": lambda x: 2 * x})
        results = [None] * 200

        def caller(i):
            results[i] = urpc.acall(("127.0.0.1", port), ["twice", i], 10)
        threads = [events.thread(lambda i=i: caller(i)) for i in range(200)]
        for t in threads:
            t.join()
        freed = wait_until(lambda: not cache_of(port))
        urpc.stop_server(port)
        return results, freed
    results, freed = run(main)
    assert results == [(True, [2 * i]) for i in range(200)]
    assert freed                       # every free arrived: the cache is empty


def test_a_sequential_callers_free_arrives_without_a_next_call(settings):
    # A free waits in the outbox for the loop's next poll, not for the caller's next call.
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"f": lambda: "x"})
        r = urpc.acall(("127.0.0.1", port), "f", 5)
        freed = wait_until(lambda: not cache_of(port))
        urpc.stop_server(port)
        return r, freed
    r, freed = run(main)
    assert r == (True, ["x"]) and freed


def test_a_refused_datagram_fails_its_call_alone(settings):
    # Sending to the broadcast address without SO_BROADCAST: the kernel refuses that datagram in
    # the outbox's sendmmsg. Its call fails at once with the reason; the calls queued beside it
    # are answered, and the node goes on calling.
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"f": lambda i: i})
        first = urpc.acall(("127.0.0.1", port), ["f", 0], 5)   # binds the node's socket
        results = {}

        def caller(ip, i):
            results[i] = urpc.acall((ip, port), ["f", i], 5), time.monotonic()
        started = time.monotonic()
        threads = [events.thread(lambda i=i: caller("127.0.0.1", i)) for i in (1, 2)]
        threads.append(events.thread(lambda: caller("255.255.255.255", 9)))
        threads += [events.thread(lambda i=i: caller("127.0.0.1", i)) for i in (3, 4)]
        for t in threads:
            t.join()
        refused_result, refused_at = results.pop(9)
        took = refused_at - started
        rest = [results[i][0] for i in (1, 2, 3, 4)]
        later = urpc.acall(("127.0.0.1", port), ["f", 5], 5)
        urpc.stop_server(port)
        return first, refused_result, took, rest, later
    first, refused_result, took, rest, later = run(main)
    assert first == (True, [0])
    assert refused_result[0] is False and "permission" in refused_result[1].lower(), refused_result
    assert took < 2.5                  # at once, not at its 5 s timeout
    assert rest == [(True, [i]) for i in (1, 2, 3, 4)]
    assert later == (True, [5])


def test_a_node_that_ends_right_after_its_call_still_frees_it(settings, tmp_path):
    # The last call's free is queued when the program ends: closing the node's client sends it.
    port = free_port(SOCK_DGRAM)
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(f"""
        from splay import events, urpc
        def main():
            print(urpc.acall(("127.0.0.1", {port}), "f", 5), flush=True)
        events.run(main)
    """))

    def main():
        urpc.server(port, namespace={"f": lambda: "x"})
        process = subprocess.Popen([sys.executable, str(client)], stdout=subprocess.PIPE,
                                   text=True)
        got_reply = wait_until(lambda: process.poll() is not None, timeout=30)
        freed = wait_until(lambda: not cache_of(port), timeout=5)
        urpc.stop_server(port)
        return got_reply, process.stdout.read(), freed
    ended, out, freed = run(main)
    assert ended and out.strip() == "(True, ['x'])"
    assert freed

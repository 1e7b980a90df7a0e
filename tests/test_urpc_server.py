"""The compiled urpc server loop (splayc/urpc_server.pyx): bad datagrams, keyless calls, results
that cannot be encoded, all over real loopback sockets; the server keeps serving after each."""
from socket import SOCK_DGRAM

import pytest

from splay import benc, events, socket, urpc
from lua_peer import free_port, urpc_key
from support_events import run

pytestmark = pytest.mark.timeout(60)


def exchange(s, port, datagram, expect_reply=True):
    """Send ``datagram`` to the server; its decoded reply (None when ``expect_reply`` is False
    and nothing came back within 0.3 s)."""
    s.settimeout(5 if expect_reply else 0.3)
    s.sendto(datagram, "127.0.0.1", port)
    data = s.receive(65536)
    return None if data is None else benc.decode(data)


def serve_and(port, body, namespace):
    def main():
        urpc.server(port, namespace=namespace)
        s = socket.udp()
        try:
            return body(s)
        finally:
            s.close()
            urpc.stop_server(port)
    return run(main)


def call_datagram(key, *call):
    request = {"type": "call", "call": list(call)}
    if key is not None:
        request["key"] = key
    return benc.encode(request)


BAD_DATAGRAMS = [
    b"x" * 9000,                                   # over MAX_DATAGRAM
    b"d4:call",                                    # not benc
    b"i3e",                                        # benc, not a dict
    b"l4:type4:calle",                             # a list
    b"d4:freete",                                  # free without a key
    b"d4:callle4:type4:call3:key" + b"i7e" + b"e",  # a key that is not a string
]


@pytest.mark.parametrize("datagram", BAD_DATAGRAMS, ids=range(len(BAD_DATAGRAMS)))
def test_bad_datagram_is_dropped_and_the_server_keeps_serving(datagram):
    port = free_port(SOCK_DGRAM)

    def body(s):
        s.settimeout(0.3)
        s.sendto(datagram, "127.0.0.1", port)
        first = s.receive(65536)
        answer = exchange(s, port, call_datagram(urpc_key(1), "concat", "a", "b"))
        return first, answer
    first, answer = serve_and(port, body, {"concat": lambda a, b: a + b})
    if first is not None:                      # the keyless-but-valid call is answered anyway
        assert datagram.startswith(b"d4:callle")
        assert "error" in benc.decode(first)
    assert answer["call"] == ["ab"] and answer["reply"] is True


def test_unknown_request_type_gets_an_error_reply():
    port = free_port(SOCK_DGRAM)
    reply = serve_and(port, lambda s: exchange(
        s, port, benc.encode({"type": "cast", "key": urpc_key(1), "call": ["f"]})), {"f": int})
    assert reply["reply"] is True and "call" not in reply
    assert "unknown request type 'cast'" in reply["error"]


def test_keyless_call_is_answered_and_not_cached():
    port = free_port(SOCK_DGRAM)
    runs = []

    def body(s):
        first = exchange(s, port, call_datagram(None, "f"))
        second = exchange(s, port, call_datagram(None, "f"))
        return first, second, len(urpc._servers.by_port[port].cache)
    first, second, cached = serve_and(port, body, {"f": lambda: runs.append(1) or len(runs)})
    assert first["call"] == [1] and second["call"] == [2]
    assert cached == 0


def test_result_that_cannot_be_encoded_becomes_an_error():
    port = free_port(SOCK_DGRAM)

    def body(s):
        bad = exchange(s, port, call_datagram(urpc_key(1), "f"))
        good = exchange(s, port, call_datagram(urpc_key(2), "g"))
        return bad, good
    bad, good = serve_and(port, body, {"f": lambda: object(), "g": lambda: "fine"})
    assert "call" not in bad and bad["error"].startswith("cannot encode the result")
    assert good["call"] == ["fine"]


def test_failing_function_is_an_error_reply_and_free_drops_the_cache():
    port = free_port(SOCK_DGRAM)

    def fail():
        raise ValueError("no luck")

    def body(s):
        reply = exchange(s, port, call_datagram(urpc_key(1), "fail"))
        cached = list(urpc._servers.by_port[port].cache)
        s.sendto(benc.encode({"free": True, "key": urpc_key(1)}), "127.0.0.1", port)
        ping = exchange(s, port, benc.encode({"type": "ping", "key": "p"}))   # after the free
        return reply, cached, list(urpc._servers.by_port[port].cache), ping
    reply, cached, after, ping = serve_and(port, body, {"fail": fail})
    assert "call" not in reply and "no luck" in reply["error"]
    assert cached == [urpc_key(1)] and after == []
    assert ping == {"type": "ping", "key": "p", "reply": True}


def test_stop_server_ends_the_loop_and_frees_the_port():
    port = free_port(SOCK_DGRAM)

    def main():
        urpc.server(port, namespace={"v": 1})
        srv = urpc._servers.by_port[port]
        assert urpc.stop_server(port) is True
        events.yield_()
        again = urpc.server(port, namespace={"v": 2})
        r = urpc.acall(("127.0.0.1", port), "v", 10)
        urpc.stop_server(port)
        return srv.closed, srv.thread.dead, again, r
    closed, dead, again, r = run(main)
    assert closed and dead and again is True and r == (True, [2])


def test_a_call_that_blocks_hands_the_receiving_to_a_new_thread():
    """Calls run in the receiving thread; one that blocks must not hold up the next ones: a new
    thread receives while it waits, and its reply still comes, once."""
    port = free_port(SOCK_DGRAM)
    runs = []

    def slow():
        runs.append("slow")
        events.wait("urpc-test-release")
        return "slow done"

    def body(s):
        first_reader = urpc._servers.by_port[port].thread
        s.sendto(call_datagram(urpc_key(1), "slow"), "127.0.0.1", port)
        fast = exchange(s, port, call_datagram(urpc_key(2), "fast"))   # answered meanwhile
        retry = exchange(s, port, call_datagram(urpc_key(1), "slow"), expect_reply=False)
        reader_now = urpc._servers.by_port[port].thread
        events.fire("urpc-test-release")
        s.settimeout(5)
        late = benc.decode(s.receive(65536))
        return first_reader, reader_now, fast, retry, late
    first_reader, reader_now, fast, retry, late = serve_and(
        port, body, {"slow": slow, "fast": lambda: "fast done"})
    assert fast["call"] == ["fast done"]
    assert retry is None                      # the first copy still runs: no second run, no reply
    assert late["call"] == ["slow done"] and late["key"] == urpc_key(1)
    assert runs == ["slow"]
    assert reader_now is not first_reader     # the blocked call's thread no longer receives


def test_stopping_the_server_spares_a_call_in_progress():
    """stop_server ends the receiving thread, not a call that is blocked in another one."""
    port = free_port(SOCK_DGRAM)
    finished = []

    def slow():
        events.fire("urpc-test-started")
        events.wait("urpc-test-stop")
        finished.append(True)
        events.fire("urpc-test-finished")
        return 1

    def main():
        urpc.server(port, namespace={"slow": slow})
        srv = urpc._servers.by_port[port]
        s = socket.udp()
        s.sendto(call_datagram(urpc_key(1), "slow"), "127.0.0.1", port)
        assert events.wait("urpc-test-started", 10)[0]
        urpc.stop_server(port)
        events.fire("urpc-test-stop")
        assert events.wait("urpc-test-finished", 10)[0]
        s.close()
        return srv.closed, srv.thread.dead

    closed, dead = run(main)
    assert closed and dead and finished == [True]


def test_each_call_runs_in_its_own_contextvars_copy():
    """A call that sets a ContextVar does not leak it into the next call (as its own thread
    would not), though both run in the receiving thread."""
    import contextvars
    var = contextvars.ContextVar("urpc_test_var", default="unset")
    port = free_port(SOCK_DGRAM)

    def setter():
        seen = var.get()
        var.set("set by a call")
        return seen

    def body(s):
        return [exchange(s, port, call_datagram(urpc_key(i), "setter"))["call"][0]
                for i in range(3)]
    assert serve_and(port, body, {"setter": setter}) == ["unset", "unset", "unset"]


@pytest.mark.parametrize("free, dropped", [
    (b"d4:freet3:key%d:%se", True),              # canonical: recognised without decoding
    (b"d4:freet3:key0%d:%se", True),             # a leading zero: the decoder takes it too
    (b"d3:key%d:%s4:freete", True),              # keys out of order: the decoder's way
    (b"d4:freet3:key%d:%sex", False),            # trailing junk: not benc, ignored
    (b"d4:freet3:key%d:%s", False),              # cut short
    (b"d4:freei0e3:key%d:%se", False),           # "free" is not true
], ids=["canonical", "leading-zero", "unsorted", "junk", "short", "false"])
def test_free_datagram_forms(free, dropped):
    port = free_port(SOCK_DGRAM)
    key = urpc_key(1)

    def body(s):
        exchange(s, port, call_datagram(key, "f"))
        before = list(urpc._servers.by_port[port].cache)
        k = key.encode()
        s.sendto(free % (len(k), k), "127.0.0.1", port)
        exchange(s, port, benc.encode({"type": "ping", "key": "p"}))    # the free was handled
        return before, list(urpc._servers.by_port[port].cache)
    before, after = serve_and(port, body, {"f": lambda: 1})
    assert before == [key]
    assert after == ([] if dropped else [key])


def test_free_of_an_unknown_or_non_utf8_key_is_harmless():
    port = free_port(SOCK_DGRAM)

    def body(s):
        exchange(s, port, call_datagram(urpc_key(1), "f"))
        s.sendto(b"d4:freet3:key4:\xff\xfe\xfd\xfce", "127.0.0.1", port)    # bytes key: decoder
        s.sendto(benc.encode({"free": True, "key": urpc_key(2)}), "127.0.0.1", port)
        reply = exchange(s, port, call_datagram(urpc_key(3), "f"))
        return list(urpc._servers.by_port[port].cache), reply
    cache, reply = serve_and(port, body, {"f": lambda: 1})
    assert cache == [urpc_key(1), urpc_key(3)] and reply["call"] == [1]


def test_a_call_that_kills_its_own_thread_leaves_the_server_serving():
    """The call runs in the receiving thread: killing that thread ends the call (no reply), not
    the server."""
    port = free_port(SOCK_DGRAM)

    def suicidal():
        events.kill(events.current())

    def body(s):
        first = exchange(s, port, call_datagram(urpc_key(1), "suicidal"), expect_reply=False)
        second = exchange(s, port, call_datagram(urpc_key(2), "f"))
        return first, second, urpc._servers.by_port[port].thread.dead
    first, second, reader_dead = serve_and(port, body, {"suicidal": suicidal, "f": lambda: 7})
    assert first is None and second["call"] == [7] and reader_dead is False

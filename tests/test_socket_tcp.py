"""splay.socket TCP: LuaSocket patterns, partial reads, timeouts, errors, concurrency, many peers.

Every test runs real sockets on loopback under ``events.run``. ``run_main`` re-raises the first
assertion error of any thread it started, so a failing check inside a thread fails the test.
"""
import resource
import time

import pytest

from splay import Node, NotInThread, events, socket
from lua_peer import free_port

pytestmark = pytest.mark.timeout(60)


class Threads:
    """Run threads and collect their exceptions (an uncaught one would only be logged)."""

    def __init__(self):
        self.errors = []

    def wrap(self, f, *args):
        def body():
            try:
                return f(*args)
            except events.TaskKilled:
                raise
            except BaseException as e:
                self.errors.append(e)
                raise
        return body

    def thread(self, f, *args):
        return events.thread(self.wrap(f, *args))


def run_main(main):
    """``events.run(main(threads))``; re-raise the first error of any thread."""
    threads = Threads()
    out = {}

    def body():
        out["result"] = main(threads)

    events.run(threads.wrap(body))
    if threads.errors:
        raise threads.errors[0]
    return out.get("result")


def listen(backlog=32):
    server = socket.bind("127.0.0.1", 0, backlog)
    assert server is not None, socket.last_error
    return server, server.getsockname()[1]


def pair(threads):
    """A connected (client, server-side) pair of sockets."""
    server, port = listen()
    accepted = []
    threads.thread(lambda: accepted.append(server.accept()))
    client = socket.connect("127.0.0.1", port)
    assert client is not None, socket.last_error
    while not accepted:
        events.sleep(0)
    server.close()
    assert accepted[0] is not None
    return client, accepted[0]


# ------------------------------------------------------------------------------------- patterns

def test_line_pattern_strips_lf_and_every_cr():
    def main(threads):
        a, b = pair(threads)
        a.send(b"one\ntwo\r\nth\rree\n\nlast")
        got = [b.receive(), b.receive("*l"), b.receive(b"*l"), b.receive()]
        a.close()
        got.append(b.receive())
        return got, b.error, b.partial

    lines, error, partial = run_main(main)
    assert lines == [b"one", b"two", b"three", b"", None]
    assert error == "closed"
    assert partial == b"last"


def test_count_pattern_and_numeric_string():
    def main(threads):
        a, b = pair(threads)
        a.send(b"abcdefghij")
        return b.receive(3), b.receive("4"), b.receive(0), b.receive(3)

    assert run_main(main) == (b"abc", b"defg", b"", b"hij")


def test_all_pattern_reads_until_close():
    def main(threads):
        a, b = pair(threads)

        def writer():
            for i in range(5):
                a.send(b"chunk%d;" % i)
                events.sleep(0.01)
            a.close()

        threads.thread(writer)
        data = b.receive("*a")
        again = b.receive(b"*a")          # LuaSocket: nothing left and closed -> nil, "closed"
        return data, again, b.error

    data, again, error = run_main(main)
    assert data == b"chunk0;chunk1;chunk2;chunk3;chunk4;"
    assert again is None and error == "closed"


def test_prefix_is_prepended_to_result_and_partial():
    def main(threads):
        a, b = pair(threads)
        a.send(b"line\nabc")
        line = b.receive("*l", b"pre-")
        b.settimeout(0.05)
        missing = b.receive(10, "start:")
        return line, missing, b.error, b.partial

    assert run_main(main) == (b"pre-line", None, "timeout", b"start:abc")


def test_str_data_is_sent_as_utf8():
    def main(threads):
        a, b = pair(threads)
        assert a.send("héllo\n") == len("héllo\n".encode())
        return b.receive()

    assert run_main(main) == "héllo".encode()


def test_send_slice_returns_index_of_last_byte():
    def main(threads):
        a, b = pair(threads)
        results = [a.send(b"0123456789", 3, 5), a.send(b"abcdef", -2), a.send(b"xyz", 2, 100)]
        return results, b.receive(7)

    results, data = run_main(main)
    assert results == [5, 6, 3]
    assert data == b"234efyz"


def test_large_transfer_both_ways_with_backpressure():
    size = 8 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)

    def main(threads):
        a, b = pair(threads)
        got = {}

        def receive_late(sock, key):
            # Start reading late: the sender must wait (read buffer full, kernel flow control).
            events.sleep(0.1)
            got[key] = sock.receive(size)

        threads.thread(receive_late, a, "a")
        threads.thread(receive_late, b, "b")
        threads.thread(lambda: got.setdefault("sent_b", b.send(payload)))
        got["sent_a"] = a.send(payload)
        while len(got) < 4:
            events.sleep(0.01)
        return got

    got = run_main(main)
    assert got["sent_a"] == size and got["sent_b"] == size
    assert got["a"] == payload and got["b"] == payload


# --------------------------------------------------------------------------------- partial reads

def test_message_split_across_many_sends_is_reassembled():
    def main(threads):
        a, b = pair(threads)

        def writer():
            for ch in b"split line\n" + b"x" * 50:
                a.send(bytes([ch]))
                events.sleep(0)

        threads.thread(writer)
        return b.receive(), b.receive(50)

    assert run_main(main) == (b"split line", b"x" * 50)


def test_partial_data_after_close_is_kept_on_partial():
    def main(threads):
        a, b = pair(threads)
        a.send(b"only 7!")
        a.close()
        return b.receive(100), b.error, b.partial, b.receive(1), b.error

    assert run_main(main) == (None, "closed", b"only 7!", None, "closed")


def test_closed_socket_returns_no_buffered_data():
    def main(threads):
        a, b = pair(threads)
        a.send(b"one\ntwo\n")
        first = b.receive()                 # "two" is now buffered on b
        b.close()
        return first, b.receive(), b.error, b.receive(3), b.error

    assert run_main(main) == (b"one", None, "closed", None, "closed")


def test_module_logger_l_o():
    lines = []
    saved = socket.l_o.level
    socket.l_o.out, socket.l_o.level = lines.append, 1
    try:
        def main(threads):
            return socket.connect("127.0.0.1", free_port())
        assert run_main(main) is None
    finally:
        socket.l_o.out, socket.l_o.level = None, saved     # None: follow log.global_out again
    assert socket.l_o.level == 3 and socket.l_o.prefix == "[socket]"
    assert len(lines) == 1 and lines[0].startswith("[socket] D: connect") and \
        "connection refused" in lines[0]


# ------------------------------------------------------------------------------------- timeouts

def test_receive_timeout_returns_none_and_keeps_socket_usable():
    def main(threads):
        a, b = pair(threads)
        b.settimeout(0.1)
        t0 = time.monotonic()
        first = b.receive()
        waited = time.monotonic() - t0
        a.send(b"late\n")
        return first, b.error, waited, b.receive()

    first, error, waited, second = run_main(main)
    assert first is None and error == "timeout"
    assert 0.09 <= waited < 5
    assert second == b"late"


def test_timeout_is_total_for_the_whole_operation():
    # Data trickles in faster than the timeout, but the whole receive takes longer: it must fail.
    def main(threads):
        a, b = pair(threads)

        def trickle():
            for _ in range(40):
                if a.send(b"x") is None:
                    return
                events.sleep(0.05)

        threads.thread(trickle)
        b.settimeout(0.4)
        t0 = time.monotonic()
        data = b.receive(40)
        waited = time.monotonic() - t0
        a.close()
        return data, b.error, len(b.partial), waited

    data, error, n_partial, waited = run_main(main)
    assert data is None and error == "timeout"
    assert 1 <= n_partial < 40
    assert waited < 1.8


def test_zero_timeout_does_not_wait():
    def main(threads):
        a, b = pair(threads)
        b.settimeout(0)
        first = b.receive()
        a.send(b"ready\n")
        events.sleep(0.05)
        return first, b.error, b.receive(), b.gettimeout()

    assert run_main(main) == (None, "timeout", b"ready", 0.0)


def fill_accept_queue(server, port):
    """Connect until the server's queues are full (nobody accepts): the sockets connected."""
    connected = []
    for _ in range(300):
        s = socket.tcp()
        s.settimeout(0.2)
        if not s.connect("127.0.0.1", port):
            assert s.error == "timeout" and s.is_closed()
            return connected
        connected.append(s)
    raise AssertionError("connect never timed out although nobody accepts")


def test_connections_waiting_beyond_the_first_accept_queue_are_accepted_in_order():
    # The accept queue starts at a few entries and grows up to the backlog; past that libuv keeps
    # the rest in the kernel. 150 connections made before any accept() all come out, in order.
    def main(threads):
        server, port = listen(backlog=100)
        clients = []
        for i in range(150):
            c = socket.connect("127.0.0.1", port)
            assert c is not None, socket.last_error
            c.send(b"%d\n" % i)
            clients.append(c)
        events.sleep(0.05)                   # let libuv take what it can into the queue
        server.settimeout(5)
        got = []
        for _ in clients:
            a = server.accept()
            assert a is not None, server.error
            got.append(int(a.receive()))
            a.close()
        for c in clients + [server]:
            c.close()
        return got

    assert run_main(main) == list(range(150))


def test_on_connection_calls_back_when_a_connection_waits_and_nobody_accepts():
    # The callback runs in the scheduler and starts a thread; the run does not end while the
    # callback is set (as it would not with a thread blocked in accept()); None stops it.
    def main(threads):
        server, port = listen()
        server.settimeout(0)
        calls, got = [], []

        def drain():
            c = server.accept()
            got.append(c.receive() if c is not None else server.error)
            assert server.accept() is None and server.error == "timeout"

        assert server.on_connection(lambda: calls.append(events.thread(drain))) is True
        for i in range(2):
            c = socket.connect("127.0.0.1", port)
            c.send(b"hello %d\n" % i)
            while len(got) <= i:
                events.sleep(0.01)
            c.close()
        assert server.on_connection(None) is True
        with pytest.raises(TypeError, match="takes a function or None"):
            server.on_connection(42)
        server.close()
        assert server.on_connection(lambda: None) is None and server.error == "closed"
        return len(calls), got

    assert run_main(main) == (2, [b"hello 0", b"hello 1"])


def test_defer_accept_hands_over_connections_with_their_data_read():
    # TCP_DEFER_ACCEPT: accept() sees a connection only once its first data arrived, and reads
    # that data at once (dirty() before any receive); a silent one comes after ~1 s anyway.
    def main(threads):
        server, port = listen()
        assert server.defer_accept(1) is True
        silent = socket.connect("127.0.0.1", port)
        server.settimeout(0.3)
        assert server.accept() is None and server.error == "timeout"
        talker = socket.connect("127.0.0.1", port)
        talker.send(b"first line\n")
        server.settimeout(10)
        c = server.accept()
        dirty_at_once = c.dirty()
        line = c.receive()
        late = server.accept()                 # the silent one, after the deferral
        late_dirty = late.dirty() if late is not None else None
        for s in (c, late, silent, talker, server):
            if s is not None:
                s.close()
        return dirty_at_once, line, late is not None, late_dirty

    assert run_main(main) == (True, b"first line", True, False)


def test_defer_accept_needs_a_listening_socket():
    def main(threads):
        s = socket.tcp()
        r = s.defer_accept(1), s.error
        s.close()
        return r

    result, error = run_main(main)
    assert result is None and "listen" in error


def test_a_socket_with_on_connection_keeps_the_run_going():
    ends = []

    def main(threads):
        server, port = listen()
        server.settimeout(0)

        def drain():
            c = server.accept()
            ends.append(c.receive())
            server.close()                   # now nothing keeps the run going

        server.on_connection(lambda: events.thread(drain))

        def client():
            events.sleep(0.2)                # main has ended by then: only the socket waits
            socket.connect("127.0.0.1", port).send(b"late\n")

        threads.thread(client)

    run_main(main)
    assert ends == [b"late"]


def test_connect_timeout_and_killed_connect():
    def main(threads):
        server, port = listen(backlog=1)
        connected = fill_accept_queue(server, port)
        pending = socket.tcp()
        t = events.thread(lambda: pending.connect("127.0.0.1", port))
        events.sleep(0.05)
        events.kill(t)
        events.sleep(0)
        killed_closed = pending.is_closed()
        # The server still works: accept everything that did connect.
        server.settimeout(2)
        accepted = [server.accept() for _ in connected]
        for c in connected + accepted + [server]:
            c.close()
        return len(connected) > 0, killed_closed, all(a is not None for a in accepted)

    assert run_main(main) == (True, True, True)


def test_accept_timeout():
    def main(threads):
        server, _ = listen()
        server.settimeout(0.05)
        got = server.accept()
        server.close()
        return got, server.error

    assert run_main(main) == (None, "timeout")


def test_settimeout_none_and_negative_block_forever():
    def main(threads):
        a, b = pair(threads)
        b.settimeout(1)
        b.settimeout(None)
        assert b.gettimeout() is None
        b.settimeout(-1)
        assert b.gettimeout() is None
        b.settimeout(1e12)                 # longer than any run: no deadline at all

        def late():
            events.sleep(0.2)
            a.send(b"eventually\n")

        threads.thread(late)
        return b.receive()

    assert run_main(main) == b"eventually"


# ------------------------------------------------------------------------------ errors and resets

def test_connection_refused():
    def main(threads):
        server, port = listen()
        server.close()
        s = socket.connect("127.0.0.1", port)
        t = socket.tcp()
        return s, socket.last_error, t.connect(("127.0.0.1", port)), t.error, t.send(b"x"), t.error

    assert run_main(main) == (None, "connection refused", None, "connection refused", None, "closed")


def test_address_already_in_use():
    def main(threads):
        server, port = listen()
        again = socket.bind("127.0.0.1", port)
        err = socket.last_error
        t = socket.tcp()
        res = t.bind("127.0.0.1", port), t.error
        server.close()
        return again, err, res

    assert run_main(main) == (None, "address already in use", (None, "address already in use"))


def test_peer_reset_gives_closed_to_receiver_and_sender():
    def main(threads):
        a, b = pair(threads)
        a.setoption("linger", {"on": True, "timeout": 0})   # close() sends RST
        b.send(b"unread data makes the close abortive too\n")
        events.sleep(0.05)
        a.close()
        got = b.receive()
        err = b.error
        sends = [b.send(b"y" * 65536) for _ in range(20)]
        return got, err, sends[-1], b.error

    got, err, last_send, send_err = run_main(main)
    assert got is None and err == "closed"
    assert last_send is None and send_err == "closed"


def test_close_while_another_thread_receives():
    def main(threads):
        a, b = pair(threads)
        result = []
        threads.thread(lambda: result.append((b.receive(), b.error)))
        events.sleep(0.05)
        b.close()
        b.close()                      # twice is fine
        events.sleep(0.01)
        a.close()
        return result, b.receive(), b.error, b.is_closed()

    assert run_main(main) == ([(None, "closed")], None, "closed", True)


def test_shutdown_send_gives_peer_eof_but_keeps_receiving():
    def main(threads):
        a, b = pair(threads)
        a.send(b"bye")
        assert a.shutdown("send") is True
        got = b.receive("*a")
        b.send(b"reply after shutdown\n")
        return got, a.receive()

    assert run_main(main) == (b"bye", b"reply after shutdown")


def test_operations_on_wrong_state_fail_cleanly():
    def main(threads):
        t = socket.tcp()
        out = [t.receive(), t.error, t.send(b"x"), t.error, t.accept(), t.error]
        server, port = listen()
        out += [server.connect(("127.0.0.1", port)), server.error]
        server.close()
        out += [server.accept(), server.error]
        return out

    assert run_main(main) == [None, "not connected", None, "not connected", None,
                              "not listening: call listen() first", None, "already connected",
                              None, "closed"]


def test_bad_arguments_raise_clear_errors():
    def main(threads):
        a, b = pair(threads)
        with pytest.raises(ValueError, match="invalid receive pattern"):
            b.receive("*x")
        with pytest.raises(ValueError, match="byte count must be >= 0"):
            b.receive(-1)
        with pytest.raises(TypeError, match="must be bytes or str"):
            a.send(42)
        with pytest.raises(ValueError, match="invalid port"):
            socket.connect("127.0.0.1", 70000)
        with pytest.raises(ValueError, match="settimeout mode"):
            a.settimeout(1, "x")
        with pytest.raises(ValueError, match="shutdown mode"):
            a.shutdown("sideways")
        assert a.setoption("no-such-option", 1) is None and "unsupported option" in a.error
        # The sockets still work after all of that.
        a.send(b"still fine\n")
        return b.receive()

    assert run_main(main) == b"still fine"


def test_unknown_host_name():
    # A name that is not a valid host name: the resolver refuses it without asking a DNS server.
    def main(threads):
        return socket.connect("no such host!", 80), socket.last_error

    assert run_main(main) == (None, "host not found")


def test_blocking_call_outside_a_thread_raises_not_in_thread():
    s = socket.tcp()
    with pytest.raises(NotInThread):
        s.connect("127.0.0.1", 1)
    s.close()


# --------------------------------------------------------------------------------- node forms

def test_every_node_form_is_accepted():
    def main(threads):
        server, port = listen()
        forms = [{"ip": "127.0.0.1", "port": port}, Node("127.0.0.1", port), ("127.0.0.1", port),
                 ("localhost", port)]
        peers = []

        def acceptor():
            for _ in range(len(forms) + 1):
                peers.append(server.accept())

        threads.thread(acceptor)
        connected = [socket.connect(f) for f in forms]
        t = socket.tcp()
        connected.append(t if t.connect("127.0.0.1", port) else None)
        while len(peers) < len(forms) + 1:
            events.sleep(0.01)
        names = [c.getpeername() for c in connected]
        for c in connected + peers:
            c.close()
        server.close()
        return names

    names = run_main(main)
    assert len(names) == 5
    assert all(n is not None and n[1] > 0 for n in names)


def test_bind_with_a_node_and_star():
    def main(threads):
        s = socket.tcp()
        assert s.bind({"ip": "*", "port": 0}) is True
        assert s.listen(5) is True
        ip, port = s.getsockname()
        c = socket.connect("127.0.0.1", port)
        peer = s.accept()
        out = ip, c.getsockname() == peer.getpeername(), peer.getsockname()[1] == port
        for x in (c, peer, s):
            x.close()
        return out

    assert run_main(main) == ("0.0.0.0", True, True)


# -------------------------------------------------------------------------- options and stats

def test_options_stats_and_dirty():
    def main(threads):
        a, b = pair(threads)
        out = {
            "nodelay_default": a.getoption("tcp-nodelay"),
            "accepted_nodelay": b.getoption("tcp-nodelay"),
            "set_nodelay": a.setoption("tcp-nodelay", False),
            "nodelay_after": a.getoption("tcp-nodelay"),
            "keepalive": (a.setoption("keepalive", True), a.getoption("keepalive")),
            "reuseaddr": (a.setoption("reuseaddr", True), a.getoption("reuseaddr")),
            "linger": (a.setoption("linger", {"on": True, "timeout": 2}), a.getoption("linger")),
        }
        a.send(b"12345\n")
        events.sleep(0.05)
        out["dirty"] = b.dirty()
        b.receive()
        out["clean"] = b.dirty()
        out["stats_b"] = b.getstats()[:2]
        out["stats_a"] = a.getstats()[:2]
        out["fd"] = a.getfd() > 2
        a.close()
        out["fd_closed"] = a.getfd()
        return out

    out = run_main(main)
    assert out["nodelay_default"] is True and out["accepted_nodelay"] is True
    assert out["set_nodelay"] is True and out["nodelay_after"] is False
    assert out["keepalive"] == (True, True)
    assert out["reuseaddr"] == (True, True)
    assert out["linger"] == (True, {"on": True, "timeout": 2})
    assert out["dirty"] is True and out["clean"] is False
    assert out["stats_b"] == (6, 0) and out["stats_a"] == (0, 6)
    assert out["fd"] is True and out["fd_closed"] == -1


def test_accepted_sockets_have_tcp_nodelay_whatever_the_listener_says():
    # A listener with TCP_NODELAY passes it on (Linux), which spares accept() a setsockopt; one
    # whose tcp-nodelay was turned off, before listen() or after, still gives it to each accepted
    # socket, as accept() always did.
    def main(threads):
        out = []
        for when in ("default", "before listen", "after listen"):
            s = socket.tcp()
            if when == "before listen":
                s.setoption("tcp-nodelay", False)
            assert s.bind("127.0.0.1", 0) is True and s.listen(5) is True
            if when == "after listen":
                s.setoption("tcp-nodelay", False)
            c = socket.connect("127.0.0.1", s.getsockname()[1])
            peer = s.accept()
            out.append((when, s.getoption("tcp-nodelay"), peer.getoption("tcp-nodelay")))
            for x in (c, peer, s):
                x.close()
        return out

    assert run_main(main) == [("default", True, True), ("before listen", False, True),
                              ("after listen", False, True)]


def test_option_set_before_the_socket_exists_is_applied_at_bind():
    def main(threads):
        s = socket.tcp()
        assert s.setoption("linger", {"on": True, "timeout": 3}) is True
        assert s.bind("127.0.0.1", 0) is True
        value = s.getoption("linger")
        s.close()
        return value

    assert run_main(main) == {"on": True, "timeout": 3}


# ------------------------------------------------------------------------------- concurrency

def test_one_reader_and_one_writer_at_once():
    def main(threads):
        a, b = pair(threads)
        received = []

        def reader():
            for _ in range(200):
                received.append(b.receive())

        def writer():
            for i in range(200):
                b.send(b"to a %d\n" % i)

        threads.thread(reader)
        threads.thread(writer)
        for i in range(200):
            a.send(b"to b %d\n" % i)
        got_a = [a.receive() for _ in range(200)]
        while len(received) < 200:
            events.sleep(0.01)
        return got_a, received

    got_a, got_b = run_main(main)
    assert got_a == [b"to a %d" % i for i in range(200)]
    assert got_b == [b"to b %d" % i for i in range(200)]


def test_second_concurrent_reader_gets_busy():
    def main(threads):
        a, b = pair(threads)
        first = []
        threads.thread(lambda: first.append(b.receive()))
        events.sleep(0.02)
        second = b.receive()
        err = b.error
        a.send(b"for the first\n")
        while not first:
            events.sleep(0.01)
        return second, err, first

    second, err, first = run_main(main)
    assert second is None and err.startswith("busy")
    assert first == [b"for the first"]


def test_second_concurrent_acceptor_gets_busy():
    def main(threads):
        server, port = listen()
        first = []
        threads.thread(lambda: first.append(server.accept()))
        events.sleep(0.02)
        second, err = server.accept(), server.error
        c = socket.connect("127.0.0.1", port)
        while not first:
            events.sleep(0.01)
        ok = first[0] is not None and first[0].getpeername() == c.getsockname()
        for s in (c, first[0], server):
            s.close()
        return second, err, ok

    second, err, ok = run_main(main)
    assert second is None and err.startswith("busy") and ok


def test_killed_receiver_leaves_socket_consistent():
    def main(threads):
        a, b = pair(threads)
        t = events.thread(lambda: b.receive(10))
        events.sleep(0.02)
        events.kill(t)
        a.send(b"0123456789")
        return b.receive(10)

    assert run_main(main) == b"0123456789"


def test_killed_sender_and_acceptor_leave_sockets_consistent():
    def main(threads):
        a, b = pair(threads)
        big = b"z" * (16 * 1024 * 1024)           # more than the kernel buffers: send waits
        sender = events.thread(lambda: a.send(big))
        server, port = listen()
        acceptor = events.thread(server.accept)
        events.sleep(0.05)
        events.kill([sender, acceptor])
        events.sleep(0.01)
        # The queued data still arrives in order, then the socket keeps working.
        got = b.receive(len(big))
        a.send(b"after\n")
        tail = b.receive()
        c = socket.connect("127.0.0.1", port)
        peer = server.accept()
        ok = peer is not None and c is not None
        for s in (a, b, c, peer, server):
            s.close()
        return got == big, tail, ok

    assert run_main(main) == (True, b"after", True)


def test_idle_sockets_do_not_keep_the_loop_alive():
    kept = []

    def main(threads):
        server, port = listen()
        c = socket.connect("127.0.0.1", port)
        kept.extend([server, c])          # never closed, never waited on
        return "done"

    t0 = time.monotonic()
    assert run_main(main) == "done"
    assert time.monotonic() - t0 < 5


def test_sockets_left_open_are_closed_when_the_run_ends():
    kept = []

    def main(threads):
        a, b = pair(threads)
        kept.extend([a, b, socket.bind("127.0.0.1", 0)])

    run_main(main)
    assert [s.is_closed() for s in kept] == [True, True, True]


def test_node_exit_closes_only_that_nodes_sockets():
    # Several nodes in one process (splay run --in-process): each socket belongs to the node of
    # the thread that created it, and events.exit() in one node closes that node's sockets only.
    from splayc import hub
    seen = {}

    def node_main(name):
        s = socket.bind("127.0.0.1", 0)
        seen[name] = s
        if name == "A":
            events.sleep(0.05)
            events.exit()
        events.sleep(0.3)
        seen["A closed while B runs"] = seen["A"].is_closed()
        seen["B open"] = not s.is_closed()
        s.close()

    def main(threads):
        hub.spawn_in_node("node A", node_main, "A")
        hub.spawn_in_node("node B", node_main, "B")

    run_main(main)
    assert seen["A closed while B runs"] is True and seen["B open"] is True
    assert (seen["A"].node, seen["B"].node) == ("node A", "node B")


@pytest.mark.slow
def test_thousand_concurrent_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    n = 1000

    def main(threads):
        server, port = listen(backlog=1024)
        served = []

        def handle(c):
            line = c.receive()
            c.send(line + b" back\n")
            served.append(c.receive())       # wait for the client's close
            c.close()

        def acceptor():
            for _ in range(n):
                c = server.accept()
                assert c is not None, server.error
                threads.thread(handle, c)

        def client(i):
            s = socket.connect("127.0.0.1", port)
            assert s is not None, socket.last_error
            events.sleep(0.01)               # all connections are open at the same time
            s.send(b"hello %d\n" % i)
            replies.append(s.receive())
            s.close()

        replies = []
        threads.thread(acceptor)
        for i in range(n):
            threads.thread(client, i)
        while len(served) < n:
            events.sleep(0.05)
        server.close()
        return sorted(replies), served

    replies, served = run_main(main)
    assert replies == sorted(b"hello %d back" % i for i in range(n))
    assert served == [None] * n


# --------------------------------------------------------------------------------- module level

def test_gettime_sleep_and_dns():
    def main(threads):
        t0 = socket.gettime()
        assert socket.sleep(0.02) is True
        return (socket.gettime() - t0, socket.dns.toip("localhost"), socket.dns.toip("10.1.2.3"),
                socket.dns.tohostname("127.0.0.1"), socket.dns.toip("no such host!"),
                socket.dns.gethostname())

    elapsed, ip, literal, name, unknown, hostname = run_main(main)
    assert 0.015 <= elapsed < 5
    assert ip in ("127.0.0.1", "::1")
    assert literal == "10.1.2.3"
    assert isinstance(name, str) and name
    assert unknown is None
    assert isinstance(hostname, str) and hostname

"""splay.llenc: the incremental block parser, framing, and wrap() over real loopback sockets."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splay import DecodeError, events, llenc, socket


def test_frame_bytes_of_wire_md():
    assert llenc.frame(b"d4:type4:pinge") == b"14\nd4:type4:pinge"
    assert llenc.frame(b"") == b"0\n"
    assert llenc.frame("\xe9") == b"2\n\xc3\xa9"
    assert llenc.frame_many([b"a", b"bc"]) == b"1\na2\nbc"
    with pytest.raises(TypeError, match="bytes or str"):
        llenc.frame(12)


def test_parse_length():
    assert llenc.parse_length(b"12") == 12
    assert llenc.parse_length(b"12\r") == 12
    assert llenc.parse_length("0") == 0
    for bad in (b"", b"1a", b"-1", b" 1", b"1" * 30):
        with pytest.raises(DecodeError, match="not a decimal number"):
            llenc.parse_length(bad)


def test_parser_blocks_in_one_chunk_and_across_chunks():
    p = llenc.BlockParser()
    assert p.feed(b"5\nhello3\r\nabc0\n") == [b"hello", b"abc", b""]
    assert p.idle
    assert p.feed(b"1") == []
    assert p.feed(b"0\n01234") == []
    assert p.needed == 5 and not p.idle
    assert p.feed(b"56789") == [b"0123456789"]
    assert p.consumed == len(b"5\nhello3\r\nabc0\n10\n0123456789")


def test_parser_large_block_in_small_pieces():
    big = os.urandom(300_000)
    stream = llenc.frame(big) + llenc.frame(b"x")
    p = llenc.BlockParser()
    blocks = []
    for i in range(0, len(stream), 7000):
        blocks += p.feed(stream[i:i + 7000])
    assert blocks == [big, b"x"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(1, 50), min_size=1))
def test_parser_any_split_gives_the_same_blocks(blocks, cuts):
    stream = llenc.frame_many(blocks)
    p = llenc.BlockParser()
    out, i, k = [], 0, 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        out += p.feed(stream[i:i + step])
        i += step
        k += 1
    assert out == blocks and p.idle


@pytest.mark.parametrize("data, max_length, text", [
    (b"abc\n", None, "not a decimal number"),
    (b"-5\n", None, "not a decimal number"),
    (b"\n", None, "not a decimal number"),
    (b"1" * 30, None, "block length line too long"),
    (b"100\n", 10, "block of 100 bytes exceeds the maximum of 10"),
])
def test_parser_hostile_input(data, max_length, text):
    p = llenc.BlockParser(max_length)
    with pytest.raises(DecodeError, match=text):
        p.feed(data)
    with pytest.raises(DecodeError, match=text):     # stays failed: the framing is lost
        p.feed(b"1\nx")
    assert p.failure is not None


def test_parser_claimed_length_is_not_allocated_up_front():
    import tracemalloc
    p = llenc.BlockParser()
    tracemalloc.start()
    try:
        p.feed(b"999999999999\nabc")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert p.needed == 999999999999 - 3


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=60))
def test_parser_fuzz_only_decode_error(data):
    p = llenc.BlockParser(max_length=1000)
    try:
        p.feed(data)
    except DecodeError:
        pass


# ------------------------------------------------------------------------------------------
# wrap() over real cooperative sockets (splay.socket under events.run)


def _serve(handler, clients):
    """Run a server thread that applies handler(conn) to each of len(clients) connections, and
    the client functions one after the other; return what the clients returned."""
    results = []

    def main():
        server = socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]

        def serve():
            for _ in clients:
                conn = server.accept()
                handler(conn)
        events.thread(serve)
        for client in clients:
            results.append(client(port))
        server.close()
    events.run(main)
    return results


def test_wrap_send_receive_blocks_and_arrays():
    def handler(conn):
        s = llenc.wrap(conn)
        blocks = s.receive_array(3)
        s.send(blocks[::-1])
        s.send("fin\xe9")
        s.close()

    def client(port):
        s = llenc.wrap(socket.connect("127.0.0.1", port))
        assert s.send([b"one", b"", b"three" * 1000]) == len(llenc.frame_many([b"one", b"", b"three" * 1000]))
        got = s.receive_array(3), s.receive(), s.receive()
        error = s.error
        s.close()
        return got, error

    [(got, error)] = _serve(handler, [client])
    assert got == ([b"three" * 1000, b"", b"one"], "fin\xe9".encode(), None)
    assert error == "closed"


def test_wrap_refuses_too_long_block_and_keeps_serving():
    def handler(conn):
        s = llenc.wrap(conn)
        block = s.receive(max_length=10)
        if block is None:
            return          # the wrapper closed the connection
        s.send(b"ok:" + block)
        s.close()

    def too_long(port):
        raw = socket.connect("127.0.0.1", port)
        raw.send(llenc.frame(b"x" * 11))
        data = raw.receive(1)      # the server closed without answering
        raw.close()
        return data

    def fine(port):
        s = llenc.wrap(socket.connect("127.0.0.1", port))
        s.send(b"short")
        reply = s.receive()
        s.close()
        return reply

    assert _serve(handler, [too_long, fine]) == [None, b"ok:short"]


def test_too_long_block_error_is_accurate_and_the_rest_is_not_read():
    errors = []

    def handler(conn):
        s = llenc.wrap(conn)
        llenc.l_o.out = lambda line: None
        try:
            for _ in range(2):              # the second receive must not parse the first's body
                errors.append((s.receive(max_length=10), s.error))
        finally:
            llenc.l_o.out = None

    def too_long(port):
        raw = socket.connect("127.0.0.1", port)
        raw.send(llenc.frame(b"x" * 11) + llenc.frame(b"ok"))
        data = raw.receive(1)
        raw.close()
        return data

    assert _serve(handler, [too_long]) == [None]
    assert errors[0] == (None, "block too long (11 > 10)")
    assert errors[1] == (None, "closed")


def test_wrap_protocol_error_closes_logs_and_keeps_serving():
    from splay import log
    lines = []
    errors = []
    llenc.l_o.out = lines.append
    try:
        def handler(conn):
            s = llenc.wrap(conn)
            block = s.receive()
            if block is None:
                errors.append(s.error)
                return
            s.send(block)
            s.close()

        def garbage(port):
            raw = socket.connect("127.0.0.1", port)
            raw.send(b"hello world\n")
            data = raw.receive(1)
            raw.close()
            return data

        def fine(port):
            s = llenc.wrap(socket.connect("127.0.0.1", port))
            s.send(b"ping")
            reply = s.receive()
            s.close()
            return reply

        assert _serve(handler, [garbage, fine]) == [None, b"ping"]
    finally:
        llenc.l_o.out = None
    assert errors and "protocol error" in errors[0] and "not a decimal number" in errors[0]
    assert any("closing the connection" in line for line in lines)
    assert log.WARNING == 3


def test_wrap_truncated_block_is_closed():
    def handler(conn):
        conn.send(b"10\nabc")
        conn.close()

    def client(port):
        s = llenc.wrap(socket.connect("127.0.0.1", port))
        block = s.receive()
        error = s.error
        s.close()
        return block, error

    assert _serve(handler, [client]) == [(None, "closed")]


def test_wrap_is_idempotent_and_delegates():
    def handler(conn):
        conn.close()

    def client(port):
        raw = socket.connect("127.0.0.1", port)
        s = llenc.wrap(raw)
        same = llenc.wrap(s) is s
        delegated = s.getsockname() == raw.getsockname() and s.getsockname() is not None
        s.close()
        return same, delegated

    assert _serve(handler, [client]) == [(True, True)]

"""splay.enc and benc.wrap: whole Python values over real loopback sockets."""
from hypothesis import given, settings
from hypothesis import strategies as st

from splay import benc, enc, events, llenc, socket


def _exchange(wrapper, values, raw_sends=()):
    """A server echoes every value it receives (None for an undecodable block, with the error);
    the client sends raw blocks then values and collects the echoes."""
    echoed = []
    server_errors = []

    def main():
        server = socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]

        def serve():
            conn = wrapper.wrap(server.accept())
            for _ in range(len(raw_sends) + len(values)):
                value = conn.receive()
                if value is None and conn.error is not None:     # None itself is a value
                    server_errors.append(conn.error)
                    value = {"error": conn.error}
                conn.send(value)
            conn.close()
        events.thread(serve)
        client = wrapper.wrap(socket.connect("127.0.0.1", port))
        for block in raw_sends:
            llenc.wrap(client.sock.sock).send(block)
        for v in values:
            client.send(v)
        for _ in range(len(raw_sends) + len(values)):
            echoed.append(client.receive())
        client.close()
        server.close()
    events.run(main)
    return echoed, server_errors


VALUES = ["hello", b"\xff\x00", 2 ** 80, -3.25, True, None, [1, [2, [3]]],
          {"ip": "127.0.0.1", "port": 20000, "tags": ["a", "b"], 7: False}]


def test_enc_wrap_round_trips_values():
    echoed, errors = _exchange(enc, VALUES)
    assert echoed == VALUES and errors == []


def test_benc_wrap_round_trips_values():
    echoed, errors = _exchange(benc, VALUES)
    assert echoed == VALUES and errors == []


def test_undecodable_block_is_reported_and_the_connection_stays_usable():
    benc.l_o.out = lambda line: None
    try:
        echoed, errors = _exchange(benc, ["after"], raw_sends=[b"d1:a"])
    finally:
        benc.l_o.out = None
    assert errors and "undecodable block" in errors[0] and "truncated" in errors[0]
    assert echoed[1] == "after"
    assert "undecodable block" in echoed[0]["error"]


def test_unencodable_value_raises_before_sending():
    import pytest

    def main():
        server = socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]
        got = []

        def serve():
            conn = enc.wrap(server.accept())
            got.append(conn.receive())
            conn.close()
        events.thread(serve)
        client = enc.wrap(socket.connect("127.0.0.1", port))
        with pytest.raises(TypeError, match=r"cannot encode set at \[1\]"):
            client.send([1, {2}])
        client.send("still fine")
        events.sleep(0)
        client.close()
        while not got:
            events.sleep(0.01)
        server.close()
        assert got == ["still fine"]
    events.run(main)


def test_enc_module_functions():
    assert enc.decode(enc.encode({"a": (1, 2)})) == {"a": [1, 2]}


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
                    max_leaves=20))
def test_enc_round_trip_property(value):
    assert enc.decode(enc.encode(value)) == value

"""Generated hostile input to running rpc, rpcq and urpc servers (another process, real sockets):
frames with any length line and any body (benc-shaped or not), cut at any point, and datagrams of
any bytes. After each example the server still answers normal calls of every mode.
tests/test_rpc_hostile.py holds the hand-picked cases; this file draws many more."""
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lua_peer as lua
from support_rpc import running_rpc_app
from test_rpc_hostile import SERVER_FUNCTIONS, raw, still_serving

pytestmark = pytest.mark.timeout(120)

EXAMPLES = int(os.environ.get("SPLAY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

benc_values = st.recursive(
    st.integers(-2**70, 2**70).map(lambda i: b"i%de" % i)
    | st.binary(max_size=30).map(lambda b: b"%d:" % len(b) + b),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: b"l" + b"".join(items) + b"e")
    | st.lists(st.tuples(st.sampled_from([b"4:type", b"4:call", b"3:key", b"4:args"]), inner),
               max_size=4).map(lambda kv: b"d" + b"".join(k + v for k, v in kv) + b"e"),
    max_leaves=10)
bodies = st.one_of(benc_values, st.binary(max_size=500))
frames = st.builds(
    lambda body, claimed, cut: (b"%d\n" % (len(body) if claimed is None else claimed) + body)[:cut],
    bodies, st.one_of(st.none(), st.integers(0, 2**40)), st.integers(0, 600))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_rpc_app(tmp_path_factory.mktemp("fuzz-rpc"), SERVER_FUNCTIONS) as a:
        yield a


@FUZZ
@given(data=st.lists(frames, min_size=1, max_size=3).map(b"".join))
def test_rpc_server_survives_generated_frames(app, data):
    raw(app.rpc_port, data)
    still_serving(app)


@FUZZ
@given(data=st.lists(frames, min_size=1, max_size=3).map(b"".join))
def test_rpcq_server_survives_generated_frames(app, data):
    raw(app.rpcq_port, data)
    still_serving(app)


@FUZZ
@given(datagrams=st.lists(st.one_of(benc_values, st.binary(max_size=2000)), min_size=1,
                          max_size=5))
def test_urpc_server_survives_generated_datagrams(app, datagrams):
    for datagram in datagrams:
        lua.udp_exchange(app.urpc_port, datagram, expect_reply=False)
    still_serving(app)


def test_a_half_open_flood_of_connections_leaves_the_servers_serving(app):
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10)
               for port in (app.rpc_port, app.rpcq_port) for _ in range(50)]
    for s in sockets[::2]:
        s.sendall(b"99\nd4:ty")                 # half a frame, then silence
    still_serving(app)
    for s in sockets:
        s.close()
    still_serving(app)

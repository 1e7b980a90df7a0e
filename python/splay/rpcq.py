"""splay.rpcq: remote procedure calls over persistent, pipelined TCP connections (the manual's
splay.rpcq).

Same API as splay.rpc. Each peer gets one connection that stays open: calls to it queue in FIFO
order, at most ``settings["window_size"]`` are in flight, and replies are matched by message
number. A connection unused for ``clean_timeout`` seconds is closed; when more than
``max_connections`` are open, the least recently used idle one is closed first; a connection lost
while messages remain reconnects (every ``reconnect_interval`` seconds) and sends again the
messages that got no reply. Wire format (docs/wire.md): llenc blocks of benc,
``{"type": "call", "n": 1, "call": [...]}`` answered by ``{"reply": [results], "n": 1}``.

>>> from splay import events, rpcq
>>> def concat(a, b):
...     return a + b
>>> def main():
...     rpcq.server(20346, namespace={"concat": concat})
...     print(rpcq.call(("127.0.0.1", 20346), ["concat", "one", "two"]))
...     events.exit()
>>> events.run(main)
onetwo
"""
from collections import OrderedDict
from time import monotonic as _monotonic

from splayc.hub import current_node as _current_node
from splayc.rpc_fast import DEFAULT_MAX_LENGTH, rpcq_serve_connection, track, untrack
from splayc.rpcq_conn import Connection, pooled_transport
from splayc.rpcstats import counted_answer

from . import events
from .rpc_core.module_api import MODULE_API, ModeModule

__all__ = [*MODULE_API, "connections"]

#: This module's RPC flavour.
mode = "rpcq"

#: ``max``: concurrent outgoing calls (None: unlimited); ``default_timeout``: seconds for a whole
#: call; ``window_size``: messages in flight per connection; ``clean_timeout``: seconds before an
#: idle connection is closed; ``reconnect_interval``: seconds between reconnection attempts;
#: ``max_connections``: open connections before the least recently used idle one is closed (None:
#: unlimited); ``max_length``: the largest block accepted; ``server_max_running``: calls of one
#: incoming connection running at once.
settings = {
    "max": None,
    "default_timeout": 60,
    "window_size": 2,
    "clean_timeout": 60,
    "reconnect_interval": 1,
    "max_connections": None,
    "max_length": DEFAULT_MAX_LENGTH,
    "server_max_running": 64,
}

_module = ModeModule(__name__, mode, settings)
l_o = _module.log

# (node, ip, port) -> Connection, least recently used first. The calling node is part of the key:
# with several nodes in one process each has its own connections, closed when it exits.
_pool = OrderedDict()
_last_clean = 0.0


def _node_key():
    node = events.current_node()
    return None if node is None else id(node)


def _clean(now):
    """Close connections idle for longer than clean_timeout, and idle ones the peer closed."""
    limit = now - float(settings["clean_timeout"])
    for conn in [c for c in _pool.values() if c.last_used < limit or c.peer_gone]:
        conn.close_if_idle()


def _make_room():
    """Close least recently used idle connections while the pool is at max_connections."""
    limit = settings["max_connections"]
    if not limit:
        return
    for conn in list(_pool.values()):
        if len(_pool) < limit:
            return
        conn.close_if_idle()


def _forget(key):
    def on_close(conn):
        if _pool.get(key) is conn:
            del _pool[key]
        untrack(conn)
    return on_close


def _connection(ip, port):
    global _last_clean
    now = _monotonic()
    if now - _last_clean > 1.0:
        _last_clean = now
        _clean(now)
    node = _current_node()                # _node_key(), inlined: this runs at every call
    key = (None if node is None else id(node), ip, port)
    conn = _pool.get(key)
    if conn is not None and conn.peer_gone and conn.close_if_idle():
        conn = None                      # the peer closed it while it was idle
    if conn is None:
        _make_room()
        conn = Connection(ip, port, int(settings["window_size"]),
                          float(settings["reconnect_interval"]), settings["max_length"], l_o)
        conn.on_close = _forget(key)
        track(conn)
        _pool[key] = conn
    else:
        _pool.move_to_end(key)
        conn.window = int(settings["window_size"])
    conn.last_used = now
    return conn


#: ``transport(ip, port, request, timeout)``: compiled (splayc.rpcq_conn.pooled_transport); the
#: calls it cannot serve from the pool go through _connection.
_transport = pooled_transport(_pool, settings, _connection)


def _serve_connection(sock, dispatcher):
    rpcq_serve_connection(sock, counted_answer(dispatcher, mode), settings["max_length"],
                          int(settings["server_max_running"]), l_o)


acall, call, ecall, ping, proxy = _module.client_functions(_transport)
server = _module.tcp_server(_serve_connection)
stop_server = _module.tcp_stop_server()


def connections():
    """The open client connections (for inspection and tests), least recently used first.

    An idle connection that its peer closed or reset is dropped here rather than listed."""
    for conn in [c for c in _pool.values() if c.peer_gone]:
        conn.close_if_idle()
    return list(_pool.values())

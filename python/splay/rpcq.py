"""splay.rpcq: remote procedure calls over persistent, pipelined TCP connections (the manual's
splay.rpcq).

Same API as splay.rpc. Each peer gets one connection that stays open: calls to it queue in FIFO
order, at most ``settings["window_size"]`` are in flight, and replies are matched by message
number. A connection unused for ``clean_timeout`` seconds is closed; when more than
``max_connections`` are open, the least recently used idle one is closed first; a connection lost
while messages remain reconnects (every ``reconnect_interval`` seconds) and sends again the
messages that got no reply. Wire format (WIRE.md): llenc blocks of benc,
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
import time
from collections import OrderedDict

from splayc.rpc_fast import DEFAULT_MAX_LENGTH, rpcq_serve_connection, track, untrack
from splayc.rpcq_conn import Connection

from . import events
from . import log as _log
from .rpc_core.client_api import ClientAPI
from .rpc_core.dispatch import Dispatcher
from .rpc_core.namespace import for_server
from .rpc_core.server import Registry, TCPServer

__all__ = ["server", "stop_server", "acall", "call", "ecall", "ping", "proxy", "mode", "settings",
           "l_o", "connections"]

l_o = _log.module_logger("rpcq")

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

_servers = Registry(mode)

# (node, ip, port) -> Connection, least recently used first. The calling node is part of the key:
# with several nodes in one process each has its own connections, closed when it exits.
_pool = OrderedDict()
_last_clean = 0.0


def _node_key():
    node = events.current_node()
    return None if node is None else id(node)


def _clean(now):
    """Close connections idle for longer than clean_timeout."""
    limit = now - float(settings["clean_timeout"])
    for conn in [c for c in _pool.values() if c.last_used < limit]:
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
    now = time.monotonic()
    if now - _last_clean > 1.0:
        _last_clean = now
        _clean(now)
    key = (_node_key(), ip, port)
    conn = _pool.get(key)
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


def _transport(ip, port, request, timeout):
    ok, value = _connection(ip, port).call(request, timeout)
    if not ok:
        return False, value
    return True, value["reply"]


_api = ClientAPI(mode, settings, _transport)
acall = _api.acall
call = _api.call
ecall = _api.ecall
ping = _api.ping
proxy = _api.proxy


def connections():
    """The open client connections (for inspection and tests), least recently used first."""
    return list(_pool.values())


def server(port, max=None, namespace=None):
    """Serve RPCs on ``port`` (a port number or a node, whose ip selects the interface).

    ``max``: connections served at once (None: unlimited). ``namespace``: the dict or object whose
    names are callable (default: the application's namespace). Returns True; raises ``OSError``
    when the port cannot be bound. The server runs until :func:`stop_server` or ``events.exit()``.
    """
    answer = Dispatcher(for_server(namespace), l_o).answer_rpcq

    def serve_connection(sock):
        rpcq_serve_connection(sock, answer, settings["max_length"],
                              int(settings["server_max_running"]), l_o)

    TCPServer(mode, port, serve_connection, max, l_o, _servers)
    return True


def stop_server(port):
    """Stop the server on ``port`` (or node) and close its connections: True, or None if none."""
    return _servers.stop(port)

"""splay.rpc: remote procedure calls over TCP, one connection per call (the manual's splay.rpc).

>>> from splay import events, rpc
>>> def concat(a, b):
...     return a + b
>>> def main():
...     rpc.server(20345, namespace={"concat": concat})
...     print(rpc.call(("127.0.0.1", 20345), ["concat", "one", "two"]))
...     events.exit()
>>> events.run(main)
onetwo

Every call connects, sends one llenc block holding the benc request
``{"type": "call", "call": ["concat", "one", "two"]}``, reads one block holding the result list and
closes: the bytes of Lua SPLAY (WIRE.md), so Python and Lua nodes call each other. A failed call
gets ``{"error": message}`` from a Python server (a Lua caller reads it as no result); a Lua
server closes without a reply (Python callers see "closed").

The API is the same in splay.rpcq and splay.urpc; see docs/rpc.md.
"""
from splayc.rpc_fast import DEFAULT_MAX_LENGTH, rpc_call, rpc_serve_connection

from . import log as _log
from .rpc_core.client_api import ClientAPI
from .rpc_core.dispatch import Dispatcher
from .rpc_core.namespace import for_server
from .rpc_core.server import Registry, TCPServer

__all__ = ["server", "stop_server", "acall", "call", "ecall", "ping", "proxy", "mode", "settings",
           "l_o"]

l_o = _log.module_logger("rpc")

#: This module's RPC flavour.
mode = "rpc"

#: ``max``: concurrent outgoing calls (None: unlimited; waiting for a slot counts in the timeout);
#: ``default_timeout``: seconds for a whole call; ``max_length``: the largest request or reply
#: block (bytes) accepted; ``server_timeout``: seconds a server waits for a request to arrive.
settings = {
    "max": None,
    "default_timeout": 60,
    "max_length": DEFAULT_MAX_LENGTH,
    "server_timeout": 60,
}

_servers = Registry(mode)


def _transport(ip, port, request, timeout):
    return rpc_call(ip, port, request, timeout, settings["max_length"])


_api = ClientAPI(mode, settings, _transport)
acall = _api.acall
call = _api.call
ecall = _api.ecall
ping = _api.ping
proxy = _api.proxy


def server(port, max=None, namespace=None):
    """Serve RPCs on ``port`` (a port number or a node, whose ip selects the interface).

    ``max``: connections served at once (None: unlimited). ``namespace``: the dict or object whose
    names are callable (default: the application's namespace). Returns True; raises ``OSError``
    when the port cannot be bound. The server runs until :func:`stop_server` or ``events.exit()``.
    """
    answer = Dispatcher(for_server(namespace), l_o).answer_rpc

    def serve_connection(sock):
        rpc_serve_connection(sock, answer, float(settings["server_timeout"]),
                             settings["max_length"], l_o)

    TCPServer(mode, port, serve_connection, max, l_o, _servers)
    return True


def stop_server(port):
    """Stop the server on ``port`` (or node) and close its connections: True, or None if none."""
    return _servers.stop(port)

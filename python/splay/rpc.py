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
closes: the bytes of Lua SPLAY (docs/wire.md), so Python and Lua nodes call each other. A failed call
gets ``{"error": message}`` from a Python server (a Lua caller reads it as no result); a Lua
server closes without a reply (Python callers see "closed").

The API is the same in splay.rpcq and splay.urpc; see docs/rpc.md.
"""
from splayc.rpc_fast import DEFAULT_MAX_LENGTH, RpcConnectionServer, rpc_transport
from splayc.rpcstats import counted_answer

from .rpc_core.module_api import MODULE_API, ModeModule

__all__ = list(MODULE_API)

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

_module = ModeModule(__name__, mode, settings)
l_o = _module.log


#: ``transport(ip, port, request, timeout)``: one :func:`rpc_call`, compiled.
_transport = rpc_transport(settings)


#: ``serve_connection(sock, dispatcher)`` of the server: the dispatcher's answer (counted,
#: compiled) to the connection's one request, with the settings of the moment; compiled.
_serve_connection = RpcConnectionServer(settings, l_o, counted_answer)


acall, call, ecall, ping, proxy = _module.client_functions(_transport)
# A connection carries one request: served in the accept thread until it waits (TCPServer).
server = _module.tcp_server(_serve_connection, inline=True)
stop_server = _module.tcp_stop_server()

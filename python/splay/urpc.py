"""splay.urpc: remote procedure calls over UDP, one datagram per message (the manual's splay.urpc).

Same API as splay.rpc. A call is one benc dict ``{"type": "call", "key": K, "call": [...]}``; the
reply is that dict with ``"reply": true`` and ``"call"`` replaced by the result list. The caller
sends at once and again every ``timeout / (retry_number + 1)`` seconds until a reply arrives; the
server caches replies by key for ``cleaning_after`` seconds and answers a repeated key from its
cache, so a call runs at most once. After the reply the caller sends ``{"free": true, "key": K}``
so the server can drop it. A node's calls share one UDP socket (``splayc.urpc_client``): the waiting
callers take turns reading it and hand each reply to the call with its key. The server's loop, reply
cache and replies are compiled too (``splayc.urpc_server``). A datagram carries at most 8192 bytes
each way: a larger call fails locally with "call length (N)", a larger reply comes back as the
error "reply length (N)".

>>> from splay import events, urpc
>>> def concat(a, b):
...     return a + b
>>> def main():
...     urpc.server(20347, namespace={"concat": concat})
...     print(urpc.call(("127.0.0.1", 20347), ["concat", "one", "two"]))
...     events.exit()
>>> events.run(main)
onetwo
"""
import hashlib
import os
import random
import time

from splayc.rpc_fast import track, untrack
from splayc.rpcstats import MeasuredAnswer
from splayc.urpc_client import enlarge_receive_buffer, urpc_transport
from splayc.urpc_server import MAX_DATAGRAM, Server

from . import events, socket
from .node import address
from .rpc_core.dispatch import Dispatcher
from .rpc_core.module_api import MODULE_API, ModeModule
from .rpc_core.namespace import for_server

__all__ = [*MODULE_API, "MAX_DATAGRAM"]

#: This module's RPC flavour.
mode = "urpc"

#: ``max``: concurrent outgoing calls (None: unlimited); ``default_timeout``: seconds for a whole
#: call; ``retry_number``: extra sends of an unanswered call, spread over the timeout;
#: ``cleaning_after``: seconds a server keeps a reply for a repeated request.
settings = {
    "max": None,
    "default_timeout": 40,
    "retry_number": 3,
    "cleaning_after": 120,
}

_module = ModeModule(__name__, mode, settings)
l_o = _module.log
_servers = _module.servers

# Keys are unique per caller: 40 hex digits for this process, then a counter (as Lua's SHA1+count).
_key_prefix = hashlib.sha1(f"{os.getpid()} {time.time()} {random.random()}".encode()).hexdigest()


# The calling side's shared socket, one per node (closed when the node exits): node id -> Client.
_clients = {}

# Keys, encoding, the shared socket, retries and the free message: compiled (splayc.urpc_client).
_transport = urpc_transport(_clients, settings, _key_prefix, l_o)


acall, call, ecall, ping, proxy = _module.client_functions(_transport)


class UDPServer:
    """A urpc server: one UDP socket and one receiving thread, which runs each call itself and
    hands the receiving over to a new thread when a call suspends (the loop, the reply cache and
    the replies are compiled: splayc.urpc_server)."""

    def __init__(self, port_or_node, dispatcher):
        ip, port = address(port_or_node, default_ip="0.0.0.0")
        s = socket.udp()
        if not s.setsockname(ip, port):
            error = s.error
            s.close()
            raise OSError(f"urpc.server: cannot listen on {ip}:{port}: {error}")
        enlarge_receive_buffer(s)            # bursts of calls must not overflow it
        self.sock = s
        self.ip = ip
        self.port = s.getsockname()[1]
        self.dispatcher = dispatcher
        answer = MeasuredAnswer("urpc", dispatcher.answer_urpc, dispatcher)   # counted, compiled
        self.core = Server(s, self.port, answer, settings, l_o)
        self.core.start()
        track(self)                          # a node's exit closes it before its socket
        _servers.add(self)

    def __repr__(self):
        return f"<urpc server {self.ip}:{self.port}{' closed' if self.closed else ''}>"

    @property
    def closed(self):
        """True once the server stopped."""
        return self.core.closed

    @property
    def thread(self):
        """The thread receiving datagrams now (another one after a call suspended)."""
        return self.core.reader

    @property
    def cache(self):
        """The reply cache: request key -> cached reply (oldest first)."""
        return self.core.cache

    def close(self):
        """Stop serving (idempotent)."""
        if self.core.closed:
            return
        self.core.flush()                     # the replies of this round still leave
        self.core.closed = True
        self.sock.close()
        reader = self.core.reader
        if not reader.dead and reader is not events.current():
            events.kill(reader)
        self.core.cache.clear()
        untrack(self)
        _servers.remove(self)


def server(port, max=None, namespace=None):
    """Serve RPCs on UDP ``port`` (a port number or a node, whose ip selects the interface).

    ``max`` is accepted for API compatibility and ignored (UDP has no connections, as in the
    original). ``namespace``: the dict or object whose names are callable (default: the
    application's namespace). Returns True; raises ``OSError`` when the port cannot be bound.
    """
    UDPServer(port, Dispatcher(for_server(namespace), l_o))
    return True


def stop_server(port):
    """Stop the server on ``port`` (or node): True, or None if none runs there."""
    return _servers.stop(port)

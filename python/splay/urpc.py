"""splay.urpc: remote procedure calls over UDP, one datagram per message (the manual's splay.urpc).

Same API as splay.rpc. A call is one benc dict ``{"type": "call", "key": K, "call": [...]}``; the
reply is that dict with ``"reply": true`` and ``"call"`` replaced by the result list. The caller
sends at once and again every ``timeout / (retry_number + 1)`` seconds until a reply arrives; the
server caches replies by key for ``cleaning_after`` seconds and answers a repeated key from its
cache, so a call runs at most once. After the reply the caller sends ``{"free": true, "key": K}``
so the server can drop it. A node's calls share one UDP socket (``splayc.urpc_client``): the waiting
callers take turns reading it and hand each reply to the call with its key. A datagram carries at most 8192 bytes each way: a larger call fails
locally with "call length (N)", a larger reply comes back as the error "reply length (N)".

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
import itertools
import os
import random
import time
from collections import OrderedDict

from splayc.errors import DecodeError
from splayc.rpc_fast import spawn, track, untrack
from splayc.rpcstats import MeasuredAnswer
from splayc.urpc_client import Client, enlarge_receive_buffer, free_message

from . import benc, events, socket
from .node import address
from .rpc_core.dispatch import Dispatcher
from .rpc_core.module_api import MODULE_API, ModeModule
from .rpc_core.namespace import for_server

__all__ = [*MODULE_API, "MAX_DATAGRAM"]

#: This module's RPC flavour.
mode = "urpc"

#: The largest datagram (bytes) urpc sends or accepts, as the original.
MAX_DATAGRAM = 8192

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
_key_counter = itertools.count(1)


# The calling side's shared socket, one per node (closed when the node exits).
_clients = {}


def _client():
    node = events.current_node()
    key = None if node is None else id(node)
    c = _clients.get(key)
    if c is None or c.closed:
        c = _clients[key] = Client(l_o)
        track(c)
    return c


def _transport(ip, port, request, timeout):
    key = f"{_key_prefix}{next(_key_counter)}"
    request["key"] = key
    try:
        data = benc.encode(request)
    except (TypeError, ValueError) as exc:
        return False, f"cannot encode the call: {exc}"
    if len(data) > MAX_DATAGRAM:
        return False, f"call length ({len(data)})"
    client = _client()
    ok, reply = client.call(ip, port, key, data, timeout, int(settings["retry_number"]))
    if not ok:
        return False, reply
    is_call = request.get("type") == "call"
    if is_call:
        client.sock.sendto(free_message(key), ip, port)
    if "error" in reply:
        return False, str(reply["error"])
    if not is_call:
        return True, True
    return True, reply.get("call")


acall, call, ecall, ping, proxy = _module.client_functions(_transport)


class UDPServer:
    """A urpc server: one UDP socket, one receiving thread, one thread per call in progress."""

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
        self.answer = MeasuredAnswer("urpc", dispatcher.answer_urpc, dispatcher)   # counted (splayc.rpcstats)
        self.cache = OrderedDict()       # key -> [reply datagram or None while running, time]
        self.closed = False
        self.thread = spawn(self._receive_loop)
        track(self)
        _servers.add(self)

    def __repr__(self):
        return f"<urpc server {self.ip}:{self.port}{' closed' if self.closed else ''}>"

    def _clean(self, now):
        limit = now - float(settings["cleaning_after"])
        cache = self.cache
        while cache:
            key, entry = next(iter(cache.items()))
            if entry[1] >= limit:
                break
            del cache[key]

    def _receive_loop(self):
        s = self.sock
        while not self.closed:
            got = s.receivefrom(65536)
            if got is None:
                if self.closed or s.error == "closed":
                    return
                l_o.debug(f"urpc server on port {self.port}: receive failed: {s.error}")
                continue
            data, ip, port = got
            try:
                self._handle(data, ip, port)
            except Exception as exc:            # a hostile datagram must never end the server
                l_o.notice(f"urpc server on port {self.port}: ignored a datagram from "
                           f"{ip}:{port}: {type(exc).__name__}: {exc}")

    def _handle(self, data, ip, port):
        if len(data) > MAX_DATAGRAM:
            l_o.debug(f"ignored a datagram of {len(data)} bytes from {ip}:{port} "
                      f"(more than {MAX_DATAGRAM})")
            return
        try:
            request = benc.decode(data)
        except DecodeError as exc:
            l_o.debug(f"ignored an undecodable datagram from {ip}:{port}: {exc}")
            return
        if not isinstance(request, dict):
            l_o.debug(f"ignored a datagram that is not a dict from {ip}:{port}")
            return
        key = request.get("key")
        if not isinstance(key, (str, bytes)):
            key = None
        if request.get("free"):
            if key is not None:
                self.cache.pop(key, None)
            return
        if request.get("type") == "ping":
            self.sock.sendto(benc.encode(self.answer(request)), ip, port)
            return
        now = time.monotonic()
        self._clean(now)
        if key is not None:
            entry = self.cache.get(key)
            if entry is not None:
                if entry[0] is not None:           # a retry: answer from the cache
                    self.sock.sendto(entry[0], ip, port)
                return                             # still running: it answers when done
            entry = self.cache[key] = [None, now]
        else:
            entry = None
        spawn(self._run, request, ip, port, entry)

    def _run(self, request, ip, port, entry):
        reply = self.answer(request)
        try:
            data = benc.encode(reply)
        except (TypeError, ValueError) as exc:
            reply.pop("call", None)
            reply["error"] = f"cannot encode the result: {exc}"
            data = benc.encode(reply)
        if len(data) > MAX_DATAGRAM:
            reply.pop("call", None)
            reply["error"] = f"reply length ({len(data)})"
            data = benc.encode(reply)
        if entry is not None:
            entry[0] = data
        if not self.closed:
            self.sock.sendto(data, ip, port)

    def close(self):
        """Stop serving (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.sock.close()
        if not self.thread.dead and self.thread is not events.current():
            events.kill(self.thread)
        self.cache.clear()
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

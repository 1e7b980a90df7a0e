"""splay.net: TCP servers and clients with handler callbacks, and a UDP helper (the manual's
splay.net).

* :func:`server` — ``handler`` is a function of the accepted socket (the socket is closed when it
  returns), or callbacks: a dict ``{"receive", "send", "initialize", "finalize"}`` (all optional)
  or a list in that order. ``initialize(s, connect)`` runs first; returning ``False`` closes the
  connection (and ``finalize`` does not run). Then ``receive`` and ``send`` run in two threads; when one ends the other is killed.
  ``finalize(s, connect)`` runs last, before the socket is closed. ``connect`` is True on the side
  that opened the connection (:func:`client`). A callback may take only the socket.
* :func:`client` — connect to a node (or ``client(ip, port, handlers)``) and run the same callbacks with ``connect=True``.
* :func:`udp_helper` — a UDP socket bound to a port whose datagrams go to ``handler(data, ip,
  port)`` (a thread per datagram), or are fired as the event ``"udp:<port>"``.

Servers run until :func:`stop_server` or ``events.exit()``. See docs/net.md.
"""
import inspect

from splayc.rpc_fast import spawn, track, untrack

from . import events, socket
from . import log as _log
from .node import address, node_args
from .rpc_core.server import Registry, TCPServer

__all__ = ["server", "client", "stop_server", "udp_helper", "UDPHelper", "l_o"]

l_o = _log.module_logger("net")

_servers = Registry("net")

_CALLBACK_NAMES = ("receive", "send", "initialize", "finalize")


def _takes_connect(f):
    """True when ``f`` accepts a second positional argument (the ``connect`` flag)."""
    try:
        inspect.signature(f).bind(None, None)
        return True
    except TypeError:
        return False
    except ValueError:        # no signature (a C function): give it what the manual gives
        return True


class _Callback:
    __slots__ = ("f", "two")

    def __init__(self, f):
        if not callable(f):
            raise TypeError(f"a net callback must be a function, got {type(f).__name__}")
        self.f = f
        self.two = _takes_connect(f)

    def __call__(self, s, connect):
        return self.f(s, connect) if self.two else self.f(s)


def _callbacks(handlers):
    """``{"receive": cb, ...}`` from a dict, a list/tuple (receive, send, initialize, finalize)."""
    if isinstance(handlers, dict):
        unknown = set(handlers) - set(_CALLBACK_NAMES)
        if unknown:
            raise ValueError(f"unknown net callback(s) {sorted(map(str, unknown))}: use "
                             f"receive, send, initialize, finalize")
        items = handlers.items()
    elif isinstance(handlers, (list, tuple)):
        if len(handlers) > 4:
            raise ValueError("a callback list has at most 4 entries: receive, send, initialize, "
                             "finalize")
        items = zip(_CALLBACK_NAMES, handlers)
    else:
        raise TypeError(f"net handlers must be a function, a dict or a list of callbacks, got "
                        f"{type(handlers).__name__}")
    return {name: _Callback(f) for name, f in items if f is not None}


def _run_callbacks(s, cbs, connect):
    """initialize, then receive and send (the first to end kills the other), then finalize.

    ``initialize`` returning False closes the socket at once: finalize does not run (as in the
    original, finalize ends a connection that was started)."""
    threads = []
    started = False
    try:
        init = cbs.get("initialize")
        if init is not None and init(s, connect) is False:
            return
        started = True
        pair = [cbs[name] for name in ("receive", "send") if name in cbs]

        def run(cb):
            try:
                cb(s, connect)
            finally:
                for t in threads:
                    if t is not events.current() and not t.dead:
                        events.kill(t)

        threads.extend(spawn(run, cb) for cb in pair)
        for t in threads:
            t.join()
    finally:
        for t in threads:
            if not t.dead:
                events.kill(t)
        final = cbs.get("finalize")
        try:
            if final is not None and started:
                final(s, connect)
        finally:
            s.close()


def _connection_handler(handler):
    if callable(handler) and not isinstance(handler, (dict, list, tuple)):
        def serve(s):
            try:
                handler(s)
            finally:
                s.close()
        return serve
    cbs = _callbacks(handler)
    return lambda s: _run_callbacks(s, cbs, False)


def server(port, handler, max=None):
    """Accept TCP connections on ``port`` (a number or a node, whose ip selects the interface) and
    serve each with ``handler`` (see the module docstring). ``max``: connections at once (None:
    unlimited). Returns True; raises ``OSError`` when the port cannot be bound."""
    TCPServer("net", port, _connection_handler(handler), max, l_o, _servers)
    return True


def stop_server(port):
    """Stop the TCP server on ``port`` (or node) and close its connections: True, or None."""
    return _servers.stop(port)


def client(node, *args):
    """``client(node, handlers)`` or ``client(ip, port, handlers)``: connect to the node and run
    the callbacks (``connect`` is True) in a new thread.

    Returns True once connected, or None when the connection failed (logged with the reason).
    """
    node, args = node_args(node, args, "client", 1)
    if not args:
        raise TypeError("net.client() needs the handlers: client(node, handlers)")
    cbs = _callbacks(args[0])
    s = socket.connect(node)
    if s is None:
        l_o.notice(f"net.client: cannot connect to {node!r}: {socket.last_error}")
        return None
    spawn(_run_callbacks, s, cbs, True)
    return True


class UDPHelper:
    """The object :func:`udp_helper` returns: ``s`` is the UDP socket (usable to send too)."""

    def __init__(self, port_or_node, handler=None):
        ip, port = address(port_or_node, default_ip="0.0.0.0")
        if handler is not None and not callable(handler):
            raise TypeError(f"udp_helper handler must be a function or None, got "
                            f"{type(handler).__name__}")
        s = socket.udp()
        if not s.setsockname(ip, port):
            error = s.error
            s.close()
            raise OSError(f"net.udp_helper: cannot bind {ip}:{port}: {error}")
        self.s = s
        self.port = s.getsockname()[1]
        self.handler = handler
        self.event = f"udp:{self.port}"
        self.closed = False
        self.thread = spawn(self._receive_loop)
        track(self)

    def __repr__(self):
        return f"<net.udp_helper port {self.port}{' closed' if self.closed else ''}>"

    def _receive_loop(self):
        while not self.closed:
            got = self.s.receivefrom(65536)
            if got is None:
                if self.closed or self.s.error == "closed":
                    return
                l_o.debug(f"udp_helper on port {self.port}: receive failed: {self.s.error}")
                continue
            if self.handler is not None:
                spawn(self.handler, *got)
            else:
                events.fire(self.event, *got)

    def close(self):
        """Stop receiving and close the socket (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.s.close()
        if not self.thread.dead and self.thread is not events.current():
            events.kill(self.thread)
        untrack(self)


def udp_helper(port, handler=None):
    """Bind UDP ``port`` (a number or a node) and hand every datagram to ``handler(data, ip,
    port)`` in a new thread, or fire ``"udp:<port>"`` with ``(data, ip, port)`` when ``handler`` is
    None. Returns the :class:`UDPHelper` (its ``s`` sends too); raises ``OSError`` when the port
    cannot be bound."""
    return UDPHelper(port, handler)

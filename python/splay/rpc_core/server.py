"""Listening TCP servers for splay.rpc, splay.rpcq and splay.net: accept loop, limits, teardown.

A :class:`TCPServer` accepts on demand: while no connection waits it holds no thread (a server
of an idle node costs its socket and this object only -- thousands of nodes share a process in
``--in-process`` runs); when connections arrive, the listening socket's ``on_connection`` callback
starts an accept thread that takes every waiting connection and ends. Each connection is served by
``serve_connection(sock, *serve_args)`` in its own thread; with ``inline`` (splay.rpc's one-request
connections), the listening socket has TCP_DEFER_ACCEPT (a connection is queued once its request
arrived, which ``accept()`` reads at once) and the accept thread serves each connection itself, as
the rpcq server runs a call in its reader thread: one wake-up of the server per call and no thread
start. A connection served so that waits (its call blocks, or its client is slow to send) hands the
accepting over first: the waiting thread ends with its connection, and queued or later connections
get a new accept thread. With ``max``, at most that many connections are served at once, by one
accept thread that lives as long as the server (it waits for one to end). The server registers
with its node (``hub.track``), so ``events.exit()`` or the node's end closes it;
:meth:`TCPServer.close` (what ``stop_server`` calls) closes the listening socket and every
connection it accepted.
"""
from splayc import hub
from splayc.rpc_fast import run_here, spawn, track, untrack

from splay import events, socket
from splay.node import address

__all__ = ["TCPServer", "Registry", "BACKLOG"]

#: Pending connections the kernel keeps per listening socket (per-call rpc opens many at once).
BACKLOG = 1024

#: With ``inline``: a connection that sends nothing is accepted after about this many seconds
#: anyway (then the server's own request timeout applies).
DEFER_ACCEPT_SECONDS = 1


class Registry:
    """The running servers of one module, by port."""

    def __init__(self, mode):
        self.mode = mode
        self.by_port = {}

    def add(self, server):
        """Record a server that started listening."""
        self.by_port[server.port] = server

    def remove(self, server):
        """Forget a server that stopped (a newer one on the same port is kept)."""
        if self.by_port.get(server.port) is server:
            del self.by_port[server.port]

    def stop(self, port_or_node):
        """Stop the server on that port (or node): True, or None when none runs there."""
        port = address(port_or_node)[1]
        srv = self.by_port.get(port)
        if srv is None:
            return None
        srv.close()
        return True


class TCPServer:
    """A listening socket plus its accept thread (see the module docstring)."""

    def __init__(self, mode, port_or_node, serve_connection, max=None, log=None, registry=None,
                 inline=False, serve_args=()):
        ip, port = address(port_or_node, default_ip="0.0.0.0")
        if max is not None and (isinstance(max, bool) or not isinstance(max, int) or max < 1):
            raise ValueError(f"{mode}.server: max must be a positive number of connections or "
                             f"None, got {max!r}")
        sock = socket.bind(ip, port, BACKLOG)
        if sock is None:
            raise OSError(f"{mode}.server: cannot listen on {ip}:{port}: {socket.last_error}")
        self.mode = mode
        self.sock = sock
        self.ip = ip
        self.port = sock.getsockname()[1]
        self.serve_connection = serve_connection      # serve_connection(sock, *serve_args)
        self.serve_args = tuple(serve_args)
        self.log = log
        self.registry = registry
        self.connections = set()
        self.gate = events.semaphore(max, secure=False) if max else None
        self.closed = False
        self.node = hub.current_node()
        # Inline serving pays only when a connection's request is there at accept time.
        self.inline = bool(inline and self.gate is None and hasattr(sock, "defer_accept")
                           and sock.defer_accept(DEFER_ACCEPT_SECONDS))
        if self.gate is None and hasattr(sock, "on_connection"):
            self.accept_thread = None            # started by _on_connection, ends when idle
            sock.settimeout(0)
            sock.on_connection(self._on_connection)
        else:
            self.accept_thread = spawn(self._accept_loop)
        track(self)
        if registry is not None:
            registry.add(self)

    def __repr__(self):
        return f"<{self.mode} server {self.ip}:{self.port}{' closed' if self.closed else ''}>"

    def _accept_loop(self):
        while not self.closed:
            if self.gate is not None:
                self.gate.lock()
            c = self.sock.accept()
            if c is None:
                if self.gate is not None:
                    self.gate.unlock()
                if self.closed or self.sock.is_closed():
                    return
                # e.g. "too many open files": let connections end before accepting again
                if self.log is not None:
                    self.log.notice(f"{self.mode} server on port {self.port}: accept failed: "
                                    f"{self.sock.error}")
                events.sleep(0.05)
                continue
            self.connections.add(c)
            spawn(self._serve, c)

    def _on_connection(self):
        # Called by the scheduler (not in a thread) when a connection waits and no thread accepts.
        if self.accept_thread is None and not self.closed:
            self.accept_thread = hub.spawn_in_node(self.node, self._accept_waiting)

    def _accept_waiting(self):
        """Accept every connection waiting now (the socket's timeout is 0), then end."""
        me = events.current()
        try:
            while not self.closed:
                c = self.sock.accept()
                if c is None:
                    if self.closed or self.sock.is_closed() or self.sock.error == "timeout":
                        return                   # nothing waits any more
                    if self.log is not None:
                        self.log.notice(f"{self.mode} server on port {self.port}: accept failed: "
                                        f"{self.sock.error}")
                    events.sleep(0.05)           # e.g. "too many open files": let some end first
                    continue
                self.connections.add(c)
                if not self.inline:
                    spawn(self._serve, c)
                    continue
                try:
                    run_here(self._serve, c, self._hand_over)
                except Exception as exc:         # a broken connection must not stop the server
                    if self.log is not None:
                        self.log.error(f"{self.mode} server on port {self.port}: serving a "
                                       f"connection failed: {type(exc).__name__}: {exc}")
                if self.accept_thread is not me:
                    return                       # it waited: another thread accepts now
        finally:
            if self.accept_thread is me:         # (no switch since accept() said "timeout")
                self._hand_over()                # killed instead: the queue goes on

    def _hand_over(self):
        # This thread stops accepting: a connection it serves inline suspended (the hub calls this
        # then) or it ends. Connections already queued get a new accept thread; later ones start
        # one through _on_connection.
        self.accept_thread = None
        if self.sock.accept_ready():
            self._on_connection()

    def _serve(self, c):
        try:
            self.serve_connection(c, *self.serve_args)
        finally:
            c.close()
            self.connections.discard(c)
            if self.gate is not None:
                self.gate.unlock()

    def close(self):
        """Stop listening and close every connection this server accepted (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.sock.close()
        for c in list(self.connections):
            c.close()
        self.connections.clear()
        if self.accept_thread is not None and not self.accept_thread.dead \
                and self.accept_thread is not events.current():
            events.kill(self.accept_thread)
        untrack(self)
        if self.registry is not None:
            self.registry.remove(self)

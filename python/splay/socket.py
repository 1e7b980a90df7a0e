"""splay.socket: cooperative TCP and UDP sockets with LuaSocket's API (the manual's socket section).

Sockets are libuv handles driven by the hub of the compiled core (``splayc.tcp``,
``splayc.udp``). An operation that has to wait (connect, accept, receive, a send the kernel
cannot take at once, a host-name lookup) yields to the other SPLAY threads, so it must run
inside a thread (under ``events.run()``); outside it raises :class:`splay.NotInThread`.

LuaSocket's ``nil, "message"`` becomes ``None``, with the message kept on the object as
``sock.error`` — or, for the module functions :func:`connect` and :func:`bind` that have no
object to return, on :data:`last_error` (read it right after the call: no other thread runs in
between). Every call that takes an address accepts a node in any form: a dict
``{"ip": ..., "port": ...}``, a :class:`splay.Node`, a tuple ``(ip, port)``, or ``ip, port``.

>>> from splay import events, socket
>>> def main():
...     server = socket.bind("127.0.0.1", 0)
...     port = server.getsockname()[1]
...     def echo():
...         c = server.accept()
...         c.send(c.receive() + b"\\n")
...         c.close()
...     events.thread(echo)
...     s = socket.connect("127.0.0.1", port)
...     s.send("hello\\n")
...     print(s.receive())
...     s.close(); server.close()
>>> events.run(main)
b'hello'

Restricted sockets (``splay.restricted_socket.init``, done by the node runner from the job's
settings): :func:`infos`, :func:`limits` and :func:`stats` report the node's limits and usage; a
refused operation returns None with the error ``"restricted"``.
"""
import time as _time

from splayc import addr as _addr
from splayc import accounting as _accounting
from splayc.tcp import TCP, new_tcp as _new_tcp, select as _select
from splayc.udp import UDP, new_udp as _new_udp

from . import log as _log

__all__ = ["tcp", "udp", "bind", "connect", "select", "gettime", "sleep", "dns", "last_error",
           "infos", "limits", "stats", "TCP", "UDP"]

#: The error message of the last failed :func:`connect` or :func:`bind` (None after a success).
last_error = None

#: This module's logger (level warning); failed connects are written at debug level.
l_o = _log.module_logger("socket")


def tcp():
    """A new TCP socket (LuaSocket's "master" object): ``bind`` + ``listen`` it, or ``connect`` it.

    None with :data:`last_error` ``"restricted"`` when restricted sockets allow no more sockets.
    """
    return _new_socket(_new_tcp)


def _new_socket(kind):
    """A new socket made by ``kind()``, or None (with :data:`last_error`) when restricted sockets refuse it."""
    global last_error
    s = kind()
    if s.error == "restricted":
        last_error = s.error
        return None
    return s


def udp():
    """A new UDP socket: ``sendto``/``receivefrom``, or ``setpeername`` then ``send``/``receive``.

    None with :data:`last_error` ``"restricted"`` when restricted sockets allow no more sockets.
    """
    return _new_socket(_new_udp)


def bind(address, port=None, backlog=32):
    """A TCP server socket listening on a node or ``ip, port`` (``"*"``: every interface).

    Returns the listening socket, or None with the reason in :data:`last_error`
    (e.g. ``"address already in use"``). Port 0 picks a free port: see ``getsockname()``.
    """
    global last_error
    s = _new_tcp()
    if s.bind(address, port) and s.listen(backlog):
        last_error = None
        return s
    last_error = s.error
    s.close()
    return None


def connect(address, port=None):
    """A TCP socket connected to a node or ``ip, port``; waits for the connection.

    Returns the socket, or None with the reason in :data:`last_error`
    (``"connection refused"``, ``"timeout"``, ``"host not found"`` ...).
    """
    global last_error
    s = _new_tcp()
    if s.connect(address, port):
        last_error = None
        return s
    last_error = s.error
    s.close()
    if l_o.level <= _log.DEBUG:
        l_o.debug(f"connect {address!r}{'' if port is None else ', ' + repr(port)}: {last_error}")
    return None


def infos():
    """A human-readable line: the restricted-socket limits of the current node and its usage
    (says so when the node's sockets are not restricted)."""
    p = _accounting.policy_of()
    if p is None:
        return "restricted sockets: off (no limits, no accounting; see splay.restricted_socket.init)"
    return p.infos()


def limits():
    """``(max_send, max_receive, max_sockets, start_port, end_port, local_ip)`` of the current
    node (None for each absent limit), or None when its sockets are not restricted."""
    p = _accounting.policy_of()
    return None if p is None else p.limits()


def stats():
    """``(total_sent, total_received, total_tcp_sockets, total_udp_sockets)`` of the current node:
    bytes sent and received so far, TCP and UDP sockets open now; None when not restricted."""
    p = _accounting.policy_of()
    return None if p is None else p.stats()


def select(recvt, sendt=None, timeout=None):
    """Wait until a socket of ``recvt`` is readable (data, a connection to accept, or closed) or
    one of ``sendt`` is writable.

    Returns ``(readable, writable, None)``, or ``([], [], "timeout")`` when ``timeout`` seconds
    pass first (None or negative: no timeout). Like LuaSocket's three return values.
    """
    return _select(recvt, sendt, timeout)


def gettime():
    """The current time in seconds since the epoch, as a float (LuaSocket's ``gettime``); the
    node's clock, as ``misc.time()``."""
    from splay.faults.clock import now
    return now()


def sleep(seconds):
    """Suspend the calling thread for ``seconds`` (cooperative: other threads run meanwhile)."""
    from splay import events
    return events.sleep(seconds)


class _DNS:
    """``socket.dns``: name resolution; cooperative (the thread yields) inside a SPLAY thread."""

    @staticmethod
    def toip(host):
        """The IP address of ``host`` (an IP is returned unchanged), or None if it is unknown."""
        return _addr.toip(host)

    @staticmethod
    def tohostname(address):
        """The host name of an IP address (or of a host name's address), or None."""
        return _addr.tohostname(address)

    @staticmethod
    def gethostname():
        """The name of this machine."""
        return _addr.gethostname()


dns = _DNS()

"""splay.out: output functions for log objects (standard output, a file, a TCP sink).

Each function here returns a function of one string (a finished log line) that a log object uses
as its ``out``::

    from splay import log, out
    l_o = log.new(2, "[mylog]")
    l_o.out = out.file("my_log.txt")               # append lines to a file
    l_o.out = out.network("127.0.0.1", 20000)      # one TCP line per message (nc -l 20000)
"""
import builtins as _builtins
import select as _select
import socket as _stdsocket
import sys as _sys
import time as _time
from collections import deque as _deque

from .node import address as _address

__all__ = ["print", "file", "network", "NetworkOutput"]


def print():  # noqa: A001 - the manual's name
    """A function that writes its argument and a newline to standard output, then flushes."""
    def output(line):
        stream = _sys.stdout
        stream.write(f"{line}\n")
        stream.flush()
    return output


def file(name):
    """A function that appends its argument and a newline to the file ``name``.

    The file is opened here (a path that cannot be opened for appending raises ``OSError`` now,
    not at the first line) and kept open; each line is flushed at once so that a crash loses
    nothing already logged.
    """
    try:
        handle = _builtins.open(name, "a", encoding="utf-8")
    except OSError as exc:
        raise OSError(exc.errno, f"out.file: cannot open {name!r} for appending: "
                      f"{exc.strerror or exc}; give a path in a writable directory") from exc

    def output(line):
        nonlocal handle
        if handle is None or handle.closed:
            handle = _builtins.open(name, "a", encoding="utf-8")
        handle.write(f"{line}\n")
        handle.flush()
    output.close = lambda: handle is not None and handle.close()
    return output


class NetworkOutput:
    """Sends each line, newline-terminated, over a TCP connection to a log sink.

    The connection is opened at the first line and re-opened after it breaks. Lines that cannot
    be sent are kept (up to ``max_pending``, the oldest dropped first and counted in ``dropped``)
    and go out once a connection succeeds. After a failed attempt no new attempt is made for
    ``retry_interval`` seconds, so a dead sink does not slow the logging caller down.

    Inside a SPLAY thread, when the cooperative socket layer (``splay.socket``) is available, it is
    used, so only the logging thread waits; elsewhere a plain socket with a short timeout is used.
    """

    def __init__(self, ip, port, timeout=1.0, retry_interval=2.0, max_pending=1000):
        self.ip, self.port = ip, port
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.pending = _deque()
        self.max_pending = max_pending
        self.dropped = 0
        self.error = None
        self._plain = None          # a connected standard-library socket
        self._coop = None           # a connected splay.socket TCP object
        self._next_attempt = 0.0

    def __call__(self, line):
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
        self.pending.append(f"{line}\n".encode("utf-8", "replace"))
        self.flush()

    def flush(self):
        """Try to send every pending line now; True when none is left."""
        attempts = 0
        while self.pending:
            if not self._connected() and not self._connect():
                return False
            data = b"".join(self.pending)
            if self._send(data):
                self.pending.clear()
                return True
            # A broken connection is replaced at once, once; a failed connect waits.
            self.close()
            attempts += 1
            if attempts > 1:
                self._next_attempt = _time.monotonic() + self.retry_interval
                return False
        return True

    def _connected(self):
        return self._plain is not None or self._coop is not None

    def _connect(self):
        if _time.monotonic() < self._next_attempt:
            return False
        coop = _cooperative_socket_module()
        try:
            if coop is not None:
                s = coop.tcp()
                s.settimeout(self.timeout)
                if s.connect(self.ip, self.port) is None:
                    self.error = getattr(s, "error", None) or "connect failed"
                    s.close()
                    raise OSError(self.error)
                self._coop = s
            else:
                self._plain = _stdsocket.create_connection((self.ip, self.port), timeout=self.timeout)
            self.error = None
            return True
        except OSError as exc:
            self.error = str(exc)
            self._next_attempt = _time.monotonic() + self.retry_interval
            return False

    def _send(self, data):
        try:
            if self._coop is not None:
                if self._coop_peer_closed():
                    self.error = "connection closed by the log sink"
                    return False
                sent = 0
                while sent < len(data):
                    n = self._coop.send(data[sent:])
                    if not n:
                        self.error = getattr(self._coop, "error", None) or "send failed"
                        return False
                    sent += n
                return True
            if _peer_closed(self._plain):
                self.error = "connection closed by the log sink"
                return False
            self._plain.sendall(data)
            return True
        except OSError as exc:
            self.error = str(exc)
            return False

    def _coop_peer_closed(self):
        # As _peer_closed, for a splay.socket: readable with nothing to read means closed.
        coop = _cooperative_socket_module()
        if coop is None:
            return False
        readable, _, _ = coop.select([self._coop], [], 0)
        if not readable:
            return False
        return self._coop.receive(1) is None      # ready: returns at once (data, or None: closed)

    def close(self):
        """Close the connection (the next line opens a new one)."""
        for s in (self._plain, self._coop):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._plain = self._coop = None


def _peer_closed(sock):
    # A sink that closed its end would swallow the next send silently; look before sending.
    readable, _, _ = _select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, _stdsocket.MSG_PEEK) == b""
    except OSError:
        return True


def _cooperative_socket_module():
    # The cooperative socket layer, when present and when the caller is a SPLAY thread.
    try:
        from splayc import hub
        if hub.current() is None:
            return None
        from splay import socket as coop
    except ImportError:
        return None
    return coop


def network(ip, port=None):
    """A function that sends each line over TCP to ``ip:port`` (or a node), reconnecting as needed.

    Returns a :class:`NetworkOutput` (callable); its ``flush()``, ``close()``, ``pending`` and
    ``dropped`` help tests and shutdown.
    """
    host, p = _address(ip, port)
    if host == "localhost":
        host = "127.0.0.1"
    return NetworkOutput(host, p)


def __getattr__(name):
    """``out.l_o``, this module's logger, made on first use: splay.log imports this module to
    build its default output, so the logger cannot be made while this module loads."""
    if name == "l_o":
        from . import log
        globals()["l_o"] = log.module_logger("out")
        return globals()["l_o"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

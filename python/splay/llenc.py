"""splay.llenc: whole blocks over a stream socket (the manual's ``splay.llenc``).

A block travels as ``<decimal length>\\n<payload>`` (docs/wire.md). ``wrap(sock)`` returns a socket whose
``send`` and ``receive`` exchange whole blocks; every other attribute is the wrapped socket's::

    s = llenc.wrap(sock)
    s.send(b"hello")                 # or a list of blocks, sent together
    s.receive(max_length=1 << 20)    # b"hello", or None (reason in s.error)

``sock`` is any object with LuaSocket-style methods, normally a ``splay.socket`` TCP object:
``send(data)`` returns the number of bytes sent or ``None``; ``receive(b"*l")`` a line without its
newline and ``receive(n)`` exactly ``n`` bytes, or ``None``; the reason of a failure is in
``sock.error``. A block longer than ``max_length`` or a length line that is not a number is a
protocol error: the connection is closed, the error logged, and ``None`` returned.

:class:`BlockParser` (compiled) is the incremental parser for code that reads raw bytes itself.
"""
from splayc.errors import DecodeError
from splayc.llenc import BlockParser, frame, frame_many, parse_length

from . import log as _log

__all__ = ["wrap", "LLencSocket", "BlockParser", "frame", "frame_many", "parse_length"]

l_o = _log.module_logger("llenc")


def wrap(sock):
    """A block socket over ``sock`` (wrapping an already wrapped socket returns it)."""
    if isinstance(sock, LLencSocket):
        return sock
    return LLencSocket(sock)


class LLencSocket:
    """``sock`` with block-level ``send``, ``receive`` and ``receive_array``.

    ``error`` is the reason of the last failure (this wrapper's own, or the socket's).
    """

    def __init__(self, sock):
        self.sock = sock
        self._error = None

    def __getattr__(self, name):
        return getattr(self.sock, name)

    @property
    def error(self):
        """The reason of the last failed operation, or None."""
        if self._error is not None:
            return self._error
        return getattr(self.sock, "error", None)

    def _fail(self, message=None):
        self._error = message or getattr(self.sock, "error", None) or "closed"
        return None

    def send(self, block):
        """Send one block (bytes or str) or a list/tuple of blocks (in one write).

        Returns the number of bytes written (framing included), or None on failure.
        """
        self._error = None
        if isinstance(block, (list, tuple)):
            data = frame_many(block)
        else:
            data = frame(block)
        return self._send_all(data)

    def _send_all(self, data):
        total = len(data)
        sent = 0
        while sent < total:
            n = self.sock.send(data if sent == 0 else data[sent:])
            if isinstance(n, tuple):        # a LuaSocket-style (None, err, last_sent) result
                n = n[0]
            if not n or n < 0:
                return self._fail()
            sent += n
        return sent

    def _protocol_error(self, message):
        l_o.warning(f"closing the connection: {message}")
        try:
            self.sock.close()
        except OSError:
            pass
        return self._fail(message)

    def receive(self, max_length=None):
        """The next block (bytes), or None on failure (``error`` says why: ``"closed"``, a
        timeout, ``"block too long (N > max_length)"`` or a protocol error).
        """
        self._error = None
        line = self.sock.receive(b"*l")
        if line is None or isinstance(line, tuple):
            return self._fail()
        try:
            n = parse_length(line)
        except DecodeError as exc:
            return self._protocol_error(f"protocol error: {exc}")
        if max_length is not None and n > max_length:
            return self._protocol_error(f"block too long ({n} > {max_length})")
        if n == 0:
            return b""
        data = self.sock.receive(n)
        if data is None or isinstance(data, tuple):
            return self._fail()
        if isinstance(data, str):
            data = data.encode("latin-1")
        return data

    def receive_array(self, number, max_length=None):
        """A list of ``number`` blocks, or None as soon as one cannot be received."""
        blocks = []
        for _ in range(number):
            block = self.receive(max_length)
            if block is None:
                return None
            blocks.append(block)
        return blocks

    def __repr__(self):
        return f"<llenc {self.sock!r}>"

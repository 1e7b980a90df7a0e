"""splay.benc: SPLAY's extended bencoding (the manual's ``splay.benc``), compiled.

``encode(obj) -> bytes`` writes canonical benc: str/bytes as byte strings, int (any size) and float
(exact, without exponent) as ``i...e``, ``True``/``False``/``None`` as ``t``/``f``/``n``, list and
tuple as ``l...e``, dict as ``d...e`` with keys sorted (byte strings by their raw bytes, then
numbers, booleans, None). Standard BitTorrent bencode is a subset: a ``.torrent`` decoded with
``raw=True`` encodes back byte for byte.

``decode(data, raw=False, lists=False, strict=True)`` reads it back: byte strings are ``str`` when
valid UTF-8, else ``bytes`` (``raw=True``: always bytes). Malformed input raises
:class:`DecodeError` with the offset and what was expected; a value without benc form raises
``TypeError``/``ValueError`` naming its type and path. See docs/codecs.md.

``wrap(sock)`` exchanges whole values over a socket, framed by llenc.
"""
from splayc.benc import MAX_DEPTH, decode, decode_prefix, encode, encode_framed
from splayc.errors import DecodeError

from . import llenc as _llenc
from . import log as _log

__all__ = ["encode", "decode", "decode_prefix", "encode_framed", "DecodeError", "MAX_DEPTH",
           "wrap", "BencSocket"]

l_o = _log.module_logger("benc")


class BencSocket:
    """A socket whose ``send(obj)`` and ``receive()`` exchange whole values (benc over llenc).

    Other attributes are the underlying socket's. ``error`` holds the reason of the last failure.
    """

    #: decode options used by receive()
    raw = False
    lists = False

    def __init__(self, sock):
        self.sock = _llenc.wrap(sock)
        self._error = None

    def __getattr__(self, name):
        return getattr(self.sock, name)

    @property
    def error(self):
        """The reason of the last failed operation, or None."""
        return self._error if self._error is not None else self.sock.error

    def send(self, obj):
        """Encode ``obj`` and send it as one block; the bytes written, or None on failure.

        A value that cannot be encoded raises ``TypeError``/``ValueError`` before anything is sent.
        """
        self._error = None
        return self.sock.send(encode(obj))

    def receive(self, max_length=None):
        """The next value, or None on failure (``error`` says why; a block that does not decode is
        reported and skipped, the connection stays usable). A received ``None`` value leaves
        ``error`` at None, which tells it apart from a failure.
        """
        self._error = None
        block = self.sock.receive(max_length)
        if block is None:
            return None
        try:
            return decode(block, raw=self.raw, lists=self.lists)
        except DecodeError as exc:
            self._error = f"undecodable block: {exc}"
            l_o.warning(self._error)
            return None

    def __repr__(self):
        return f"<{type(self).__module__.rsplit('.', 1)[-1]} {self.sock.sock!r}>"


def wrap(sock):
    """A :class:`BencSocket` over ``sock`` (llenc-wrapped first if it is not already)."""
    if isinstance(sock, BencSocket):
        return sock
    return BencSocket(sock)

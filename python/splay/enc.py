"""splay.enc: send and receive any data the project can serialise (the manual's ``splay.enc``).

SPLAY's ``enc`` serialised Lua values; here every value goes through benc (see :mod:`splay.benc`):
str, bytes, int, float, bool, None, and lists, tuples and dicts of them, nested at will. A tuple
arrives as a list; binary data that is valid UTF-8 arrives as str. ``wrap(sock)`` gives ``send(obj)``
and ``receive()`` over llenc blocks.
"""
from splayc.benc import decode, encode
from splayc.errors import DecodeError

from . import benc as _benc
from . import log as _log

__all__ = ["encode", "decode", "wrap", "EncSocket", "DecodeError"]

l_o = _log.module_logger("enc")


class EncSocket(_benc.BencSocket):
    """A socket whose ``send(obj)``/``receive()`` exchange whole Python values."""


def wrap(sock):
    """An :class:`EncSocket` over ``sock``."""
    if isinstance(sock, EncSocket):
        return sock
    return EncSocket(sock)

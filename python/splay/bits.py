"""splay.bits: bit tables and binary strings (the manual's ``splay.bits``), for Bloom filters.

A :class:`BitTable` packs its bits (compiled, ``splayc.bits``); every function that only reads also
accepts ``bytes`` (a "binary string": 8 bits per byte, high bit first, as SPLAY lays them out).
**Indices are 0-based** (Lua's start at 1): bit ``i`` is bit ``7 - i % 8`` of byte ``i // 8``.

    >>> from splay import bits
    >>> b = bits.ascii_to_bits(b"0\\xcf")
    >>> bits.show_bits(b), bits.count(b), bits.size(b)
    ('00110000 11001111', 8, 16)
"""
from splayc.bits import (BitTable, and_, ascii_to_bits, bits_to_ascii, count, from_positions,
                         init, is_set, not_, or_, popcount, positions, set, show_bits, size,
                         unset, xor)

from . import log as _log

__all__ = ["BitTable", "init", "ascii_to_bits", "bits_to_ascii", "show_bits", "size", "count",
           "popcount", "is_set", "set", "unset", "and_", "or_", "xor", "not_", "positions",
           "from_positions"]

l_o = _log.module_logger("bits")

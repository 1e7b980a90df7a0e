"""``from splay.base import *``: the names every SPLAY application starts with.

Binds ``events``, ``misc``, ``log``, ``socket`` (the cooperative socket module) and ``job`` (the
job of this node when a launcher or daemon started it, else None). Importing it again only binds
the same objects again.
"""
import splay as _splay
from splay import events, log, misc, socket

__all__ = ["events", "misc", "log", "socket", "job"]


def __getattr__(name):
    # ``splay.base.job`` stays current if the launcher sets splay.job after this import.
    if name == "job":
        return _splay.job
    raise AttributeError(f"module 'splay.base' has no attribute {name!r}")

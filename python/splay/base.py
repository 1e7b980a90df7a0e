"""``from splay.base import *``: the names every SPLAY application starts with.

Binds ``events``, ``misc``, ``log``, ``socket`` (the cooperative socket module) and ``job`` (the
job of this node when a launcher or daemon started it, else None). Importing it again only binds
the same objects again.
"""
import splay as _splay
from splay import events, log, misc, socket

__all__ = ["events", "misc", "log", "socket", "job"]


def __getattr__(name):
    # ``job`` is looked up at each import: the node launcher may set splay.job after splay.base was
    # first imported, and in-process nodes each have their own (see splay.current_job).
    if name == "job":
        return _splay.current_job()
    raise AttributeError(f"module 'splay.base' has no attribute {name!r}")

"""pysplay: SPLAY for Python.

Write a distributed protocol as a short program over cooperative threads, RPC and sockets; run it
as many local nodes; deploy it through daemons and a controller. Start with ``from splay.base import *``.
"""
from splayc.errors import (DecodeError, NotInThread, Restricted, RPCError, RPCTimeout,
                           SplayError)

from .node import Node
from . import job as _job_module

# Importing the submodule splay.job set the attribute ``splay.job`` to the module: remove it, so
# that ``splay.job`` means the running node's job (see __getattr__) until a launcher assigns it.
del globals()["job"]

__version__ = "0.1.0"



def current_job():
    """The job of the running node: the calling thread's node's job when one process hosts several
    nodes (``splay run --in-process``), else ``splay.job`` (set by the node launcher), else None."""
    from splayc.hub import current_node
    node = current_node()
    if node is not None:
        j = getattr(node, "job", None)
        if j is not None:
            return j
    return globals().get("job")


def __getattr__(name):
    # ``splay.job`` when no launcher assigned it: the running node's job, or None.
    if name == "job":
        return current_job()
    raise AttributeError(f"module 'splay' has no attribute {name!r}")

__all__ = ["SplayError", "NotInThread", "RPCError", "RPCTimeout", "Restricted", "DecodeError",
           "Node", "current_job", "__version__"]

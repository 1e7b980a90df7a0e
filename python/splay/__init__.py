"""pysplay: SPLAY for Python.

Write a distributed protocol as a short program over cooperative threads, RPC and sockets; run it
as many local nodes; deploy it through daemons and a controller. Start with ``from splay.base import *``.
"""
from splayc.errors import (DecodeError, NotInThread, Restricted, RPCError, RPCTimeout,
                           SplayError)

from .node import Node

__version__ = "0.1.0"

# The job of this process when it was launched as a node (``splay run``, a daemon), else None.
# splay.job_runtime sets it; applications read it as ``splay.job`` or ``job`` from splay.base.
job = None

__all__ = ["SplayError", "NotInThread", "RPCError", "RPCTimeout", "Restricted", "DecodeError",
           "Node", "job", "__version__"]

"""Maelstrom's workloads on SPLAY nodes.

``splay run --maelstrom WORKLOAD --bin PROGRAM -n N`` runs PROGRAM (any program written for
Maelstrom: JSON messages on its stdin and stdout) once per pysplay node, under an adapter node
that carries its messages over pysplay's network -- so ``--partition``, ``--topology`` and the
other faults of ``splay run`` apply -- while a client in every node sends the workload's
operations to its program, records them (:mod:`splay.history`), and the checker judges the
history at the end (:mod:`splay.check`). ``--app FILE`` runs a pysplay application that serves
the messages itself with :class:`Node`, no subprocess.
"""
from .node import Node, RPCError
from .workloads import WORKLOADS

__all__ = ["Node", "RPCError", "WORKLOADS"]

"""Helpers for local testing, when no launcher or daemon gave the process its job.

The manual's ``splay.utils`` has one function, ``generate_job``, which builds the fake job a node
would have received in a deployment, so that the rest of the application runs unchanged::

    import splay
    from splay import utils

    job = splay.job
    if job is None:                        # started by hand: python app.py 3 10
        job = utils.generate_job(int(sys.argv[1]), int(sys.argv[2]), 20001)

``job_from_argv`` wraps that pattern (it is what the manual's example does by hand).
"""
import random as _random
import sys

import splay

from . import log as _log
from .job import Job

__all__ = ["generate_job", "local_nodes", "job_from_argv"]

#: This module's logger (a ``splay.log`` object, level warning) that users may tune.
l_o = _log.module_logger("utils")

# Importing the submodule ``splay.job`` makes Python bind the package attribute ``splay.job`` to
# the module object; that attribute is reserved for the process's Job (None when not launched).
# The module object must never be mistaken for a job, so put the attribute back.
if splay.job is sys.modules.get("splay.job"):
    splay.job = None


def local_nodes(nb_nodes, first_port=20000, ip="127.0.0.1"):
    """The nodes of a local run: node ``i`` is ``ip:first_port + i`` for ``i`` in ``range(nb_nodes)``.

    ``ValueError`` when the count is below 1 or a port falls outside 1..65535.
    """
    if not isinstance(nb_nodes, int) or isinstance(nb_nodes, bool) or nb_nodes < 1:
        raise ValueError(f"nb_nodes must be an integer >= 1, got {nb_nodes!r}")
    if not isinstance(first_port, int) or isinstance(first_port, bool) or not 1 <= first_port <= 65535:
        raise ValueError(f"first_port must be an integer from 1 to 65535, got {first_port!r}")
    last = first_port + nb_nodes - 1
    if last > 65535:
        raise ValueError(f"{nb_nodes} nodes from port {first_port} need ports up to {last}, past 65535: "
                         f"use a lower first_port (at most {65536 - nb_nodes}) or fewer nodes")
    return [splay.Node(ip, first_port + i) for i in range(nb_nodes)]


def generate_job(position, nb_nodes=50, first_port=20000, list_size=None, random=False, *,
                 ref="local", name="local", ip="127.0.0.1", rng=None, **extra):
    """A job for node ``position`` (0-based) of ``nb_nodes`` local nodes.

    Node ``i`` listens on ``127.0.0.1:first_port + i``. The list ``job.nodes()`` returns is
    the first ``list_size`` nodes (all when ``None``) for a head list, or ``list_size`` nodes drawn
    at random (all the others when ``None``) and never ``job.me`` when ``random`` is true. So
    ``job.nodes()[job.position] == job.me`` whenever a head list is long enough to contain it.

    ``ref``, ``name`` and the keyword-only ``extra`` (``nodes_file``, ``dir``, ``sandbox``,
    ``settings``) go into the job as given; ``rng`` is a ``random.Random`` for reproducible draws.
    """
    nodes = local_nodes(nb_nodes, first_port, ip)
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < nb_nodes:
        raise ValueError(f"position must be an integer from 0 to {nb_nodes - 1} (0-based), got {position!r}")
    if list_size is not None and (not isinstance(list_size, int) or isinstance(list_size, bool)
                                  or list_size < 0):
        raise ValueError(f"list_size must be an integer >= 0 or None, got {list_size!r}")
    me = nodes[position]
    if random:
        others = nodes[:position] + nodes[position + 1:]
        k = len(others) if list_size is None else min(list_size, len(others))
        view = (rng or _random).sample(others, k)
        list_type = "random"
    else:
        view = nodes if list_size is None else nodes[:list_size]
        list_type = "head"
    return Job(me=me, position=position, nodes=view, list_type=list_type, ref=ref, name=name,
               list_size=list_size, **extra)


def job_from_argv(argv=None, first_port=20000, list_size=None, random=False):
    """The process's job: ``splay.job`` when launched as a node, else one built from the command line.

    Reads ``POSITION NB_NODES`` from ``argv`` (default ``sys.argv[1:]``), as in the manual's local
    test script. ``ValueError`` with a usage message when they are missing or not integers.
    """
    if splay.job is not None:
        return splay.job
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        position, nb_nodes = int(argv[0]), int(argv[1])
    except (IndexError, ValueError):
        raise ValueError(f"not launched as a node and no position given: run as "
                         f"'{sys.argv[0] or 'app.py'} POSITION NB_NODES' (POSITION is 0-based), "
                         f"or with 'splay run'; got arguments {argv!r}") from None
    return generate_job(position, nb_nodes, first_port, list_size, random)

"""Seeding each node's ``random`` from one run seed and the node's position.

``splay run APP -n N --seed S`` gives node ``i`` the seed :func:`node_seed` ``(S, i)``: the first
8 bytes (big-endian) of SHA-256 of ``"splay-seed:S:i"``. The same S gives every node the same
``random`` stream (and so the same ``misc.random_pick``/``shuffle`` choices) run after run, and
different nodes different streams. The launcher passes S to the node processes in ``SPLAY_SEED``.
"""

import hashlib
import os
import random

SEED_ENV = "SPLAY_SEED"


def node_seed(seed, position):
    """The seed of node ``position`` (0-based) in a run seeded with the integer ``seed``."""
    digest = hashlib.sha256(f"splay-seed:{int(seed)}:{int(position)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def parse_seed(text):
    """``--seed``'s value as an int, or a ValueError saying what a seed is."""
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError(f"a seed is an integer (e.g. --seed 1), got {text!r}") from None


def seed_from_environment(job):
    """Seed this node's ``random`` from ``SPLAY_SEED`` and ``job.position``; returns the node's
    seed, or None when the run is not seeded (then ``random`` keeps its OS entropy seed)."""
    text = os.environ.get(SEED_ENV)
    if text is None or job is None:
        return None
    run_seed = parse_seed(text)
    seed = node_seed(run_seed, job.position)
    random.seed(seed)
    set_run_seed(run_seed, job.position)
    return seed


# The run's seed and this process's node position (None: not seeded; position None: a process
# hosting many nodes), for the generators outside ``random`` that a node's behaviour depends on.
_run = None


def set_run_seed(seed, position=None):
    """Record the run's ``seed`` (None: unseeded) and, in a one-node process, its position:
    :func:`drop_seed` then seeds the nodes' restricted-socket ``udp_drop_ratio`` draws."""
    global _run
    _run = None if seed is None else (int(seed), position)


def drop_seed(position=None):
    """The seed of the ``udp_drop_ratio`` draws of node ``position`` (default: this process's
    node) in the seeded run: the first 8 bytes of SHA-256 of ``splay-udp-drop:S:i``, a stream
    apart from the node's ``random``. None when the run is not seeded."""
    if _run is None:
        return None
    position = _run[1] if position is None else position
    if position is None:
        return None
    digest = hashlib.sha256(f"splay-udp-drop:{_run[0]}:{int(position)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


# The functions of the ``random`` module that draw from (or set) its hidden shared generator.
_SHARED_GENERATOR_FUNCTIONS = tuple(
    name for name in ("random", "uniform", "triangular", "randint", "choice", "randrange", "sample",
                      "shuffle", "choices", "normalvariate", "lognormvariate", "expovariate",
                      "vonmisesvariate", "gammavariate", "gauss", "betavariate", "paretovariate",
                      "weibullvariate", "binomialvariate", "getrandbits", "randbytes", "seed",
                      "getstate", "setstate")
    if hasattr(random, name))

# The generator a node's random.* calls use is kept on the node object under this attribute.
_NODE_ATTRIBUTE = "_splay_random"


class NodeStreams:
    """One ``random`` stream per node of a multi-node process.

    While installed (:meth:`install`), every function of the ``random`` module that uses its
    shared generator (``random.random``, ``choice``, ``shuffle``, ``randint``...; so also
    ``misc.random_pick`` and ``misc.shuffle``) draws from the calling thread's node's own
    ``random.Random``, seeded with :func:`node_seed` ``(seed, position)`` when the node first
    draws; threads outside any node draw from a stream of position -1. A node started afresh
    (churn) gets a new generator with the same seed, as a node process started again would.
    ``position_of(node)`` gives a node object's position.
    """

    def __init__(self, seed, position_of):
        self.seed = int(seed)
        self.position_of = position_of
        self.outside = random.Random(node_seed(self.seed, -1))
        self.saved = None
        from splayc import hub
        self.current_node = hub.current_node

    def stream(self):
        """The ``random.Random`` of the running thread's node."""
        node = self.current_node()
        if node is None:
            return self.outside
        try:
            return node.__dict__[_NODE_ATTRIBUTE]
        except KeyError:
            rng = node.__dict__[_NODE_ATTRIBUTE] = random.Random(
                node_seed(self.seed, self.position_of(node)))
            return rng

    def _dispatcher(self, name):
        stream = self.stream

        def draw(*args, **kwargs):
            return getattr(stream(), name)(*args, **kwargs)
        draw.__name__ = name
        draw.__doc__ = getattr(random, name).__doc__
        return draw

    def install(self):
        """Point the ``random`` module's functions at the per-node streams; returns self."""
        self.saved = {name: getattr(random, name) for name in _SHARED_GENERATOR_FUNCTIONS}
        for name in _SHARED_GENERATOR_FUNCTIONS:
            setattr(random, name, self._dispatcher(name))
        return self

    def uninstall(self):
        """Give the ``random`` module its own functions back."""
        for name, function in (self.saved or {}).items():
            setattr(random, name, function)
        self.saved = None

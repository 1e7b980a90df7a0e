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
    seed = node_seed(parse_seed(text), job.position)
    random.seed(seed)
    return seed

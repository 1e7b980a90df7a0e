"""Faults drawn from a seed: ``random seed 7 every 10s pick pause|partition|kill for 5s``.

:func:`draw` yields the faults of one ``random`` line in time order, forever when the line has no
``to``: a soak can run for hours, and the same seed and node count always give the same faults
(a :class:`random.Random` of the seed decides everything, nothing else is read).

Each draw happens ``every`` seconds, the first at ``from + every``; it picks a kind, then:

- ``pause``, ``kill``, ``slow``: one node of the pool (``on NODES``, default every node); a
  killed node is restarted after ``for``, a slowed one runs at x4 (:data:`RANDOM_SLOW_FACTOR`);
- ``partition``: between 1 and half of the pool, cut from the rest of the pool.
"""
import random

from .lang import RANDOM_SLOW_FACTOR, Fault

__all__ = ["draw"]


def draw(spec, count):
    """The faults of :class:`~splay.faults.lang.RandomFaults` ``spec`` in a run of ``count``
    nodes, in time order (an endless generator without ``to``)."""
    rng = random.Random(spec.seed)
    pool = list(spec.nodes) if spec.nodes is not None else list(range(count))
    t = spec.start + spec.every
    while spec.end is None or t < spec.end:
        kind = rng.choice(spec.kinds)
        end = round(t + spec.duration, 6)
        if kind == "partition":
            side = sorted(rng.sample(pool, rng.randint(1, len(pool) // 2)))
            rest = sorted(set(pool) - set(side))
            yield Fault(kind, tuple(sorted(pool)), t, end, None, (tuple(side), tuple(rest)))
        else:
            node = rng.choice(pool)
            value = RANDOM_SLOW_FACTOR if kind == "slow" else None
            yield Fault(kind, (node,), t, end, value)
        t = round(t + spec.every, 6)

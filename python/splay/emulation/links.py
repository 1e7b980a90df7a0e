"""`LinkModel`: the delay, bandwidth and loss between every pair of job nodes, and partitions.

A link model answers ``between(i, j)`` for job nodes ``i`` and ``j`` (their positions in the job,
from 0): ``(delay_s, bandwidth_bytes_per_s, loss)`` for traffic sent from ``i`` to ``j``. It is
built from a ModelNet-style topology (`splay.emulation.topology`), a latency matrix or a uniform
model (`splay.emulation.matrix`), or `load_link_model` picks the right reader for a file.

Partitions cut the network between groups of nodes: while a cut holds, traffic between the groups
has infinite delay, no bandwidth and total loss; ``heal`` restores the underlying values.
"""
import math
from dataclasses import dataclass
from typing import Tuple

# The value of a pair that cannot talk (cut by a partition, or no route in the topology).
UNREACHABLE = (math.inf, 0.0, 1.0)


@dataclass(frozen=True)
class PathQuality:
    """What traffic from one node to another experiences.

    ``delay_s``: one-way delay in seconds; ``bandwidth``: bytes per second (``math.inf`` when
    unlimited); ``loss``: probability in [0, 1] that a packet is lost; ``route``: the topology
    vertices crossed, source and destination included (empty when not from a topology).
    """
    delay_s: float
    bandwidth: float
    loss: float
    route: Tuple[int, ...] = ()

    def as_tuple(self):
        """``(delay_s, bandwidth, loss)``."""
        return (self.delay_s, self.bandwidth, self.loss)


def kbps_to_bytes_per_second(kbps):
    """Convert kbit/s (1 kbit = 1000 bits, as ModelNet) to bytes/s; infinity stays infinity."""
    return kbps * 1000.0 / 8.0


class Partition:
    """A cut between two disjoint groups of job nodes (see `LinkModel.cut`)."""

    def __init__(self, group_a, group_b):
        self.group_a = frozenset(group_a)
        self.group_b = frozenset(group_b)

    def separates(self, i, j):
        """True when ``i`` and ``j`` are on the two sides of this cut."""
        return (i in self.group_a and j in self.group_b) or (i in self.group_b and j in self.group_a)

    def same_groups(self, group_a, group_b):
        """True when this cut is between exactly these two groups (in either order)."""
        a, b = frozenset(group_a), frozenset(group_b)
        return {a, b} == {self.group_a, self.group_b}

    def __repr__(self):
        return f"<Partition {sorted(self.group_a)} | {sorted(self.group_b)}>"


class LinkModel:
    """Per-pair delay, bandwidth and loss between job nodes, with partitions.

    ``quality(i, j)`` is a function giving the `PathQuality` from node i to node j (i != j);
    ``nodes`` is how many job nodes the model describes (None: any number, as a uniform model);
    ``names``: optional names of the nodes (matrix files name them).
    """

    def __init__(self, quality, nodes=None, names=None, description=""):
        self._quality = quality
        self.nodes = nodes
        self.names = list(names) if names is not None else None
        self.description = description
        self._partitions = []
        self._cache = {}

    def __repr__(self):
        size = "any number of" if self.nodes is None else str(self.nodes)
        cuts = f", {len(self._partitions)} cuts" if self._partitions else ""
        return f"<LinkModel {size} nodes{cuts}{': ' + self.description if self.description else ''}>"

    def _check(self, node):
        if isinstance(node, bool) or not isinstance(node, int):
            raise TypeError(f"a job node is given by its position (an int from 0), not {node!r}")
        if node < 0 or (self.nodes is not None and node >= self.nodes):
            limit = "any index >= 0" if self.nodes is None else f"0 to {self.nodes - 1}"
            raise IndexError(f"node {node} is not in this link model (its nodes are {limit})")

    def index(self, name):
        """The position of the node called ``name`` (models read from a matrix name their nodes)."""
        if self.names is None or name not in self.names:
            raise KeyError(f"no node is called {name!r} in this link model")
        return self.names.index(name)

    def quality(self, i, j):
        """The `PathQuality` from node ``i`` to node ``j``, partitions included."""
        self._check(i)
        self._check(j)
        if i == j:
            return PathQuality(0.0, math.inf, 0.0, ())
        if any(p.separates(i, j) for p in self._partitions):
            return PathQuality(*UNREACHABLE)
        key = (i, j)
        if key not in self._cache:
            self._cache[key] = self._quality(i, j)
        return self._cache[key]

    def between(self, i, j):
        """``(delay_s, bandwidth_bytes_per_s, loss)`` for traffic from node ``i`` to node ``j``.

        A node to itself: ``(0.0, inf, 0.0)``. Nodes separated by a cut, or with no route
        between them: ``(inf, 0.0, 1.0)``.
        """
        return self.quality(i, j).as_tuple()

    def reachable(self, i, j):
        """True when traffic from ``i`` can reach ``j`` (no cut, a route exists, loss below 1)."""
        return self.quality(i, j).loss < 1.0

    # -- partitions
    @property
    def partitions(self):
        """The cuts in force, oldest first (a tuple of `Partition`)."""
        return tuple(self._partitions)

    def _group(self, group, what):
        if isinstance(group, int):
            group = [group]
        members = list(group)
        if not members:
            raise ValueError(f"{what} of a cut is empty")
        for node in members:
            self._check(node)
        return frozenset(members)

    def cut(self, group_a, group_b=None):
        """Cut the network between ``group_a`` and ``group_b`` (node positions; an int is a group
        of one). Without ``group_b``, between ``group_a`` and every other node (the model must
        then know its size). Returns the `Partition`, to give to `heal` later."""
        a = self._group(group_a, "the first group")
        if group_b is None:
            if self.nodes is None:
                raise ValueError("this link model has no fixed number of nodes: give both groups of the cut")
            b = frozenset(range(self.nodes)) - a
            if not b:
                raise ValueError("the cut leaves no node on the other side")
        else:
            b = self._group(group_b, "the second group")
        common = a & b
        if common:
            raise ValueError(f"nodes {sorted(common)} are on both sides of the cut")
        partition = Partition(a, b)
        self._partitions.append(partition)
        return partition

    def heal(self, partition=None, group_b=None):
        """Remove cuts; returns how many were removed.

        ``heal(p)``: the cut `p` returned by `cut`. ``heal(a, b)``: the cuts between groups a
        and b. ``heal()``: every cut. Healing a cut that is not in force raises ValueError.
        """
        if partition is None:
            removed = len(self._partitions)
            self._partitions.clear()
            return removed
        if isinstance(partition, Partition):
            if partition not in self._partitions:
                raise ValueError(f"{partition!r} is not in force (already healed?)")
            self._partitions.remove(partition)
            return 1
        a = self._group(partition, "the first group")
        b = frozenset(range(self.nodes)) - a if group_b is None and self.nodes is not None \
            else self._group(group_b, "the second group")
        matching = [p for p in self._partitions if p.same_groups(a, b)]
        if not matching:
            raise ValueError(f"no cut between {sorted(a)} and {sorted(b)} is in force")
        for p in matching:
            self._partitions.remove(p)
        return len(matching)

    # -- constructors for the simple models
    @classmethod
    def uniform(cls, delay_ms, kbps=math.inf, loss=0.0, nodes=None):
        """Every pair has the same one-way delay (ms), bandwidth (kbit/s) and loss."""
        if delay_ms < 0 or not kbps > 0 or not 0.0 <= loss <= 1.0:
            raise ValueError("uniform link model: need delay_ms >= 0, kbps > 0 and 0 <= loss <= 1")
        quality = PathQuality(delay_ms / 1000.0, kbps_to_bytes_per_second(kbps), loss)
        return cls(lambda i, j: quality, nodes=nodes,
                   description=f"uniform {delay_ms:g} ms, {kbps:g} kbit/s, loss {loss:g}")


def path_loss(losses):
    """Loss over links crossed in a row: 1 - prod(1 - loss_k)."""
    delivered = 1.0
    for loss in losses:
        delivered *= 1.0 - loss
    # Rounded so that one link of loss 0.01 gives 0.01, not 0.010000000000000009.
    return round(1.0 - delivered, 12)


__all__ = ["LinkModel", "Partition", "PathQuality", "UNREACHABLE", "kbps_to_bytes_per_second",
           "path_loss"]

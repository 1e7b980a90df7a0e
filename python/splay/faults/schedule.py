"""One timeline of fault actions: every line of a fault file, random draws included, in time order.

A lasting fault (pause, partition, skew, ...) is two actions, ``begin`` at its start and ``end``
at its end (none when it holds until the end of the run); ``kill N at T`` is one ``begin``,
``kill N at T for D`` a ``begin`` (the kill) and an ``end`` (the restart); ``restart`` is one
``begin``. :func:`actions` merges them lazily (random lines may be endless), ends before begins
at one instant, so that a fault ending when another starts never overlaps it.
"""
import heapq
import itertools
from dataclasses import dataclass

from .lang import Fault
from .random_faults import draw

__all__ = ["Action", "actions", "BEGIN", "END"]

BEGIN, END = "begin", "end"


@dataclass(frozen=True)
class Action:
    """``fault`` begins or ends (``what``) at ``t`` seconds from the run's start."""
    t: float
    what: str
    fault: Fault

    def describe(self):
        """``pause 3 at 10s for 5s: begins`` -- the note of the action in the run's log."""
        if self.fault.kind == "kill" and self.what == END:
            return f"{self.fault.describe()}: restart"
        return f"{self.fault.describe()}: {'begins' if self.what == BEGIN else 'ends'}"


def _of(faults):
    for fault in faults:
        yield Action(fault.start, BEGIN, fault)
        if fault.end is not None:
            yield Action(fault.end, END, fault)


def _ordered(stream, rank):
    # Heap entries: (t, ends first, stream rank, sequence) -- never compares two faults.
    for sequence, action in enumerate(stream):
        yield (action.t, 0 if action.what == END else 1, rank, sequence), action


def _lazy_actions(faults):
    """The actions of faults that arrive in start order: a fault's end waits in a heap until
    every action before it has been given."""
    pending = []
    counter = itertools.count()
    for fault in faults:
        while pending and pending[0][0] <= fault.start:
            yield heapq.heappop(pending)[2]
        yield Action(fault.start, BEGIN, fault)
        if fault.end is not None:
            heapq.heappush(pending, (fault.end, next(counter), Action(fault.end, END, fault)))
    while pending:
        yield heapq.heappop(pending)[2]


def actions(timeline, count):
    """Every action of ``timeline`` (a :class:`~splay.faults.lang.FaultTimeline`) in a run of
    ``count`` nodes, in time order (endless when a ``random`` line has no ``to``)."""
    streams = [sorted(_of(timeline.faults), key=lambda a: (a.t, 0 if a.what == END else 1))]
    streams += [_lazy_actions(draw(spec, count)) for spec in timeline.randoms]
    merged = heapq.merge(*(_ordered(s, rank) for rank, s in enumerate(streams)), key=lambda e: e[0])
    for _, action in merged:
        yield action

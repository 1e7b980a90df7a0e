"""The node's clock as the application sees it: a base clock, then the node's skew and drift.

``misc.time()``, ``events.time()``, ``socket.gettime()`` -- and ``time.time()`` once
:func:`install` has run -- all read :func:`now`: the base clock (:data:`base_clock`, the real
``time.time`` unless a simulation puts its virtual clock there) seen through the running node's
:class:`NodeClock`. Timers (``events.sleep``, timeouts) never read it: they keep real durations.

Composing with other clocks: whoever replaces the base clock sets ``clock.base_clock``; skew and
drift then apply on top of it (a skewed node of a simulation reads virtual time + skew).

Which node: in a process of one node (``splay run``, a daemon's node) the process's clock
(:func:`process_clock`); in a process of many (``--in-process``) the clock of the running thread's
node (its ``fault_clock`` attribute, see :func:`clock_of`).
"""
import time as _time

from splayc.hub import current_node as _current_node

__all__ = ["NodeClock", "now", "base_clock", "real_time", "process_clock", "clock_of", "install"]

#: The real wall clock, whatever is later put in ``time.time``.
real_time = _time.time
_real_time_ns = _time.time_ns

#: The clock under every node's: replace it to run nodes on another time base (splay.sim.clock
#: puts its virtual clock here while a simulation runs).
base_clock = real_time

# Set once some clock differs from its base: until then now() is the base clock, nothing more.
_active = False
_process = None


class NodeClock:
    """A node's view of the base clock: ``seen(t) = t + offset + (rate - 1) * (t - anchor)``.

    ``skew`` moves it by a fixed offset; ``set_rate`` makes it run faster or slower from now on
    (the offset gained so far is kept)."""

    def __init__(self):
        self.offset = 0.0
        self.rate = 1.0
        self.anchor = 0.0

    def seen(self, base):
        """The node's time when the base clock reads ``base``."""
        if self.rate == 1.0:
            return base + self.offset
        return base + self.offset + (self.rate - 1.0) * (base - self.anchor)

    def skew(self, seconds):
        """Move the clock ``seconds`` ahead (negative: back)."""
        global _active
        _active = True
        self.offset += seconds

    def set_rate(self, rate, base=None):
        """Run at ``rate`` (1.001: 1 ms more per second) from base time ``base`` (default now)."""
        global _active
        if not rate > 0:
            raise ValueError(f"a clock rate is a positive number, got {rate!r}")
        _active = True
        base = base_clock() if base is None else base
        self.offset += (self.rate - 1.0) * (base - self.anchor)
        self.anchor, self.rate = base, float(rate)

    def __repr__(self):
        return f"<NodeClock offset {self.offset:+.6f} s, rate {self.rate:g}>"


def process_clock():
    """The clock of this process's node (created on first use)."""
    global _process
    if _process is None:
        _process = NodeClock()
    return _process


def clock_of(node):
    """The clock of ``node`` (an ``--in-process`` node object, created on first use), or the
    process's clock when ``node`` is None."""
    if node is None:
        return process_clock()
    clock = getattr(node, "fault_clock", None)
    if clock is None:
        clock = node.fault_clock = NodeClock()
    return clock


def now():
    """The running node's time in seconds since the epoch (the base clock when nothing skews it)."""
    base = base_clock()
    if not _active:
        return base
    node = _current_node()
    clock = _process if node is None else getattr(node, "fault_clock", None)
    return base if clock is None else clock.seen(base)


def _now_ns():
    if not _active:
        return _real_time_ns() if base_clock is real_time else int(base_clock() * 1e9)
    return int(now() * 1e9)


def install():
    """Make ``time.time()`` and ``time.time_ns()`` read the node's clock (the application's
    view); :data:`real_time` keeps the real one."""
    _time.time = now
    _time.time_ns = _now_ns

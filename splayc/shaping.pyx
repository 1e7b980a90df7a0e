"""Links of an emulated network, applied by the socket layer (see docs/emulation.md).

A :class:`Link` is one direction between this node and a peer: a one-way delay, a rate (a token
bucket that lets bytes leave at ``rate`` bytes per second), a loss probability for datagrams, and
whether a partition cuts it. ``splay.emulation.apply`` creates them from a ``LinkModel`` and
updates them in place when the model changes (cut, heal), so open sockets see the change.
"""
from libc.stdint cimport uint64_t
from splayc.hub cimport clock_ns

import math as _math
import os as _os


# Seeded links (a simulation, splay.sim.network): while set, each new Link's generator is the next
# value of a splitmix64 sequence from the run's seed, so the same links created in the same order
# lose the same datagrams run after run. Unset: os.urandom.
cdef bint _seeded = False
cdef uint64_t _seed_state = 0


def seed_new_links(seed):
    """Seed the generators of the Links created from now on from ``seed`` (an int), in creation
    order; None: from os.urandom again."""
    global _seeded, _seed_state
    _seeded = seed is not None
    _seed_state = (int(seed) & 0xFFFFFFFFFFFFFFFF) if seed is not None else 0


cdef uint64_t _next_seed():
    """The next splitmix64 output of the links' seed sequence."""
    global _seed_state
    cdef uint64_t z
    _seed_state += <uint64_t>0x9E3779B97F4A7C15
    z = _seed_state
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef class Link:
    """One direction of an emulated link (values from ``LinkModel.between``)."""

    def __cinit__(self):
        if _seeded:
            self.rng = _next_seed() | 1
        else:
            self.rng = int.from_bytes(_os.urandom(8), "little") | 1

    def set(self, delay, rate, loss):
        """Set the link from ``(delay_s, bytes_per_s, loss)``; an infinite delay or zero rate
        (``LinkModel``'s unreachable pair) means cut."""
        delay, rate, loss = float(delay), float(rate), float(loss)
        self.cut = _math.isinf(delay) or rate <= 0.0 or loss >= 1.0
        if self.cut:
            delay, rate, loss = 0.0, 0.0, 1.0
        self.delay = delay
        self.delay_ns = <uint64_t>(delay * 1e9)
        self.rate = 0.0 if _math.isinf(rate) else rate
        self.loss = loss
        self._update_active()

    def set_faults(self, duplicate=0.0, reorder=0.0):
        """Datagram faults (``splay.faults``): the probability that a datagram is sent twice, and
        that it is held back (10 ms to 50 ms more) so that later ones overtake it."""
        duplicate, reorder = float(duplicate), float(reorder)
        if not (0.0 <= duplicate <= 1.0 and 0.0 <= reorder <= 1.0):
            raise ValueError(f"duplicate and reorder are probabilities in [0, 1], got "
                             f"{duplicate!r} and {reorder!r}")
        self.duplicate, self.reorder = duplicate, reorder
        self._update_active()

    def _update_active(self):
        self.active = (self.cut or self.delay_ns > 0 or self.rate > 0.0 or self.loss > 0.0
                       or self.duplicate > 0.0 or self.reorder > 0.0)

    def seed(self, value):
        """Seed the generator that decides which datagrams are lost (tests)."""
        self.rng = (int(value) & 0xFFFFFFFFFFFFFFFF) | 1

    cdef uint64_t pace(self, size_t n):
        cdef uint64_t now = clock_ns()
        cdef uint64_t start = self.next_free_ns if self.next_free_ns > now else now
        if self.rate <= 0.0:
            return now
        self.next_free_ns = start + <uint64_t>(n * 1e9 / self.rate)
        return self.next_free_ns

    cdef bint lose(self):
        if self.loss <= 0.0:
            return False
        return self.draw() < self.loss

    cdef double draw(self):
        cdef uint64_t x = self.rng
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        self.rng = x
        return (x >> 11) * (1.0 / 9007199254740992.0)

    def __repr__(self):
        if self.cut:
            return "<Link cut>"
        rate = "unlimited" if self.rate <= 0 else f"{self.rate:g} B/s"
        faults = ""
        if self.duplicate > 0.0 or self.reorder > 0.0:
            faults = f", duplicate {self.duplicate:g}, reorder {self.reorder:g}"
        return f"<Link {self.delay * 1000:g} ms, {rate}, loss {self.loss:g}{faults}>"

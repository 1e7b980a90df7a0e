# cython: language_level=3
"""SPLAY's locks and semaphores, with the manual's *secure* modes.

A semaphore of size ``n`` lets ``n`` threads in at once; a lock is a semaphore of size 1. Waiters are
served first come, first served: ``unlock`` hands the freed place directly to the oldest waiter, so a
thread that arrives later can never overtake one that waits.

``secure`` decides what happens to the places a thread holds when it dies:
``1`` (default) they are released if it died on an uncaught exception; ``2`` released whenever it
dies (error, normal end or ``kill``); ``False``/``0`` never released.
"""
from collections import deque

from splayc.hub cimport Hub, Task, TaskState, T_BLOCKED, get_hub, current_hub_or_raise


cdef class Semaphore:
    """``size`` threads at a time inside; ``lock(timeout=None)`` -> bool, ``unlock()``."""

    cdef readonly int size
    cdef readonly int count          # places taken
    cdef readonly object secure
    cdef list holders                # one entry per place taken
    cdef object waiters              # deque of (Task, token)

    def __init__(self, size=1, secure=1):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"a semaphore needs a size of at least 1, got {size!r}")
        if secure not in (0, 1, 2, False, True, None):
            raise ValueError(f"secure must be 1, 2 or False, got {secure!r}")
        self.size = size
        self.secure = 0 if secure in (None, False) else int(secure)
        self.holders = []
        self.waiters = deque()

    def lock(self, timeout=None):
        """Take a place; blocks while the semaphore is full. True, or False after ``timeout`` s."""
        cdef Hub hub = current_hub_or_raise("lock()")
        cdef Task t = hub.current
        if self.count < self.size and not self.waiters:
            self._grant(t)
            return True
        if timeout is not None and timeout <= 0:
            return False
        t = hub.begin_block()
        entry = (t, t.token)
        self.waiters.append(entry)
        try:
            hub.block(t, -1.0 if timeout is None else float(timeout))
        except BaseException:
            self._abandon(t, entry)
            raise
        if t.timed_out:
            self._abandon(t, entry)
            return False
        return True          # unlock() granted us the place before waking us

    cdef void _abandon(self, Task t, tuple entry):
        """A waiter gives up (timeout, kill): drop its entry, or give back a place granted meanwhile."""
        try:
            self.waiters.remove(entry)
        except ValueError:
            # unlock() already granted the place between the wake and now: pass it on.
            if t in self.holders:
                self._release(t)

    cdef void _grant(self, Task t):
        self.count += 1
        self.holders.append(t)
        if self.secure:
            if t.held_locks is None:
                t.held_locks = []
            t.held_locks.append(self)

    cdef void _release(self, Task t):
        """Give back one place held by ``t`` (or by anybody when ``t`` holds none) and pass it on."""
        cdef Task w
        cdef Hub hub
        if t is not None and t in self.holders:
            self.holders.remove(t)
            if t.held_locks is not None and self in t.held_locks:
                t.held_locks.remove(self)
        elif self.holders:
            other = <Task>self.holders.pop(0)
            if other.held_locks is not None and self in other.held_locks:
                other.held_locks.remove(self)
        self.count -= 1
        while self.waiters:
            w, tok = self.waiters.popleft()
            if w.state == T_BLOCKED and w.token == tok:
                self._grant(w)
                w.hub.wake(w, tok, True)
                return

    def unlock(self):
        """Give back a place. Unlocking a semaphore nobody holds raises RuntimeError."""
        if self.count <= 0:
            raise RuntimeError("unlock() of a lock that is not locked")
        cdef Hub hub = get_hub()
        self._release(hub.current)

    def _release_on_death(self, Task t, bint errored):
        """Called by the hub when ``t`` dies while holding places of this (secure) semaphore."""
        if self.secure == 2 or (self.secure == 1 and errored):
            while t in self.holders:
                self._release(t)

    def locked(self):
        """True when no place is free."""
        return self.count >= self.size

    def __enter__(self):
        self.lock()
        return self

    def __exit__(self, *exc):
        self.unlock()
        return False

    def __repr__(self):
        return f"<{type(self).__name__} {self.count}/{self.size} taken, {len(self.waiters)} waiting>"


cdef class Lock(Semaphore):
    """A mutual-exclusion lock: a semaphore of size 1 (``events.lock(secure=1)``)."""

    def __init__(self, secure=1):
        Semaphore.__init__(self, 1, secure)

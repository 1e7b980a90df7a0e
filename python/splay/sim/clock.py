"""The virtual clock of a simulation.

While virtual time is on, the hub counts every deadline (``events.sleep``, ``wait``/``join``
timeouts, ``events.periodic`` ticks) on a virtual clock instead of the machine's. Nothing
advances it while a thread can run; when every thread is blocked the hub moves it straight to
the earliest deadline and wakes the threads due then, in the order their timers were armed.
So computing takes no virtual time and waiting takes no real time.

The clock starts at 0: ``misc.time()`` in a simulation is the number of virtual seconds since
the start, the same in every run.
"""

import contextlib
import time as _time

from splayc import hub as _hub

from splay.faults import clock as _node_clock

# The machine's clocks, taken before sim.blocking.guard() can point time.time at the virtual one.
_REAL_TIME = _time.time
_REAL_MONOTONIC = _time.monotonic


def enable(start=0.0):
    """Switch the hub to virtual time starting at ``start`` seconds. Call it before
    ``events.run()``; timers already armed keep running on the real clock. The nodes' clocks
    (``misc.time``, splay.faults.clock) then read virtual seconds, skew and drift on top."""
    _hub.set_virtual_clock(True, float(start))
    _node_clock.base_clock = wall_time


def disable():
    """Switch the hub back to the machine's clock."""
    _hub.set_virtual_clock(False, 0.0)
    _node_clock.base_clock = _node_clock.real_time


def is_virtual():
    """True while the hub runs on virtual time."""
    return _hub.virtual_time() is not None


def now():
    """Seconds on the clock the hub's timers use: virtual time in a simulation, else the
    machine's monotonic clock."""
    v = _hub.virtual_time()
    return _REAL_MONOTONIC() if v is None else v


def wall_time():
    """UNIX time as an application sees it: virtual seconds in a simulation, else ``time.time()``."""
    v = _hub.virtual_time()
    return _REAL_TIME() if v is None else v


@contextlib.contextmanager
def virtual_time(start=0.0):
    """``with virtual_time(): events.run(main)`` runs ``main`` on a virtual clock, then restores
    the real one (also when the run raises)."""
    enable(start)
    try:
        yield
    finally:
        disable()

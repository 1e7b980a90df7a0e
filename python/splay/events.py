"""splay.events: cooperative threads, timers, events and locks (the manual's ``events`` section).

Every SPLAY thread is a greenlet run by the hub of the compiled core (``splayc.hub``); blocking-looking
calls (``sleep``, ``wait``, ``lock``, socket and RPC operations) switch to the hub and come back when
their event arrives. Such calls must be made inside a thread (under :func:`run`); outside, they raise
:class:`splay.NotInThread`.

A scheduler round runs, in this order: the threads created since the last round (oldest first),
the threads woken during the last round, then delivers this round's ``fire``\\ s, then polls the
network and timers.
"""
from splayc import hub as _hub
from splayc.errors import NotInThread
from splayc.hub import TaskKilled, Task
# The hot calls are the compiled core's own functions (no Python-level wrapper to go through).
from splayc.hub import current_node, fire, kill as _kill_one, sleep, thread, wait, yield_
from splayc.locks import Lock, Semaphore

from . import log as _log  # noqa: E402

__all__ = ["run", "exit", "thread", "kill", "periodic", "dead", "status", "sleep", "yield_",
           "fire", "wait", "lock", "semaphore", "synchronize", "stats", "Task", "TaskKilled",
           "NotInThread", "current", "current_node"]

l_o = _log.new(3, "[events]")

#: Seconds ``exit()`` waits before ending, so that RPC replies already sent can leave.
EXIT_GRACE = 0.1


def _log_thread_error(task, exc):
    import traceback
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    l_o.error(f"{task!r} died on an uncaught exception:\n{text}")


_hub.set_error_hook(_log_thread_error)


def _spawn_all(f, args=()):
    if isinstance(f, (list, tuple)):
        return [_hub.spawn(g, *args) for g in f]
    return _hub.spawn(f, *args)


def run(main=None, *args):
    """Start the scheduler; ``main`` (a function or a list of them) runs as the first thread(s).

    Returns when no thread can ever run again (every thread ended, or the ones left wait for
    something nobody can give them), or after :func:`exit`. Ctrl-C (KeyboardInterrupt) and
    SIGTERM (SystemExit) stop the loop after unwinding every thread, then propagate.

    >>> from splay import events
    >>> events.run(lambda: print("hello world"))
    hello world
    """
    if main is not None:
        _spawn_all(main, args)
    _hub.run_loop()


def exit():
    """End the application after a short grace period (:data:`EXIT_GRACE`) so pending RPC replies leave.

    Called from a thread, it does not return. Where one process hosts several nodes
    (``splay run --in-process``), it ends the calling node only: its threads, servers and sockets.
    """
    h = _hub.hub()
    me = h.running_task
    if me is None:
        h.request_exit()            # outside threads: stop at the end of this round
        return
    sleep(EXIT_GRACE)
    node = me.node
    if node is None:
        h.request_exit()
    else:
        h.request_exit(node)
    _kill_one(me)                   # raises TaskKilled in the caller: exit() does not return


def kill(t):
    """Kill a thread, or every thread of a list: True, or None when not found (already dead).

    The killed thread's ``finally`` blocks run (it receives :class:`TaskKilled`). A thread may kill
    itself; the call then does not return.
    """
    if isinstance(t, (list, tuple, set)):
        me = current()
        found = None
        for x in t:
            if x is not me and _kill_one(x):
                found = True
        if me is not None and me in t:
            _kill_one(me)
        return found
    if not isinstance(t, Task):
        return None
    return _kill_one(t)


def current():
    """The running thread (a :class:`Task`), or None outside threads."""
    return _hub.current()


def dead(t):
    """True if thread ``t`` has ended or was killed."""
    return t.dead


def status(t):
    """``"running"``, ``"suspended"``, ``"normal"`` or ``"dead"`` (as Lua's ``coroutine.status``).

    A thread is ``"running"`` while it executes, ``"suspended"`` while it waits for its turn or for
    an event, ``"dead"`` once ended or killed. (``"normal"`` is a Lua coroutine that resumed another
    one; SPLAY threads are always resumed by the scheduler, so it does not occur.)
    """
    return t.status


def periodic(interval, f, force=False, first=None):
    """Call ``f`` every ``interval`` seconds, each call in a new thread; returns the driving thread.

    The first call happens one interval after this call (``first``: that many seconds after it,
    e.g. to give each node its own phase). With one function and ``force`` false, a
    tick is skipped while the previous call is still alive; with ``force`` true every tick starts a
    new call. With a list of functions, all of them are started at every tick. Ticks follow a
    fixed schedule (no drift); ticks missed while the process was busy are skipped, not queued.
    Kill the returned thread to stop the period.
    """
    interval = float(interval)
    if interval <= 0:
        raise ValueError(f"periodic() needs an interval > 0 seconds, got {interval!r}")
    first = interval if first is None else float(first)
    if not first >= 0:
        raise ValueError(f"periodic() needs a first delay >= 0 seconds, got {first!r}")
    funcs = list(f) if isinstance(f, (list, tuple)) else None
    if funcs is None and not callable(f):
        raise TypeError(f"periodic() takes a function or a list of functions, got {type(f).__name__}")
    from .sim.clock import now as _now      # the hub's clock: virtual in a simulation
    # The driving thread runs once per tick and returns the delay to the next one: between ticks
    # it holds no greenlet (hub.spawn_repeating), which a thread parked in sleep() would (~8 KB,
    # most of an idle simulated node).
    schedule = [_now() + first, None]    # the tick due next (or now), the last call's thread

    def tick():
        next_tick = schedule[0] + interval
        now = _now()
        if next_tick <= now:     # fell behind: skip the missed ticks
            next_tick += interval * (int((now - next_tick) / interval) + 1)
        schedule[0] = next_tick
        if funcs is not None:
            for g in funcs:
                _hub.spawn(g)
        elif force or schedule[1] is None or schedule[1].dead:
            schedule[1] = _hub.spawn(f)
        return next_tick - now

    return _hub.spawn_repeating(first, tick)


def lock(secure=1):
    """A mutual-exclusion lock: ``l.lock(timeout=None)`` -> bool, ``l.unlock()``, or ``with l:``.

    ``secure``: 1 (default) released if the holder dies on an error; 2 released whenever the
    holder dies; False never released automatically.
    """
    return Lock(secure)


def semaphore(size, secure=1):
    """A semaphore letting ``size`` threads in at once; same methods and ``secure`` as :func:`lock`."""
    return Semaphore(size, secure)


_sync_locks = {}


def synchronize(f, timeout=None):
    """Run ``f()`` with one thread at a time inside it: ``(True, result)`` or ``(False, "timeout")``.

    All ``synchronize`` calls on the same function share one lock.
    """
    lk = _sync_locks.get(f)
    if lk is None:
        lk = _sync_locks[f] = Lock(1)
    if not lk.lock(timeout):
        return (False, "timeout")
    try:
        return (True, f())
    finally:
        lk.unlock()


def time():
    """The node's clock in seconds since the epoch, as ``misc.time()`` (a ``skew`` or ``drift``
    fault moves it; ``sleep`` and timeouts keep real durations)."""
    from splay.faults.clock import now
    return now()


def stats():
    """A human-readable line about the scheduler: threads alive/created/killed, rounds, timers..."""
    s = _hub.hub().stats()
    return (f"threads: {s['alive']} alive ({s['blocked']} blocked, {s['ready']} ready), "
            f"{s['created']} created, {s['killed']} killed; rounds: {s['rounds']}; "
            f"sleeps: {s['sleeps']}; waiting on events: {s['waiting_events']}")

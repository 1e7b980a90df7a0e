# cython: language_level=3
"""The hub: SPLAY threads as greenlets, switched by one hub greenlet that drives the libuv loop.

A scheduler round has four phases, always in this order:

0. *new* threads run, first created first; a thread created at any time runs before any woken
   thread (so "create a waiter, then fire" works wherever it is done);
1. threads woken before the round began (during the previous round or its poll) run, in wake
   order; a thread woken or yielding during this round waits for the next one;
2. fired events are delivered: every waiter of a fired name is woken with the fire's arguments,
   and a fire nobody waits for is dropped;
3. libuv is polled: without blocking when something is runnable, else until an event arrives.

A thread that blocks switches directly to the next runnable thread (``Hub._next``); when nothing
can run without a blocking poll, it does the hub's poll itself, in its own greenlet
(``_poll_in_task``), and control goes to the hub greenlet only in unusual states (stopping, an
error to raise, the virtual clock).
libuv callbacks never switch greenlets: they only put tasks on the ready list (``Hub.wake``), so no
Python exception ever has to cross libuv's C frames. A timer callback that makes a thread runnable
also keeps the poll it runs in from blocking (hub.pxd, ``stop_poll_if_runnable``): libuv 1.44 runs
due timers at the start of a blocking ``uv_run`` and would then wait as if they had woken nobody.
Every wait carries a *token* (``Task.token``) and a waker must present it, so a late callback can
never wake a task for the wrong reason.

The hot paths avoid Python containers (every instruction here is paid per switch or per round):
woken threads wait in a ring of C pointers (``Hub.ready``); timeouts sit in a C binary heap under
one libuv timer per hub (``Hub.timers``); each event name has a ``Slot`` (one dict lookup per fire
or wait, none per delivery); live threads are a linked list (``Hub.alive_head``), not a set.
"""
cimport cython
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.list cimport PyList_GET_SIZE
from cpython.pystate cimport (PyThreadState, PyInterpreterState, PyInterpreterState_ThreadHead,
                              PyThreadState_Next)
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t

from splayc.uv cimport *
from splayc.greenlet_capi cimport (greenlet, _PyGreenlet_API, PyGreenlet_Import,
                                   PyGreenlet_GetCurrent, PyGreenlet_New, PyGreenlet_Switch,
                                   PyGreenlet_Throw, PyGreenlet_SetParent, PyGreenlet_ACTIVE,
                                   PyExc_GreenletExit)

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1
    unsigned long PyThread_get_thread_ident()
    Py_ssize_t PyDict_GET_SIZE(object d)
    PyObject* PyDict_GetItemWithError(object d, object key)
    PyObject* PyErr_Occurred()
    object PyContext_CopyCurrent()

# Raw forms (no automatic error check) for the worker loop, which handles errors itself.
cdef extern from "Python.h":
    PyObject* _call "PyObject_Call"(object fn, object args, PyObject* kwargs)
    PyObject* _call_noargs "PyObject_CallNoArgs"(object fn)
    int _context_enter "PyContext_Enter"(object ctx)
    int _context_exit "PyContext_Exit"(object ctx)
    int PyErr_ExceptionMatches(object exc)
    void PyErr_Clear()
    void Py_XDECREF(PyObject* o)

cdef extern from "greenlet.h":
    PyObject* _switch_raw "PyGreenlet_Switch"(greenlet g, PyObject* args, PyObject* kwargs)

cdef extern from "small_arena.h":
    int splay_install_small_arena()

import os
import signal
import socket as _pysocket
import sys
import threading
import traceback

from splayc.errors import NotInThread

PyGreenlet_Import()
if _PyGreenlet_API == NULL:
    raise ImportError("splayc.hub: greenlet's C API could not be imported (is greenlet>=3 installed?)")

# Greenlet starts without an mmap/munmap pair each (see csrc/small_arena.h). SPLAY_NO_SMALL_ARENA=1
# turns it off, for measurements.
if not os.environ.get("SPLAY_NO_SMALL_ARENA"):
    splay_install_small_arena()

cdef object GreenletExit = <object>PyExc_GreenletExit

# Parked workers kept for reuse: starting a fresh greenlet costs ~11 us (CORE-NOTES, pitfall 1).
DEF MAX_IDLE_WORKERS = 1024


class TaskKilled(BaseException):
    """Raised inside a thread that ``events.kill`` ended, so its ``finally`` blocks run.

    It derives from BaseException so that ``except Exception`` in application code does not stop
    the unwinding. Catching it and carrying on is allowed but the thread still counts as dead.
    """


# Called as error_hook(task, exc) for an uncaught exception in a thread; splay.events installs one
# that writes through splay.log. The default prints the traceback on stderr.
cdef object _error_hook = None


def set_error_hook(hook):
    """Install ``hook(task, exception)``, called when a thread dies on an uncaught exception."""
    global _error_hook
    _error_hook = hook


cdef void _report_error(Task t, object exc):
    if _error_hook is not None:
        try:
            _error_hook(t, exc)
            return
        except BaseException:
            pass
    try:
        sys.stderr.write(f"E: {t!r} died on an uncaught exception:\n")
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        sys.stderr.flush()
    except BaseException:
        pass


# --------------------------------------------------------------------------------------- workers

cdef class Worker:
    """A greenlet (``glet``) that runs tasks one after the other; parked in ``Hub.idle`` between tasks.

    ``glet`` is a plain greenlet running ``_worker_main`` (which calls ``Worker._loop``), not a greenlet
    subclass: greenlet checks the type of every greenlet it touches, and for a subclass each check
    walks the MRO (``PyType_IsSubtype``), which cost ~100 instructions per switch.
    """

    cdef object _loop(self):
        # No try/except in here: this frame sits on the worker's C stack under the task's code, and
        # greenlet copies that stack out and back at every switch. Cython's exception bookkeeping
        # made it ~370 bytes; the error handling lives in _task_failed instead.
        cdef Hub hub = self.hub
        cdef Task t, nxt
        cdef Worker w
        cdef PyObject* r
        while True:
            t = self.task
            if _run_task(t) < 0:
                if PyErr_ExceptionMatches(GreenletExit):
                    # Thrown by greenlet itself (never by us): this greenlet is being destroyed.
                    self._finish(t)
                    _reraise()
                _on_task_failed(hub, t)
            self._finish(t)
            t = None                 # a parked worker must not keep its last task alive
            if hub.stopping or len(hub.idle) >= MAX_IDLE_WORKERS:
                hub.current = None
                return None          # the greenlet ends; control goes back to the hub
            nxt = hub._next()
            while nxt is None and _poll_in_task(hub, None):
                nxt = hub._next()        # polled here: no switch to the hub and back
            if nxt is not None and nxt.worker is None:
                # A new thread: run it right here, no switch needed.
                self.task = nxt
                nxt.worker = self
                hub.current = nxt
                nxt.state = T_RUNNING
                continue
            hub.idle.append(self)
            if nxt is None:
                hub.current = None
                r = _switch_raw(hub.glet, NULL, NULL)
            else:
                w = nxt.worker
                hub.current = nxt
                nxt.state = T_RUNNING
                r = _switch_raw(w.glet, NULL, NULL)
            if r == NULL:
                if PyErr_ExceptionMatches(GreenletExit):
                    PyErr_Clear()
                    return None
                _reraise()
            Py_XDECREF(r)
            # resumed by _switch_to() with a new task in self.task, or by the hub's shutdown
            # with none: then end by returning (cheaper than being thrown GreenletExit)
            if self.task is None:
                return None

    cdef void _finish(self, Task t):
        self.task = None
        t.worker = None
        if t.deadline_ns:
            self.hub._stop_timer(t)
        if t.repeating and _rearm(self.hub, t):
            return
        t._on_death()


cdef bint _rearm(Hub hub, Task t) noexcept:
    """A repeating task's run returned: arm its next run after the delay (seconds) its function
    returned. False (it dies) when it returned None or no number, was killed, failed, or the
    loop stops. Between runs it holds no worker: no greenlet, no stack (spawn_repeating)."""
    cdef object delay = t.result
    t.result = None
    if delay is None or t.killed or t.errored or hub.stopping or hub.fatal is not None:
        return False
    try:
        t.state = T_NEW
        hub._arm_timer(t, float(delay))
    except BaseException:
        t.state = T_RUNNING
        return False
    return True


cdef int _run_task(Task t) noexcept:
    """Run ``t.fn(*t.args)`` in the task's own contextvars copy (what Context.run() does, without
    its frame): 0, or -1 with the exception set."""
    cdef PyObject* r
    if _context_enter(t.context) < 0:
        return -1
    if t.args:
        r = _call(t.fn, t.args, NULL)
    else:
        r = _call_noargs(t.fn)
    if _context_exit(t.context) < 0:
        Py_XDECREF(r)
        return -1
    if r == NULL:
        return -1
    t.result = <object>r
    Py_XDECREF(r)
    return 0


cdef int _reraise() except -1:
    return -1           # the caller's failed C call left its exception set: let Cython raise it


cdef void _task_failed(Hub hub, Task t):
    """A task's function raised (the exception is set): consume and record it."""
    try:
        _reraise()
    except TaskKilled:
        pass
    except (KeyboardInterrupt, SystemExit) as e:
        # Ends the whole loop; events.run() re-raises it (after unwinding the threads).
        if hub.fatal is None:
            hub.fatal = e
    except BaseException as e:
        t.errored = True
        t.exception = e
        _report_error(t, e)


# Worker._loop calls _task_failed through this pointer: the compiler then cannot inline it (and the
# error reporting it contains) into the loop, whose C frame must stay small (see Worker._loop).
ctypedef void (*task_failed_fn)(Hub hub, Task t)
cdef task_failed_fn _on_task_failed = _task_failed


@cython.binding(False)
def _worker_main():
    """Body of every worker greenlet. One callable shared by all of them (no bound method per
    worker): the hub makes the task a new worker starts with ``current`` before the first switch."""
    (<Task>get_hub().current).worker._loop()


cdef void _free_handle_cb(uv_handle_t* handle) noexcept with gil:
    free(handle)


# ----------------------------------------------------------------------------------------- tasks

cdef class Task:
    """A SPLAY thread. Returned by ``events.thread``; give it to ``kill``, ``dead``, ``status``."""

    def __cinit__(self):
        self.held_locks = None
        self.joiners = None
        self.timer_index = -1

    cdef void _on_death(self):
        """Bookkeeping when the thread's function has returned or raised."""
        cdef Hub hub = self.hub
        cdef Task j
        self.state = T_DEAD
        hub._unlist(self)
        if self.held_locks:
            locks, self.held_locks = self.held_locks, None
            for lock in locks:
                lock._release_on_death(self, self.errored)
        if self.joiners:
            joiners, self.joiners = self.joiners, None
            for j, tok in joiners:
                hub.wake(j, tok, True)

    @property
    def status(self):
        """``"running"``, ``"suspended"`` (created, ready or blocked) or ``"dead"``."""
        if self.state == T_DEAD or self.killed:
            return "dead"
        if self.hub is not None and self.hub.current is self:
            return "running"
        return "suspended"

    @property
    def dead(self):
        """True once the thread has ended or was killed."""
        return self.state == T_DEAD or self.killed

    def join(self, timeout=None):
        """Wait until this thread is dead. Returns True, or False after ``timeout`` seconds."""
        cdef Hub hub = current_hub_or_raise("Task.join()")
        if self.state == T_DEAD:
            return True
        cdef Task me = hub.begin_block()
        if me is self:
            raise RuntimeError("a thread cannot join itself")
        if self.joiners is None:
            self.joiners = []
        entry = (me, me.token)
        self.joiners.append(entry)
        try:
            hub.block(me, -1.0 if timeout is None else float(timeout))
        finally:
            if me.timed_out and self.joiners is not None:
                try:
                    self.joiners.remove(entry)
                except ValueError:
                    pass
        return not me.timed_out

    def __repr__(self):
        name = self.name
        if name is None:
            name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"<thread {self.id} {name} {self.status}>"


# ----------------------------------------------------------------------------------- event slots

cdef class Slot:
    """The state of one event name: its pending fire (if any) and its waiters."""


cdef class EventSlots:
    """SPLAY's named events: one pending fire per name per round, delivered to every waiter.

    Each name has a Slot (its pending fire and its waiters), so ``fire`` and ``wait`` cost one dict
    lookup and delivering a round's fires none: the fired Slots are listed in a C array. Slots left
    empty are swept from the dict once it has grown to twice its last live size.

    A Slot's waiters are a Task, or a list of them (in wait order) once a second task waits: most
    names have a single waiter. They carry no wake token: a task is a waiter only while it is
    blocked in that very wait (``wait`` removes it after a timeout or a kill), and ``Hub.wake``
    ignores a task that is not blocked, so the task's current token is the right one at delivery.
    """

    def __cinit__(self, Hub hub):
        self.hub = hub
        self.slots = {}
        self.sweep_at = 64
        self.fired_cap = 16
        self.fired = <PyObject**>PyMem_Malloc(self.fired_cap * sizeof(PyObject*))
        if self.fired == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.fired != NULL:
            self.clear()
            PyMem_Free(self.fired)
            self.fired = NULL

    cdef Slot _slot(self, object name):
        """The Slot of ``name``, created if needed."""
        cdef PyObject* found = PyDict_GetItemWithError(self.slots, name)
        cdef Slot slot
        cdef list empty
        if found != NULL:
            return <Slot>found
        if PyErr_Occurred():                 # an unhashable name
            _reraise()
        if PyDict_GET_SIZE(self.slots) >= self.sweep_at:
            empty = [k for k, v in self.slots.items()
                     if (<Slot>v).args is None and (<Slot>v).waiters is None]
            for k in empty:
                del self.slots[k]
            self.sweep_at = 2 * PyDict_GET_SIZE(self.slots) + 64
        slot = Slot.__new__(Slot)
        slot.args = None
        slot.waiters = None
        self.slots[name] = slot
        return slot

    cdef bint fire(self, object name, tuple args) except -1:
        cdef Slot slot = self._slot(name)
        cdef PyObject** bigger
        if slot.args is not None:
            return False                     # an earlier fire of this round is still pending
        if self.n_fired == self.fired_cap:
            bigger = <PyObject**>PyMem_Realloc(self.fired, 2 * self.fired_cap * sizeof(PyObject*))
            if bigger == NULL:
                raise MemoryError()
            self.fired = bigger
            self.fired_cap *= 2
        slot.args = args if args is not None else ()   # None means "no pending fire"
        Py_INCREF(slot)
        self.fired[self.n_fired] = <PyObject*>slot
        self.n_fired += 1
        return True

    cdef object wait(self, object name, double timeout):
        cdef Hub hub = self.hub
        cdef Task t = hub.begin_block()
        cdef Slot slot = self._slot(name)
        cdef object first = slot.waiters
        if first is None:
            slot.waiters = t
        elif type(first) is list:
            (<list>first).append(t)
        else:
            slot.waiters = [first, t]
        try:
            value = hub.block(t, timeout)
        except BaseException:
            self._forget(name, t)          # killed: still registered
            raise
        if t.timed_out:
            self._forget(name, t)          # woken by its timer: still registered
        # Woken by a fire: deliver() already took the Slot's waiters.
        return value

    cdef int _forget(self, object name, Task t) except -1:
        """Drop ``t`` from the waiters of ``name``."""
        cdef object found = self.slots.get(name)
        cdef Slot slot
        if found is None:
            return 0
        slot = <Slot>found
        if slot.waiters is t:
            slot.waiters = None
        elif type(slot.waiters) is list:
            try:
                (<list>slot.waiters).remove(t)
            except ValueError:
                pass
            if not slot.waiters:
                slot.waiters = None
        return 0

    cdef void deliver(self):
        cdef Hub hub = self.hub
        cdef Py_ssize_t i, n = self.n_fired
        cdef Slot slot
        cdef object args, ws
        cdef Task t
        self.n_fired = 0
        for i in range(n):
            slot = <Slot>self.fired[i]
            Py_DECREF(slot)                  # the array's reference (`slot` holds its own)
            args = slot.args
            slot.args = None                 # fired or not, the fire ends with the round
            ws = slot.waiters
            if ws is None:
                continue
            slot.waiters = None
            if type(ws) is list:
                for t in <list>ws:
                    hub.wake(t, t.token, args)
            else:
                t = <Task>ws
                hub.wake(t, t.token, args)

    cdef void clear(self):
        """Forget every pending fire and waiter (the loop stopped)."""
        cdef Py_ssize_t i
        for i in range(self.n_fired):
            Py_DECREF(<object>self.fired[i])
        self.n_fired = 0
        self.slots.clear()
        self.sweep_at = 64

    cdef Py_ssize_t n_waiting(self):
        cdef Py_ssize_t n = 0
        for v in self.slots.values():
            w = (<Slot>v).waiters
            if w is not None:
                n += len(<list>w) if type(w) is list else 1
        return n


# -------------------------------------------------------------------------------------- timers

# Virtual time (splay.sim): while ``_virtual`` is set, deadlines are counted on ``_virtual_ns``
# instead of uv_hrtime(), no libuv timer is armed, and when no thread can run the hub jumps the
# clock to the earliest deadline instead of polling (Hub._rounds). Module-level, so the Hub's
# layout (and every module that cimports it) is unchanged.
cdef bint _virtual = False
cdef uint64_t _virtual_ns = 0


cdef inline uint64_t _clock_ns() noexcept:
    """The clock deadlines are measured on: virtual while a simulation runs, else uv_hrtime()."""
    return _virtual_ns if _virtual else uv_hrtime()


cdef uint64_t clock_ns() noexcept:
    """The clock deadlines are measured on (hub.pxd), for the other core modules."""
    return _virtual_ns if _virtual else uv_hrtime()


# The event source of the virtual clock (hub.pxd: set_event_source), NULL when none.
cdef next_event_fn _next_event = NULL
cdef run_events_fn _run_events = NULL


cdef void set_event_source(next_event_fn next_fn, run_events_fn run_fn) noexcept:
    global _next_event, _run_events
    _next_event = next_fn
    _run_events = run_fn


cdef inline bint _has_virtual_work(Hub hub) noexcept:
    """Virtual time: a timer or an event of the event source is pending."""
    cdef uint64_t due
    return hub.timer_count > 0 or (_next_event != NULL and _next_event(&due))


def set_virtual_clock(bint enabled, double start=0.0):
    """Switch the hub's timers to a virtual clock starting at ``start`` seconds (``enabled``), or
    back to real time. Only between runs: timers armed before the switch keep their old clock."""
    global _virtual, _virtual_ns
    if start < 0:
        raise ValueError(f"the virtual clock cannot start before 0 seconds, got {start!r}")
    _virtual = enabled
    _virtual_ns = <uint64_t>(start * 1e9)


cdef object _stuck_hook = None


def set_stuck_hook(hook):
    """In virtual time, call ``hook([(task, frame), ...])`` when a run ends because no thread can
    ever run again while some are still blocked (``frame``: where each one waits). None: off."""
    global _stuck_hook
    _stuck_hook = hook


def virtual_time():
    """The virtual clock in seconds while virtual time is on, else None."""
    return _virtual_ns / 1e9 if _virtual else None


# ``splay run --sim --until T``: the clock never jumps past ``_virtual_limit_ns`` (0: no limit);
# a run whose next deadline lies beyond it ends there, as after exit().
cdef uint64_t _virtual_limit_ns = 0
cdef bint _virtual_limit_reached = False
# Threads resumed since the process started: the simulation's count of events processed.
cdef unsigned long long _resumptions = 0


def set_virtual_limit(limit=None):
    """In virtual time, end the run when the clock would move past ``limit`` seconds (the clock
    stops at ``limit``); None: no limit."""
    global _virtual_limit_ns, _virtual_limit_reached
    if limit is not None and limit <= 0:
        raise ValueError(f"a virtual time limit is a positive number of seconds, got {limit!r}")
    _virtual_limit_ns = 0 if limit is None else <uint64_t>(limit * 1e9)
    _virtual_limit_reached = False


def virtual_limit_reached():
    """True when the last run in virtual time ended because it reached its limit."""
    return _virtual_limit_reached


def resumptions():
    """How many times a thread was resumed (switched into) in this process: the events a
    simulation processed."""
    return _resumptions


cdef void _hub_timer_cb(uv_timer_t* timer) noexcept with gil:
    cdef Hub hub
    cdef Py_ssize_t mark
    if timer.data == NULL:
        return
    hub = <Hub>timer.data
    mark = runnable_mark(hub)
    hub._fire_timers()
    stop_poll_if_runnable(hub, mark)      # hub.pxd: else a blocking poll may not see the wake


# -------------------------------------------------------------------------------------- signals

cdef void _signal_cb(uv_poll_t* handle, int status, int events) noexcept with gil:
    cdef Hub hub
    if handle.data == NULL:
        return
    hub = <Hub>handle.data
    try:
        while True:
            if not hub.sig_sock_r.recv(512):
                break
    except BlockingIOError:
        pass
    except BaseException as e:
        hub.callback_error = e


def _raise_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------------------- hub

cdef object _NO_EXIT = object()     # request_exit(): "the whole application"

# Frozen nodes (splay.faults: ``pause`` of an --in-process node): node -> the list of its threads
# that became runnable while it was frozen, held back until thaw_node(node). Empty: no check.
cdef dict _frozen = {}


cdef inline bint _held_back(Task t) except -1:
    """Hold ``t`` back when its node is frozen (True); a killed thread is never held."""
    cdef object held
    if not _frozen or t.killed:
        return False
    held = _frozen.get(t.node)
    if held is None:
        return False
    (<list>held).append(t)
    return True



cdef void _call_suspend_callback(Hub hub) noexcept:
    """The watched task suspends: call its callback (once). What it raises ends the loop, as a
    libuv callback's error does: the task cannot be the one to see it."""
    cb = hub.suspend_callback
    hub.suspend_watch = None
    hub.suspend_callback = None
    try:
        cb()
    except BaseException as e:
        if hub.callback_error is None:
            hub.callback_error = e


cdef inline void _poll_libuv(Hub hub) noexcept:
    """Phase 3 of a round: poll libuv, without blocking when something is runnable, else until an
    event arrives.

    With no other Python thread the GIL stays held and one ``uv_run(UV_RUN_ONCE)`` does it: it
    runs the due timers, then waits in ``epoll_wait`` (not at all when a timer callback made a
    thread runnable: it stops the loop, hub.pxd stop_poll_if_runnable), then runs the I/O
    callbacks of what arrived -- one system call when the answer is already there, as on
    loopback. A look without blocking first would be a second ``epoll_wait`` per wait for
    nothing (~5 % of an rpcq call). With another Python thread the blocking poll releases the GIL;
    then the look comes first, because releasing the GIL and taking it back costs more than a poll
    that finds the answer already there (~2k instructions); a callback of that look may also have
    made a thread runnable (a listening socket's on_connection), and then nothing blocks."""
    if not _nothing_runnable(hub):
        uv_run(hub.loop, UV_RUN_NOWAIT)
    elif not (hub.release_gil and _other_python_threads()):
        uv_run(hub.loop, UV_RUN_ONCE)
    else:
        uv_run(hub.loop, UV_RUN_NOWAIT)
        if _nothing_runnable(hub):
            with nogil:
                uv_run(hub.loop, UV_RUN_ONCE)


cdef inline bint _nothing_runnable(Hub hub) noexcept:
    return hub.ready_tail == hub.ready_batch_end and hub.callback_error is None \
        and hub.new_pos == PyList_GET_SIZE(hub.new_tasks)


cdef extern from "Python.h":
    PyInterpreterState* PyInterpreterState_Get()


cdef inline bint _other_python_threads() noexcept:
    """Whether a thread other than this one has a Python thread state, i.e. may need the GIL.

    The blocking poll releases the GIL so that such threads (the deploy daemon's, a
    ``threading.Timer``) run while the hub sleeps; with none, releasing it and taking it back
    around ``epoll_wait`` -- and once more in each callback, whose ``with gil`` then really takes
    it -- is ~700 instructions per poll for nothing (measured on each side of an rpcq call). No
    thread can appear while we block: ``threading`` creates a thread's state in the thread that
    starts it, under the GIL, before the new thread runs. (A thread started from C without a
    Python state, like faulthandler's watchdog, never takes the GIL.)"""
    cdef PyThreadState* head = PyInterpreterState_ThreadHead(PyInterpreterState_Get())
    return head != NULL and PyThreadState_Next(head) != NULL


cdef bint _poll_in_task(Hub hub, Task t) except -1:
    """The poll of the hub's round (``Hub._rounds``), done in the greenlet of the task ``t`` that is
    blocking (or of a worker whose task just ended, ``t`` None): True once polled, False when the
    hub greenlet must take over instead.

    In a ping-pong (a sequential RPC), the task that blocks is nearly always the one the poll wakes;
    polling here spares the switch to the hub greenlet and the one back (greenlet copies part of
    the C stack at each), about a third of the scheduler's cost per call. The steps and their
    order are the hub's, so the order of events is unchanged. Callbacks run as they would in the
    hub: no current task, and outside ``t``'s contextvars. Anything unusual (a stop, an error to
    raise, the virtual clock, a loop with nothing left to wait for, a task inside its own
    ``Context.run``) is left to the hub greenlet."""
    if hub.callback_error is not None or hub.fatal is not None or hub.exit_requested \
            or hub.stopping or _virtual or hub.glet is None or not uv_loop_alive(hub.loop):
        return False
    if t is not None and _context_exit(t.context) < 0:
        PyErr_Clear()                    # t runs in a context of its own: poll from the hub
        return False
    hub.current = None
    _poll_libuv(hub)
    try:
        PyErr_CheckSignals()
    except BaseException as e:           # e.g. KeyboardInterrupt: the hub raises it, as its own
        if hub.callback_error is None:
            hub.callback_error = e
    if hub.ready_head == hub.ready_batch_end:   # the batch is done: start the next one
        hub.ready_batch_end = hub.ready_tail
    if t is not None and _context_enter(t.context) < 0:
        return -1
    return True


cdef class Hub:
    """The scheduler of one OS thread (one per thread, created on first use)."""

    def __cinit__(self):
        self.loop = <uv_loop_t*>malloc(sizeof(uv_loop_t))
        if self.loop == NULL:
            raise MemoryError()
        cdef int err = uv_loop_init(self.loop)
        if err < 0:
            free(self.loop)
            self.loop = NULL
            raise OSError(f"libuv: cannot create a loop: {uv_strerror(err).decode()}")
        self.loop.data = <void*>self
        self.new_tasks = []
        self.ready_cap = 64
        self.ready = <PyObject**>PyMem_Malloc(self.ready_cap * sizeof(PyObject*))
        if self.ready == NULL:
            raise MemoryError()
        self.timer_cap = 64
        self.timers = <TimerEntry*>PyMem_Malloc(self.timer_cap * sizeof(TimerEntry))
        self.timer = <uv_timer_t*>malloc(sizeof(uv_timer_t))
        if self.timers == NULL or self.timer == NULL:
            raise MemoryError()
        uv_timer_init(self.loop, self.timer)
        self.timer.data = <void*>self
        self.unwinding = []
        self.idle = []
        self.slots = EventSlots(self)
        self.tracked = {}
        self.node_tasks = {}
        self.release_gil = True
        self.next_id = 1

    # ----- creating and switching tasks

    cdef Task spawn(self, object fn, tuple args):
        if not callable(fn):
            raise TypeError(f"events.thread() takes a function (or a list of functions), "
                            f"got {type(fn).__name__}")
        cdef Task t = Task.__new__(Task)
        t.hub = self
        t.id = self.next_id
        self.next_id += 1
        t.fn = fn
        t.args = args
        t.context = PyContext_CopyCurrent()
        t.node = node_of_current(self)
        t.state = T_NEW
        self.new_tasks.append(t)
        t.alive_prev = self.alive_tail             # append to the list of live tasks
        if self.alive_tail is None:
            self.alive_head = t
        else:
            self.alive_tail.alive_next = t
        self.alive_tail = t
        t.listed = True
        if t.node is not None:
            self._node_link(t)
        self.n_alive += 1
        self.n_created += 1
        return t

    cdef void _node_link(self, Task t):
        """Append ``t`` to its node's list of live tasks."""
        cdef NodeTasks nt = self.node_tasks.get(t.node)
        if nt is None:
            nt = NodeTasks.__new__(NodeTasks)
            self.node_tasks[t.node] = nt
        t.node_tasks = nt
        t.node_prev = nt.tail
        if nt.tail is None:
            nt.head = t
        else:
            nt.tail.node_next = t
        nt.tail = t

    cdef void _node_unlink(self, Task t):
        """Take ``t`` off its node's list of live tasks (no-op if it is on none)."""
        cdef NodeTasks nt = t.node_tasks
        if nt is None:
            return
        t.node_tasks = None
        if t.node_prev is None:
            nt.head = t.node_next
        else:
            t.node_prev.node_next = t.node_next
        if t.node_next is None:
            nt.tail = t.node_prev
        else:
            t.node_next.node_prev = t.node_prev
        t.node_prev = t.node_next = None
        if nt.head is None:
            del self.node_tasks[t.node]

    cdef void _unlist(self, Task t):
        """Take ``t`` off the list of live tasks (no-op if it is not on it)."""
        if not t.listed:
            return
        t.listed = False
        if t.alive_prev is None:
            self.alive_head = t.alive_next
        else:
            t.alive_prev.alive_next = t.alive_next
        if t.alive_next is None:
            self.alive_tail = t.alive_prev
        else:
            t.alive_next.alive_prev = t.alive_prev
        t.alive_prev = t.alive_next = None
        self._node_unlink(t)
        self.n_alive -= 1

    cdef list _alive_tasks(self):
        """The live tasks, oldest first (a snapshot: safe to iterate while killing)."""
        cdef list out = []
        cdef Task t = self.alive_head
        while t is not None:
            out.append(t)
            t = t.alive_next
        return out

    cdef Worker _get_worker(self):
        cdef Worker w
        if self.idle:
            return <Worker>self.idle.pop()
        w = Worker.__new__(Worker)
        w.hub = self
        # Not PyGreenlet_New(run, parent): it builds a kwargs dict with freshly made key strings
        # (~1.5k instructions per worker). The type's tp_new and two setters do the same.
        w.glet = greenlet.__new__(greenlet)
        w.glet.run = _worker_main
        PyGreenlet_SetParent(w.glet, self.glet)
        return w

    cdef int _switch_to(self, Task t) except -1:
        """Switch from whichever greenlet runs now (the hub or a worker) into task ``t``."""
        cdef Worker w = t.worker
        if w is None:
            w = self._get_worker()
            w.task = t
            t.worker = w
        self.current = t
        t.state = T_RUNNING
        global _resumptions
        _resumptions += 1
        PyGreenlet_Switch(w.glet, NULL, NULL)
        return 0

    cdef int _leave(self, Task t) except -1:
        """The running task ``t`` stops (it blocked or yielded): go straight to the next runnable
        task, or to the hub greenlet when only a blocking poll can make progress."""
        cdef Task nxt
        cdef bint hub_needed = False
        if self.suspend_watch is t:
            _call_suspend_callback(self)
        nxt = self._next()
        while True:
            if nxt is not None and nxt.worker is None and not self.idle:
                # A new thread needs a brand-new greenlet. greenlet starts it with the recursion
                # depth of the greenlet that switches to it first, so chains of starts from worker
                # to worker would end in RecursionError: let the hub (depth ~0) start it.
                self.new_pos -= 1
                nxt = None
                hub_needed = True
            if nxt is not None or hub_needed or not _poll_in_task(self, t):
                break
            nxt = self._next()
        if nxt is t:
            self.current = t          # it is the only runnable one: carry on without a switch
            t.state = T_RUNNING
        elif nxt is None:
            self.current = None
            PyGreenlet_Switch(self.glet, NULL, NULL)
        else:
            self._switch_to(nxt)
        return 0

    # ----- the blocking protocol (see hub.pxd)

    cdef Task begin_block(self):
        cdef Task t = self.current
        if t is None:
            raise NotInThread("this call blocks, so it must run inside a SPLAY thread: call it from "
                              "a function started by events.run(), events.thread() or events.periodic()")
        t.token += 1
        t.timed_out = False
        return t

    cdef object block(self, Task t, double timeout):
        cdef object exc
        if t.pending_throw is not None:
            exc = t.pending_throw
            t.pending_throw = None
            raise exc
        if self.stopping:
            # Shutting down: blocking again would hang the unwinding (CORE-NOTES, pitfall 8).
            raise TaskKilled("the loop is stopping")
        if timeout >= 0:
            self._arm_timer(t, timeout)
        t.state = T_BLOCKED
        self._leave(t)
        if t.pending_throw is not None:
            exc = t.pending_throw
            t.pending_throw = None
            raise exc
        exc = t.wake_value
        t.wake_value = None
        return exc

    cdef void wake(self, Task t, unsigned long token, object value):
        if t.state != T_BLOCKED or t.token != token:
            return
        t.wake_value = value
        t.state = T_READY
        if t.deadline_ns:
            self._stop_timer(t)
        self._push_ready(t)

    cdef void make_ready(self, Task t):
        t.state = T_READY
        self._push_ready(t)

    cdef int _push_ready(self, Task t) except -1:
        """Append ``t`` to the ready ring (a C array: no list append or clear per round)."""
        cdef Py_ssize_t cap = self.ready_cap, p
        cdef PyObject** bigger
        if self.ready_tail - self.ready_head == cap:
            bigger = <PyObject**>PyMem_Malloc(2 * cap * sizeof(PyObject*))
            if bigger == NULL:
                raise MemoryError()
            for p in range(self.ready_head, self.ready_tail):
                bigger[p & (2 * cap - 1)] = self.ready[p & (cap - 1)]
            PyMem_Free(self.ready)
            self.ready = bigger
            self.ready_cap = cap = 2 * cap
        Py_INCREF(t)
        self.ready[self.ready_tail & (cap - 1)] = <PyObject*>t
        self.ready_tail += 1
        return 0

    cdef void _clear_ready(self):
        cdef PyObject* p
        while self.ready_head < self.ready_tail:
            p = self.ready[self.ready_head & (self.ready_cap - 1)]
            self.ready_head += 1
            Py_DECREF(<object>p)
        self.ready_head = self.ready_batch_end = self.ready_tail = 0

    cdef object yield_now(self):
        cdef Task t = self.begin_block()
        if self.stopping:
            raise TaskKilled("the loop is stopping")
        self.make_ready(t)
        self._leave(t)
        if t.pending_throw is not None:
            exc = t.pending_throw
            t.pending_throw = None
            raise exc
        return True

    cdef object sleep(self, double seconds):
        if seconds <= 0:
            return self.yield_now()
        cdef Task t = self.begin_block()
        self.n_timers += 1
        self.block(t, seconds)
        return True

    cdef int _arm_timer(self, Task t, double timeout) except -1:
        """Wake ``t`` (timed out) after ``timeout`` seconds unless something else wakes it first."""
        cdef Py_ssize_t i
        cdef TimerEntry* bigger
        if t.timer_index >= 0:
            self._stop_timer(t)
        if self.timer_count == self.timer_cap:
            bigger = <TimerEntry*>PyMem_Realloc(self.timers, 2 * self.timer_cap * sizeof(TimerEntry))
            if bigger == NULL:
                raise MemoryError()
            self.timers = bigger
            self.timer_cap *= 2
        if timeout > 1e9:
            timeout = 1e9                       # ~30 years: keeps the ns deadline in range
        uv_update_time(self.loop)
        t.deadline_ns = _clock_ns() + <uint64_t>(timeout * 1e9)
        if t.deadline_ns == 0:
            t.deadline_ns = 1
        i = self.timer_count
        self.timer_count += 1
        self.timers[i].deadline = t.deadline_ns
        self.timers[i].seq = self.timer_seq
        self.timer_seq += 1
        self.timers[i].task = <PyObject*>t
        Py_INCREF(t)
        t.timer_index = i
        if self._timer_up(i) == 0:
            self._arm_uv_timer(t.deadline_ns)       # the new earliest deadline
        return 0

    cdef void _arm_uv_timer(self, uint64_t deadline):
        """Have the hub's libuv timer fire by ``deadline`` (it may already be due earlier)."""
        # libuv counts whole ms of its loop clock (the same monotonic clock, truncated): fire at the
        # first loop ms at or after the deadline, so a timeout never ends early.
        cdef uint64_t due_ms = (deadline + 999999) // 1000000
        cdef uint64_t now_ms
        if _virtual:
            return                              # virtual time: _rounds jumps to the deadline
        if self.timer_due_ms != 0 and self.timer_due_ms <= due_ms:
            return                              # already due by then: no need to re-arm
        now_ms = uv_now(self.loop)
        uv_timer_start(self.timer, _hub_timer_cb, due_ms - now_ms if due_ms > now_ms else 0, 0)
        self.timer_due_ms = due_ms

    cdef void _stop_timer(self, Task t):
        t.deadline_ns = 0
        if t.timer_index < 0:
            return
        self._timer_remove(t.timer_index)
        if self.timer_count == 0 and self.timer_due_ms != 0:
            # No deadline left: the idle timer must not keep the loop alive. (With deadlines left,
            # an earlier due time is harmless: _fire_timers re-arms for the earliest one.)
            uv_timer_stop(self.timer)
            self.timer_due_ms = 0

    cdef void _fire_timers(self):
        """libuv callback: wake every task whose deadline has passed, re-arm for the next one."""
        cdef uint64_t now = _clock_ns()
        cdef Task t
        self.timer_due_ms = 0                   # libuv stopped it before calling us
        while self.timer_count and self.timers[0].deadline <= now:
            t = <Task>self.timers[0].task
            self._timer_remove(0)
            t.deadline_ns = 0
            if t.state == T_BLOCKED:
                t.timed_out = True
                self.wake(t, t.token, None)
            elif t.state == T_NEW:
                self.new_tasks.append(t)        # a repeating task's next run starts now
        if self.timer_count:
            self._arm_uv_timer(self.timers[0].deadline)

    # The heap: timers[0] has the earliest (deadline, seq); every entry's task knows its index.

    cdef void _timer_remove(self, Py_ssize_t i):
        cdef PyObject* gone = self.timers[i].task
        cdef Py_ssize_t last
        self.timer_count -= 1
        last = self.timer_count
        if i != last:
            self.timers[i] = self.timers[last]
            (<Task>self.timers[i].task).timer_index = i
            if self._timer_up(i) == i:
                self._timer_down(i)
        (<Task>gone).timer_index = -1
        Py_DECREF(<object>gone)

    cdef Py_ssize_t _timer_up(self, Py_ssize_t i):
        """Sift entry ``i`` towards the root; returns where it ends."""
        cdef TimerEntry e = self.timers[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if (self.timers[parent].deadline < e.deadline or
                    (self.timers[parent].deadline == e.deadline and self.timers[parent].seq < e.seq)):
                break
            self.timers[i] = self.timers[parent]
            (<Task>self.timers[i].task).timer_index = i
            i = parent
        self.timers[i] = e
        (<Task>e.task).timer_index = i
        return i

    cdef void _timer_down(self, Py_ssize_t i):
        cdef TimerEntry e = self.timers[i]
        cdef Py_ssize_t child, n = self.timer_count
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and (self.timers[child + 1].deadline < self.timers[child].deadline or
                                  (self.timers[child + 1].deadline == self.timers[child].deadline and
                                   self.timers[child + 1].seq < self.timers[child].seq)):
                child += 1
            if (e.deadline < self.timers[child].deadline or
                    (e.deadline == self.timers[child].deadline and e.seq < self.timers[child].seq)):
                break
            self.timers[i] = self.timers[child]
            (<Task>self.timers[i].task).timer_index = i
            i = child
        self.timers[i] = e
        (<Task>e.task).timer_index = i

    # ----- objects to close when their node exits

    cdef void track(self, object obj):
        node = node_of_current(self)
        d = self.tracked.get(node)
        if d is None:
            d = self.tracked[node] = {}
        d[id(obj)] = obj
        obj._splay_node = node

    cdef void untrack(self, object obj):
        node = getattr(obj, "_splay_node", None)
        d = self.tracked.get(node)
        if d is not None:
            d.pop(id(obj), None)
            if not d:
                del self.tracked[node]

    # ----- the loop

    def _main(self):
        """Body of the hub greenlet: rounds until nothing can ever run again, then shutdown."""
        try:
            self._rounds()
        except BaseException as e:
            if self.fatal is None:
                self.fatal = e
        finally:
            self._shutdown()

    cdef Task _next(self):
        """The next task to run, advancing through the round's phases; None when the hub must
        take over (nothing runnable without a blocking poll, or the loop must stop)."""
        cdef Task t
        cdef PyObject* p
        if self.fatal is not None or self.exit_requested or self.callback_error is not None:
            return None
        while True:
            while self.unwinding:                       # killed tasks unwind before anything else
                t = self.unwinding.pop()
                if t.state != T_DEAD:
                    return t
            # phase 0: new threads, first created first (also those created in phase 1)
            while self.new_pos < len(self.new_tasks):
                t = self.new_tasks[self.new_pos]
                self.new_pos += 1
                if t.state == T_NEW and not _held_back(t):
                    return t
            if self.new_pos:
                del self.new_tasks[:self.new_pos]
                self.new_pos = 0
            # phase 1: threads woken before this round began
            while self.ready_head < self.ready_batch_end:
                p = self.ready[self.ready_head & (self.ready_cap - 1)]
                self.ready_head += 1
                t = <Task>p
                Py_DECREF(t)                             # the ring's reference
                if t.state == T_READY and not _held_back(t):
                    return t
            # phase 2: deliver this round's fires
            self.slots.deliver()
            self.n_rounds += 1
            if self.ready_tail == self.ready_batch_end:
                return None                              # phase 3 needs a blocking poll: the hub
            # phase 3 without blocking, then the next round starts with what was woken so far.
            # A loop with no active handle has nothing to report: skip the poll (and its clock read).
            if uv_loop_alive(self.loop):
                uv_run(self.loop, UV_RUN_NOWAIT)
                if self.callback_error is not None:
                    return None
            self.ready_batch_end = self.ready_tail       # the next round's batch

    def _rounds(self):
        """The hub greenlet's loop: run tasks until nothing can ever run again, or a stop."""
        cdef Task t
        while True:
            t = self._next()
            if t is not None:
                self._switch_to(t)
                self.current = None
                continue
            if self.callback_error is not None:
                e = self.callback_error
                self.callback_error = None
                raise e
            if self.fatal is not None or self.exit_requested:
                return
            if _virtual and _has_virtual_work(self):
                _jump_virtual_clock(self)
                continue
            if not uv_loop_alive(self.loop):
                return                                    # nothing can ever run again
            _poll_libuv(self)
            PyErr_CheckSignals()
            if self.ready_head == self.ready_batch_end:  # the batch is done: start the next one
                self.ready_batch_end = self.ready_tail

    def _shutdown(self):
        """Unwind every thread left (their finally blocks run), close tracked objects."""
        cdef Task t
        cdef Worker w
        self.stopping = True
        self.blocked_at_end = []
        for t in self._alive_tasks():
            if t.state == T_BLOCKED:
                self.blocked_at_end.append(t)
        if (_virtual and _stuck_hook is not None and self.blocked_at_end
                and self.fatal is None and not self.exit_requested):
            # A simulation in which no thread can ever run again: report them before they unwind.
            _stuck_hook([(t, t.worker.glet.gr_frame if t.worker is not None else None)
                         for t in self.blocked_at_end])
        try:
            while self.alive_head is not None:
                for t in self._alive_tasks():
                    if t.state == T_DEAD:
                        self._unlist(t)
                    elif t.worker is None:             # never started
                        t.killed = True
                        t.state = T_DEAD
                        self._stop_timer(t)            # a repeating task between two runs
                        self._unlist(t)
                    else:
                        t.killed = True
                        t.pending_throw = TaskKilled("the loop is stopping")
                        self._stop_timer(t)
                        self._switch_to(t)
            for node in list(self.tracked):
                self._close_tracked(node)
            # End the parked workers (resumed without a task, a worker returns) in one chain: each
            # one's parent becomes the next one, so a worker that ends hands control straight to the
            # next (one switch per worker, not two); the last one returns to us.
            idle, self.idle = self.idle, []
            parked = [w for w in idle if PyGreenlet_ACTIVE(w.glet)]
            for i, w in enumerate(parked):
                w.task = None
                if i + 1 < len(parked):
                    PyGreenlet_SetParent(w.glet, (<Worker>parked[i + 1]).glet)
            if parked:
                PyGreenlet_Switch((<Worker>parked[0]).glet, NULL, NULL)
            # let libuv run the close callbacks of what was just closed
            uv_run(self.loop, UV_RUN_NOWAIT)
        finally:
            self.new_tasks = []
            self.new_pos = 0
            self._clear_ready()
            self.unwinding = []
            self.slots.clear()
            while self.timer_count:              # (every thread's timer is stopped by now)
                self._stop_timer(<Task>self.timers[self.timer_count - 1].task)
            self.current = None

    def _close_tracked(self, node):
        d = self.tracked.pop(node, None)
        if not d:
            return
        # Newest first: an object closes before what it was built on (a urpc client before its
        # socket, so that its close can still send what it has queued).
        for obj in reversed(list(d.values())):
            try:
                obj.close()
            except Exception:
                pass

    def run(self):
        """Run rounds until no thread can ever run again, or ``exit()``; re-raise a fatal error."""
        cdef greenlet g
        if self.running:
            raise RuntimeError("events.run() is already running in this thread: start more threads "
                               "with events.thread() instead of calling run() again")
        self.running = True
        self.stopping = False
        self.exit_requested = False
        self.fatal = None
        self.callback_error = None
        g = PyGreenlet_New(self._main, None)
        self.glet = g
        old_term = self._install_signals()
        try:
            PyGreenlet_Switch(g, NULL, NULL)
        finally:
            self._restore_signals(old_term)
            self.running = False
            self.glet = None
            self.stopping = False
            self.exit_requested = False
        if self.fatal is not None:
            e = self.fatal
            self.fatal = None
            raise e

    # ----- exit

    def request_exit(self, node=_NO_EXIT):
        """End the application (``node`` omitted), or only the threads and objects of ``node``."""
        cdef Task t
        if node is _NO_EXIT or not self.running:
            self.exit_requested = True
            return
        for t in self.threads_of(node):    # a snapshot: killing may unlist them
            if t is not self.current:
                self.kill(t)
        self._close_tracked(node)

    def threads_of(self, node):
        """The live threads of ``node`` (not None), oldest first: a new list. Each node of a
        many-node process keeps its own list, so that this costs the node's threads, not the
        process's (100,000 simulated nodes ending one after the other)."""
        cdef NodeTasks nt = self.node_tasks.get(node)
        cdef list out = []
        cdef Task t = nt.head if nt is not None else None
        while t is not None:
            out.append(t)
            t = t.node_next
        return out

    # ----- killing

    cpdef object kill(self, Task t):
        """Kill ``t``: True, or None when it is already dead. Killing oneself does not return."""
        if t.state == T_DEAD or t.killed:
            return None
        t.killed = True
        self.n_killed += 1
        if t is self.current:
            raise TaskKilled("killed by itself")
        if t.state == T_NEW:
            t.state = T_DEAD
            self._stop_timer(t)                 # a repeating task between two runs
            self._unlist(t)
            return True
        t.pending_throw = TaskKilled("killed")
        if t.state == T_READY and _frozen and t in _frozen.get(t.node, ()):
            (<list>_frozen[t.node]).remove(t)    # held back by a frozen node: unwind it now
            self.unwinding.append(t)
        if t.state == T_BLOCKED:
            t.token += 1                      # whatever it waited for can no longer wake it
            self._stop_timer(t)
            t.state = T_READY
            self.unwinding.append(t)
        return True

    # ----- signals: Ctrl-C and SIGTERM end the loop (CORE-NOTES, pitfall 3)

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        r, w = _pysocket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        try:
            self.old_wakeup_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        except ValueError:
            r.close()
            w.close()
            return None
        self.sig_sock_r, self.sig_sock_w = r, w
        self.sig_poll = <uv_poll_t*>malloc(sizeof(uv_poll_t))
        uv_poll_init(self.loop, self.sig_poll, r.fileno())
        self.sig_poll.data = <void*>self
        uv_poll_start(self.sig_poll, UV_READABLE, _signal_cb)
        uv_unref(<uv_handle_t*>self.sig_poll)
        old_term = None
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            old_term = signal.signal(signal.SIGTERM, _raise_sigterm)
        return old_term

    def _restore_signals(self, old_term):
        if self.sig_poll != NULL:
            self.sig_poll.data = NULL
            uv_close(<uv_handle_t*>self.sig_poll, _free_handle_cb)
            self.sig_poll = NULL
            uv_run(self.loop, UV_RUN_NOWAIT)
            try:
                signal.set_wakeup_fd(self.old_wakeup_fd if self.old_wakeup_fd is not None else -1)
            except (ValueError, TypeError):
                pass
            self.sig_sock_r.close()
            self.sig_sock_w.close()
            self.sig_sock_r = self.sig_sock_w = None
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)

    def _after_fork(self):
        """In a forked child: the epoll fd is shared with the parent (CORE-NOTES, pitfall 9)."""
        uv_loop_fork(self.loop)

    # ----- introspection

    def stats(self):
        """Counters as a dict (``events.stats()`` formats them)."""
        cdef Task t
        cdef Py_ssize_t blocked = 0
        for t in self._alive_tasks():
            if t.state == T_BLOCKED:
                blocked += 1
        return {
            "alive": self.n_alive,
            "created": self.n_created,
            "killed": self.n_killed,
            "rounds": self.n_rounds,
            "sleeps": self.n_timers,
            "blocked": blocked,
            "ready": self.ready_tail - self.ready_head
                     + len(self.new_tasks) - self.new_pos,
            "waiting_events": self.slots.n_waiting(),
            "event_names": len(self.slots.slots),
            "idle_workers": len(self.idle),
        }

    @property
    def running_task(self):
        return self.current

    def __dealloc__(self):
        # The loop is kept for the thread's lifetime; closing it needs every handle closed.
        if self.loop != NULL:
            self.loop.data = NULL
        if self.ready != NULL:
            self._clear_ready()
            PyMem_Free(self.ready)
            self.ready = NULL
        if self.timer != NULL:
            self.timer.data = NULL             # the loop (and this handle) outlive the hub
        if self.timers != NULL:
            while self.timer_count:
                self._timer_remove(self.timer_count - 1)
            PyMem_Free(self.timers)
            self.timers = NULL


# ------------------------------------------------------------------ per-thread hubs, module API

cdef int _jump_virtual_clock(Hub hub) except -1:
    """Virtual time, every thread blocked: move the clock to the earliest deadline or event of the
    event source, run the source's events due then (in their own order), then wake the threads
    due then (in arming order, as with real timers). A function, not a Hub method, so the Hub's C
    layout stays as other modules compiled it. With a limit (``set_virtual_limit``) the clock stops
    there and the run ends when the next deadline or event lies beyond it."""
    global _virtual_ns, _virtual_limit_reached
    cdef uint64_t event_due = 0
    cdef bint has_event = _next_event != NULL and _next_event(&event_due)
    cdef uint64_t due = hub.timers[0].deadline if hub.timer_count else event_due
    if has_event and event_due < due:
        due = event_due
    if _virtual_limit_ns and due > _virtual_limit_ns:
        if _virtual_limit_ns > _virtual_ns:
            _virtual_ns = _virtual_limit_ns
        _virtual_limit_reached = True
        hub.exit_requested = True                # the run ends here, as after exit()
        return 0
    if due > _virtual_ns:
        _virtual_ns = due
    if has_event and event_due <= _virtual_ns:
        _run_events(_virtual_ns)
    hub._fire_timers()
    if hub.ready_head == hub.ready_batch_end:
        hub.ready_batch_end = hub.ready_tail


cdef Hub _main_hub = None
cdef unsigned long _main_ident = 0
cdef dict _hubs = {}


cdef Hub get_hub():
    global _main_hub, _main_ident
    cdef unsigned long ident = PyThread_get_thread_ident()
    if ident == _main_ident and _main_hub is not None:
        return _main_hub
    cdef Hub hub = _hubs.get(ident)
    if hub is None:
        hub = Hub()
        _hubs[ident] = hub
        if threading.current_thread() is threading.main_thread():
            _main_hub = hub
            _main_ident = ident
    return hub


cdef Hub current_hub_or_raise(str what):
    cdef Hub hub = get_hub()
    if hub.current is None:
        raise NotInThread(f"{what} blocks, so it must run inside a SPLAY thread: call it from a "
                          f"function started by events.run(), events.thread() or events.periodic()")
    return hub


def _reinit_after_fork():
    global _main_hub, _main_ident
    cdef Hub hub
    ident = PyThread_get_thread_ident()
    keep = _hubs.get(ident)
    _hubs.clear()
    if keep is not None:
        hub = keep
        hub._after_fork()
        _hubs[ident] = hub
        _main_hub = hub
        _main_ident = ident
    else:
        _main_hub = None
        _main_ident = 0


os.register_at_fork(after_in_child=_reinit_after_fork)


def hub():
    """The hub of the calling OS thread."""
    return get_hub()


def spawn(fn, *args):
    """Create a thread running ``fn(*args)``; it starts at the next scheduling point."""
    return get_hub().spawn(fn, args)


@cython.binding(False)
def thread(f):
    """Create a thread running ``f()`` (or one per function of a list); it starts at the next
    scheduling point. Returns the :class:`Task` (or the list of them)."""
    cdef Hub h = get_hub()
    if isinstance(f, (list, tuple)):
        return [h.spawn(g, ()) for g in f]
    return h.spawn(f, ())


def spawn_repeating(delay, fn):
    """Create a thread that runs ``fn()`` after ``delay`` seconds, then again after each delay
    ``fn`` returns, until ``fn`` returns None (or raises, or the thread is killed). Each run starts
    on a fresh stack; between runs the thread is suspended but holds no greenlet (a parked one
    costs ~8 KB): ``events.periodic`` is one. Returns the :class:`Task`."""
    cdef Hub h = get_hub()
    cdef Task t = h.spawn(fn, ())
    h.new_tasks.pop()                           # not now (spawn appended it): at its deadline
    t.repeating = True
    h._arm_timer(t, float(delay))
    return t


def spawn_in_node(node, fn, *args):
    """Create a thread that belongs to ``node`` (the per-node identity of ``--in-process`` runs)."""
    cdef Hub h = get_hub()
    cdef Task t = h.spawn(fn, args)
    if t.node is not node:
        h._node_unlink(t)
        t.node = node
        if node is not None:
            h._node_link(t)
    return t


def freeze_node(node):
    """Run none of ``node``'s threads until :func:`thaw_node` (a paused ``--in-process`` node):
    those that become runnable meanwhile -- woken by a timer, a message, an event, or new -- are
    held back. A running thread stops at its next blocking call or yield."""
    _frozen.setdefault(node, [])


def thaw_node(node):
    """Let ``node``'s threads run again, those held back first (in the order they were held)."""
    cdef Hub h = get_hub()
    cdef Task t
    for t in _frozen.pop(node, ()):
        if t.state == T_NEW:
            h.new_tasks.append(t)
        elif t.state == T_READY:
            h._push_ready(t)


def frozen(node):
    """True while ``node`` is frozen (:func:`freeze_node`)."""
    return node in _frozen


def set_default_node(node):
    """The node of threads created outside any thread (before ``run``)."""
    get_hub().default_node = node


def current():
    """The running thread, or None outside threads."""
    return get_hub().current


def current_node():
    """The node of the running thread (None in single-node processes)."""
    cdef Hub h = get_hub()
    if h.current is not None:
        return h.current.node
    return h.default_node


@cython.binding(False)
def sleep(seconds):
    """Suspend the calling thread for ``seconds``; returns True. ``0`` or less is a plain yield."""
    cdef Hub h = get_hub()
    if h.current is None:
        raise NotInThread("events.sleep() blocks, so it must run inside a SPLAY thread: call it "
                          "from a function started by events.run(), events.thread() or events.periodic()")
    return h.sleep(float(seconds))


@cython.binding(False)
def yield_():
    """Give the other threads a turn; returns True."""
    cdef Hub h = get_hub()
    if h.current is None:
        raise NotInThread("events.yield_() must run inside a SPLAY thread: call it from a function "
                          "started by events.run(), events.thread() or events.periodic()")
    return h.yield_now()


@cython.binding(False)
def fire(name, *args):
    """Fire event ``name``: True, or False when its slot is already taken this round."""
    return get_hub().slots.fire(name, args)


@cython.binding(False)
def wait(name, timeout=None):
    """Wait for a fire of ``name``: its args, or with a timeout ``(True, *args)`` / ``(False, "timeout")``."""
    cdef Hub h = get_hub()
    cdef Task t
    if h.current is None:
        raise NotInThread("events.wait() blocks, so it must run inside a SPLAY thread: call it from "
                          "a function started by events.run(), events.thread() or events.periodic()")
    if timeout is None:
        return h.slots.wait(name, -1.0)
    t = h.current
    args = h.slots.wait(name, max(0.0, float(timeout)))
    if t.timed_out:
        return (False, "timeout")
    return (True,) + args


def kill(Task t):
    """Kill one thread: True, or None if it is already dead."""
    return t.hub.kill(t)


def run_loop():
    """Run the calling thread's hub (``events.run`` creates the main threads first)."""
    get_hub().run()


def uv_version_string():
    """The version of the libuv the core runs on, e.g. ``"1.44.2"``."""
    cdef unsigned int v = uv_version()
    return f"{(v >> 16) & 0xff}.{(v >> 8) & 0xff}.{v & 0xff}"

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

A thread that blocks switches directly to the next runnable thread (``Hub._next``); only when
nothing can run without a blocking poll does control go to the hub greenlet, which polls.
libuv callbacks never switch greenlets: they only put tasks on the ready list (``Hub.wake``), so no
Python exception ever has to cross libuv's C frames. Every wait carries a *token* (``Task.token``)
and a waker must present it, so a late callback can never wake a task for the wrong reason.
"""
from cpython.ref cimport PyObject
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t
from libc.math cimport ceil

from splayc.uv cimport *
from splayc.greenlet_capi cimport (greenlet, _PyGreenlet_API, PyGreenlet_Import,
                                   PyGreenlet_GetCurrent, PyGreenlet_New, PyGreenlet_Switch,
                                   PyGreenlet_Throw, PyGreenlet_SetParent, PyGreenlet_ACTIVE,
                                   PyExc_GreenletExit)

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1
    unsigned long PyThread_get_thread_ident()

cdef extern from "small_arena.h":
    int splay_install_small_arena()

import contextvars
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

cdef object _copy_context = contextvars.copy_context
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

cdef class Worker(greenlet):
    """A greenlet that runs tasks one after the other; parked in ``Hub.idle`` between tasks."""

    def run(self):
        cdef Hub hub = self.hub
        cdef Task t, nxt
        while True:
            t = self.task
            try:
                if t.args:
                    t.result = t.context.run(t.fn, *t.args)
                else:
                    t.result = t.context.run(t.fn)
            except TaskKilled:
                pass
            except GreenletExit:
                # Thrown by greenlet itself (never by us): this greenlet is being destroyed.
                self._finish(t)
                raise
            except (KeyboardInterrupt, SystemExit) as e:
                # Ends the whole loop; events.run() re-raises it (after unwinding the threads).
                if hub.fatal is None:
                    hub.fatal = e
            except BaseException as e:
                t.errored = True
                t.exception = e
                _report_error(t, e)
            self._finish(t)
            if hub.stopping or len(hub.idle) >= MAX_IDLE_WORKERS:
                self._close_timer()
                hub.current = None
                return None          # the greenlet ends; control goes back to the hub
            nxt = hub._next()
            if nxt is not None and nxt.worker is None:
                # A new thread: run it right here, no switch needed.
                self.task = nxt
                nxt.worker = self
                hub.current = nxt
                nxt.state = T_RUNNING
                continue
            hub.idle.append(self)
            try:
                if nxt is None:
                    hub.current = None
                    PyGreenlet_Switch(hub.glet, NULL, NULL)
                else:
                    hub._switch_to(nxt)
            except GreenletExit:
                self._close_timer()
                return None
            # resumed by _switch_to() with a new task in self.task, or by the hub's shutdown
            # with none: then end by returning (cheaper than being thrown GreenletExit)
            if self.task is None:
                self._close_timer()
                return None

    cdef void _finish(self, Task t):
        self.task = None
        t.worker = None
        if t.deadline_ns:
            uv_timer_stop(self.timer)
            t.deadline_ns = 0
        t._on_death()

    cdef void _close_timer(self):
        if self.timer != NULL:
            self.timer.data = NULL
            uv_close(<uv_handle_t*>self.timer, _free_handle_cb)
            self.timer = NULL

    def __dealloc__(self):
        if self.timer != NULL:
            self.timer.data = NULL
            uv_close(<uv_handle_t*>self.timer, _free_handle_cb)
            self.timer = NULL


cdef void _free_handle_cb(uv_handle_t* handle) noexcept with gil:
    free(handle)


# ----------------------------------------------------------------------------------------- tasks

cdef class Task:
    """A SPLAY thread. Returned by ``events.thread``; give it to ``kill``, ``dead``, ``status``."""

    def __cinit__(self):
        self.held_locks = None
        self.joiners = None

    cdef void _on_death(self):
        """Bookkeeping when the thread's function has returned or raised."""
        cdef Hub hub = self.hub
        cdef Task j
        self.state = T_DEAD
        hub.alive.discard(self)
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

cdef class EventSlots:
    """SPLAY's named events: one pending fire per name per round, delivered to every waiter."""

    def __cinit__(self, Hub hub):
        self.hub = hub
        self.fired = {}
        self.spare = {}
        self.waiters = {}

    cdef bint fire(self, object name, tuple args):
        if name in self.fired:
            return False
        self.fired[name] = args
        return True

    cdef object wait(self, object name, double timeout):
        cdef Hub hub = self.hub
        cdef Task t = hub.begin_block()
        cdef list ws = self.waiters.get(name)
        cdef tuple entry = (t, t.token)
        if ws is None:
            self.waiters[name] = [entry]
        else:
            ws.append(entry)
        try:
            return hub.block(t, timeout)
        finally:
            # Woken by a fire: deliver() already took the whole list. Still registered after a
            # timeout or a kill: remove the entry, so waiting in a loop with a timeout on a name
            # that never fires does not grow the table.
            ws = self.waiters.get(name)
            if ws is not None:
                try:
                    ws.remove(entry)
                except ValueError:
                    pass
                if not ws:
                    del self.waiters[name]

    cdef void deliver(self):
        cdef Hub hub = self.hub
        cdef list ws
        cdef tuple entry
        cdef dict fired = self.fired
        if not fired:
            return
        # Two dicts take turns, so a round allocates none.
        self.fired = self.spare
        for name, args in fired.items():
            ws = self.waiters.pop(name, None)
            if ws is None:
                continue          # nobody waits: the fire is dropped at the end of the round
            for entry in ws:
                hub.wake(<Task>entry[0], entry[1], args)
        fired.clear()
        self.spare = fired


# -------------------------------------------------------------------------------------- timers

cdef void _timer_cb(uv_timer_t* timer) noexcept with gil:
    cdef Task t
    cdef uint64_t now
    if timer.data == NULL:
        return
    t = <Task>timer.data
    try:
        now = uv_hrtime()
        if t.deadline_ns and now < t.deadline_ns:
            # libuv's clock is in whole ms: never wake early (CORE-NOTES, pitfall 5).
            uv_timer_start(timer, _timer_cb, 1, 0)
            return
        t.deadline_ns = 0
        if t.state == T_BLOCKED:
            t.timed_out = True
            t.hub.wake(t, t.token, None)
    except BaseException as e:
        t.hub.callback_error = e


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
        self.batch = []
        self.ready_next = []
        self.unwinding = []
        self.idle = []
        self.alive = set()
        self.slots = EventSlots(self)
        self.tracked = {}
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
        t.context = _copy_context()
        t.node = self.current.node if self.current is not None else self.default_node
        t.state = T_NEW
        self.new_tasks.append(t)
        self.alive.add(t)
        self.n_created += 1
        return t

    cdef Worker _get_worker(self):
        cdef Worker w
        if self.idle:
            return <Worker>self.idle.pop()
        w = Worker.__new__(Worker)
        PyGreenlet_SetParent(w, self.glet)
        w.hub = self
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
        PyGreenlet_Switch(w, NULL, NULL)
        return 0

    cdef int _leave(self, Task t) except -1:
        """The running task ``t`` stops (it blocked or yielded): go straight to the next runnable
        task, or to the hub greenlet when only a blocking poll can make progress."""
        cdef Task nxt = self._next()
        if nxt is not None and nxt.worker is None and not self.idle:
            # A new thread needs a brand-new greenlet. greenlet starts it with the recursion depth
            # of the greenlet that switches to it first, so chains of starts from worker to worker
            # would end in RecursionError: let the hub (depth ~0) start it.
            self.new_pos -= 1
            nxt = None
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
            t.deadline_ns = 0
            if t.worker is not None and t.worker.timer != NULL:
                uv_timer_stop(t.worker.timer)
        self.ready_next.append(t)

    cdef void make_ready(self, Task t):
        t.state = T_READY
        self.ready_next.append(t)

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

    cdef void _arm_timer(self, Task t, double timeout) except *:
        cdef Worker w = t.worker
        cdef int err
        if w.timer == NULL:
            w.timer = <uv_timer_t*>malloc(sizeof(uv_timer_t))
            if w.timer == NULL:
                raise MemoryError()
            err = uv_timer_init(self.loop, w.timer)
            if err < 0:
                free(w.timer)
                w.timer = NULL
                raise OSError(f"libuv: cannot create a timer: {uv_strerror(err).decode()}")
        w.timer.data = <void*>t
        uv_update_time(self.loop)
        t.deadline_ns = uv_hrtime() + <uint64_t>(timeout * 1e9)
        if t.deadline_ns == 0:
            t.deadline_ns = 1
        uv_timer_start(w.timer, _timer_cb, <uint64_t>ceil(timeout * 1000.0), 0)

    cdef void _stop_timer(self, Task t):
        if t.deadline_ns and t.worker is not None and t.worker.timer != NULL:
            uv_timer_stop(t.worker.timer)
        t.deadline_ns = 0

    # ----- objects to close when their node exits

    cdef void track(self, object obj):
        node = self.current.node if self.current is not None else self.default_node
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
        cdef list tmp
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
                if t.state == T_NEW:
                    return t
            if self.new_pos:
                del self.new_tasks[:self.new_pos]
                self.new_pos = 0
            # phase 1: threads woken before this round began
            while self.batch_pos < len(self.batch):
                t = self.batch[self.batch_pos]
                self.batch_pos += 1
                if t.state == T_READY:
                    return t
            self.batch.clear()
            self.batch_pos = 0
            # phase 2: deliver this round's fires
            self.slots.deliver()
            self.n_rounds += 1
            if not self.ready_next:
                return None                              # phase 3 needs a blocking poll: the hub
            # phase 3 without blocking, then the next round starts with what was woken so far
            uv_run(self.loop, UV_RUN_NOWAIT)
            if self.callback_error is not None:
                return None
            tmp = self.batch
            self.batch = self.ready_next
            self.ready_next = tmp

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
            if not uv_loop_alive(self.loop):
                return                                    # nothing can ever run again
            # Look without blocking first: on loopback the answer is often already there, and
            # releasing and taking back the GIL costs more than this poll (~2k instructions).
            uv_run(self.loop, UV_RUN_NOWAIT)
            if not self.ready_next and self.callback_error is None:
                if self.release_gil:
                    with nogil:
                        uv_run(self.loop, UV_RUN_ONCE)
                else:
                    uv_run(self.loop, UV_RUN_ONCE)
            PyErr_CheckSignals()
            if self.ready_next and not self.batch:
                tmp = self.batch
                self.batch = self.ready_next
                self.ready_next = tmp

    def _shutdown(self):
        """Unwind every thread left (their finally blocks run), close tracked objects."""
        cdef Task t
        cdef Worker w
        self.stopping = True
        self.blocked_at_end = []
        for t in self.alive:
            if t.state == T_BLOCKED:
                self.blocked_at_end.append(t)
        try:
            while self.alive:
                for t in list(self.alive):
                    if t.state == T_DEAD:
                        self.alive.discard(t)
                    elif t.worker is None:             # never started
                        t.killed = True
                        t.state = T_DEAD
                        self.alive.discard(t)
                    else:
                        t.killed = True
                        t.pending_throw = TaskKilled("the loop is stopping")
                        self._stop_timer(t)
                        self._switch_to(t)
            for node in list(self.tracked):
                self._close_tracked(node)
            idle, self.idle = self.idle, []
            for w in idle:
                if PyGreenlet_ACTIVE(w):
                    w.task = None
                    PyGreenlet_Switch(w, NULL, NULL)      # it returns, back to us
            # let libuv run the close callbacks of what was just closed
            uv_run(self.loop, UV_RUN_NOWAIT)
        finally:
            self.new_tasks = []
            self.new_pos = 0
            self.batch = []
            self.batch_pos = 0
            self.ready_next = []
            self.unwinding = []
            self.slots.fired.clear()
            self.slots.waiters.clear()
            self.current = None

    def _close_tracked(self, node):
        d = self.tracked.pop(node, None)
        if not d:
            return
        for obj in list(d.values()):
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
        for t in list(self.alive):
            if t.node is node and t is not self.current:
                self.kill(t)
        self._close_tracked(node)

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
            self.alive.discard(t)
            return True
        t.pending_throw = TaskKilled("killed")
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
        for t in self.alive:
            if t.state == T_BLOCKED:
                blocked += 1
        return {
            "alive": len(self.alive),
            "created": self.n_created,
            "killed": self.n_killed,
            "rounds": self.n_rounds,
            "sleeps": self.n_timers,
            "blocked": blocked,
            "ready": len(self.ready_next) + len(self.batch) - self.batch_pos
                     + len(self.new_tasks) - self.new_pos,
            "waiting_events": sum(len(w) for w in self.slots.waiters.values()),
            "idle_workers": len(self.idle),
        }

    @property
    def running_task(self):
        return self.current

    def __dealloc__(self):
        # The loop is kept for the thread's lifetime; closing it needs every handle closed.
        if self.loop != NULL:
            self.loop.data = NULL


# ------------------------------------------------------------------ per-thread hubs, module API

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


def spawn_in_node(node, fn, *args):
    """Create a thread that belongs to ``node`` (the per-node identity of ``--in-process`` runs)."""
    cdef Task t = get_hub().spawn(fn, args)
    t.node = node
    return t


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


def sleep(seconds):
    """Suspend the calling thread for ``seconds``; returns True. ``0`` or less is a plain yield."""
    cdef Hub h = get_hub()
    if h.current is None:
        raise NotInThread("events.sleep() blocks, so it must run inside a SPLAY thread: call it "
                          "from a function started by events.run(), events.thread() or events.periodic()")
    return h.sleep(float(seconds))


def yield_():
    """Give the other threads a turn; returns True."""
    cdef Hub h = get_hub()
    if h.current is None:
        raise NotInThread("events.yield_() must run inside a SPLAY thread: call it from a function "
                          "started by events.run(), events.thread() or events.periodic()")
    return h.yield_now()


def fire(name, *args):
    """Fire event ``name``: True, or False when its slot is already taken this round."""
    return get_hub().slots.fire(name, args)


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

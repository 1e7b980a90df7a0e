# The hub: SPLAY threads (Tasks) run on reusable Worker greenlets, switched by one hub greenlet that
# drives the libuv loop. This .pxd is the internal interface the other core modules (tcp, udp,
# accounting ...) use; it is not public API.
#
# Blocking protocol, for any core module that makes a task wait on something:
#
#     cdef Hub hub = get_hub()
#     cdef Task t = hub.begin_block()        # raises NotInThread outside a SPLAY thread; bumps t.token
#     cdef unsigned long tok = t.token       # remember who to wake, and for which wait
#     ... register (t, tok) with the thing that will complete (handle.data / request context) ...
#     value = hub.block(t, timeout)          # timeout < 0: no timeout. Switches to the hub.
#     if t.timed_out: ...                    # the per-task timer ended the wait; value is None
#
#   and from the libuv callback (callbacks never switch greenlets, they only enqueue):
#
#     hub.wake(t, tok, value)                # ignored unless t is still blocked on that very wait
#
#   block() raises the task's pending exception if it was killed meanwhile (TaskKilled): clean up
#   with try/finally. A late callback carrying an old token is a no-op, so never guard it otherwise.
#
#   kill() of a blocked task only marks it (Task.killed) and queues it: its finally blocks run at
#   the next scheduling point. A waker that holds a resource for a task (a reader slot, a lock
#   place) should check Task.killed and give the resource back at once.
#
# Liveness: events.run() returns when nothing can ever run again, i.e. no task is runnable and
# uv_loop_alive() is 0. So a handle must keep the loop alive (be uv_ref'd / active) only while a
# task waits on it; uv_unref idle handles. Objects that must be closed when their node exits
# register with hub.track(obj) (obj.close() is then called at exit) and hub.untrack(obj) on close;
# track() records the node in obj._splay_node, so a cdef class needs `cdef public object
# _splay_node`.
#
# Every module that cimports this file depends on its layout: after changing it, rebuild them all
# (python setup.py build_ext --inplace), or they fail at import with "Hub size changed".
cimport cython
from libc.stdint cimport uint64_t
from cpython.ref cimport PyObject
from cpython.list cimport PyList_GET_SIZE
from splayc.uv cimport uv_loop_t, uv_timer_t, uv_poll_t, uv_stop
from splayc.greenlet_capi cimport greenlet

ctypedef struct TimerEntry:     # one entry of the hub's timer heap
    uint64_t deadline           # absolute uv_hrtime() ns
    uint64_t seq                # arming order: equal deadlines fire first armed, first woken
    PyObject* task              # owned reference to the blocked Task


cdef enum TaskState:
    T_NEW = 0        # created, waits for its first turn
    T_READY = 1      # woken, waits in the ready list
    T_RUNNING = 2
    T_BLOCKED = 3    # switched to the hub, waits for a wake
    T_DEAD = 4


@cython.final
cdef class Worker:
    cdef greenlet glet           # runs Worker._loop; a plain greenlet, not a subclass (see hub.pyx)
    cdef Hub hub
    cdef Task task               # the task this worker runs now (None while parked)

    cdef object _loop(self)
    cdef void _finish(self, Task t)


@cython.final
cdef class Task:
    cdef readonly Hub hub
    cdef readonly unsigned long id
    cdef public object name
    cdef object fn
    cdef tuple args
    cdef object context          # contextvars.Context copied at spawn
    cdef readonly object node    # per-node identity (job, logger, accounting), inherited at spawn
    cdef TaskState state
    cdef readonly unsigned long token   # wake token: bumped at every begin_block()
    cdef readonly bint timed_out        # the last block() ended by its timeout
    cdef readonly bint killed           # kill() was called: dead for the API, may still unwind
    cdef bint errored                   # ended by an uncaught exception
    cdef object wake_value
    cdef object pending_throw
    cdef public object exception        # the uncaught exception that ended it, if any
    cdef public object result           # the return value of fn
    cdef Worker worker
    cdef uint64_t deadline_ns           # absolute uv_hrtime() deadline of the running timer (0: none)
    cdef Py_ssize_t timer_index         # its position in Hub.timers (-1: none)
    cdef list held_locks                # Locks held, for secure release at death
    cdef Task alive_prev, alive_next    # Hub's list of live tasks (intrusive: no set add/discard)
    cdef bint listed                    # in that list
    cdef NodeTasks node_tasks           # its node's list of live tasks (None: node is None)
    cdef Task node_prev, node_next      # links in that list
    cdef list joiners                   # (Task, token) waiting for this task's end
    cdef bint repeating                 # spawn_repeating(): fn runs again after the delay it returns

    cdef void _on_death(self)


@cython.final
cdef class NodeTasks:           # the live tasks of one node of a many-node process, oldest first
    cdef Task head, tail        # (so that one node's exit need not walk every node's threads)


@cython.final
cdef class Slot:                # the state of one event name (see EventSlots in hub.pyx)
    cdef object args         # the pending fire's args tuple this round (None: no pending fire)
    cdef object waiters      # None, the waiting Task, or a list of them (in wait order)


@cython.final
cdef class EventSlots:
    cdef Hub hub
    cdef dict slots          # name -> Slot
    cdef Py_ssize_t sweep_at # sweep the empty Slots when len(slots) exceeds this
    cdef PyObject** fired    # Slots fired this round, in fire order (owned references)
    cdef Py_ssize_t n_fired, fired_cap

    cdef Slot _slot(self, object name)
    cdef bint fire(self, object name, tuple args) except -1
    cdef object wait(self, object name, double timeout)
    cdef int _forget(self, object name, Task t) except -1
    cdef void deliver(self)
    cdef void clear(self)
    cdef Py_ssize_t n_waiting(self)


@cython.final
cdef class Hub:
    cdef uv_loop_t* loop
    cdef greenlet glet               # the hub greenlet of the current run() (None when not running)
    cdef greenlet runner             # the greenlet that called run()
    cdef readonly Task current       # the task running now (None: the hub itself or outside run)
    cdef list new_tasks              # phase 0, FIFO; tasks spawned during the phase run in it too
    cdef Py_ssize_t new_pos          # new_tasks[:new_pos] already started
    # Woken tasks, in wake order: a ring of owned Task references. Positions only grow (index =
    # position & (ready_cap - 1)). [ready_head, ready_batch_end) is phase 1's batch (woken before
    # this round began); [ready_batch_end, ready_tail) was woken during this round (the next batch).
    cdef PyObject** ready
    cdef Py_ssize_t ready_cap        # a power of two
    cdef Py_ssize_t ready_head
    cdef Py_ssize_t ready_batch_end
    cdef Py_ssize_t ready_tail
    # Timeouts (sleep, wait, socket timeouts ...): one libuv timer for the whole hub, due at the
    # earliest deadline of a binary min-heap of TimerEntry (one per blocked task with a timeout).
    cdef uv_timer_t* timer
    cdef uint64_t timer_due_ms       # loop ms at which `timer` is armed to fire (0: stopped)
    cdef TimerEntry* timers
    cdef Py_ssize_t timer_count, timer_cap
    cdef uint64_t timer_seq
    cdef list unwinding              # killed tasks to unwind before anything else
    cdef list idle                   # parked Workers for reuse
    # Every task not yet dead, oldest first: the hub owns them (see CORE-NOTES 7). A doubly-linked
    # list through Task.alive_prev/alive_next.
    cdef Task alive_head, alive_tail
    cdef Py_ssize_t n_alive
    cdef dict node_tasks             # node -> NodeTasks, for the nodes that have live tasks
    cdef readonly EventSlots slots
    cdef dict tracked                # node -> {id(obj): obj} closeables to close at exit, newest first
    cdef object fatal                # KeyboardInterrupt/SystemExit to re-raise from run()
    cdef object callback_error       # an exception raised inside a libuv callback
    cdef bint running
    cdef bint stopping
    cdef bint exit_requested
    cdef public object default_node  # node of threads created outside any thread
    cdef public list blocked_at_end  # threads still blocked when the last run() ended (deadlock report)
    cdef bint release_gil
    # statistics
    cdef readonly unsigned long n_created, n_killed, n_rounds, n_timers, n_io_waits
    cdef unsigned long next_id
    # signals
    cdef uv_poll_t* sig_poll
    cdef object sig_sock_r, sig_sock_w, old_wakeup_fd
    # One watched task: when ``suspend_watch`` is about to suspend (block or yield), the hub calls
    # ``suspend_callback()`` first, once. The rpcq server runs a call inside its reader thread and
    # starts another reader only if the call suspends (rpc_fast.RpcqServerConnection).
    cdef Task suspend_watch
    cdef object suspend_callback

    cdef Task spawn(self, object fn, tuple args)
    cdef void _unlist(self, Task t)
    cdef void _node_link(self, Task t)
    cdef void _node_unlink(self, Task t)
    cdef list _alive_tasks(self)
    cdef Task begin_block(self)
    cdef object block(self, Task t, double timeout)
    cdef void wake(self, Task t, unsigned long token, object value)
    cdef void make_ready(self, Task t)
    cdef int _push_ready(self, Task t) except -1
    cdef void _clear_ready(self)
    cdef object yield_now(self)
    cdef object sleep(self, double seconds)
    cdef void track(self, object obj)
    cdef void untrack(self, object obj)
    cdef int _switch_to(self, Task t) except -1
    cdef int _leave(self, Task t) except -1
    cdef Task _next(self)
    cdef Worker _get_worker(self)
    cdef int _arm_timer(self, Task t, double timeout) except -1
    cdef void _stop_timer(self, Task t)
    cdef void _arm_uv_timer(self, uint64_t deadline)
    cdef void _timer_remove(self, Py_ssize_t i)
    cdef Py_ssize_t _timer_up(self, Py_ssize_t i)
    cdef void _timer_down(self, Py_ssize_t i)
    cdef void _fire_timers(self)
    cpdef object kill(self, Task t)


cdef Hub get_hub()
cdef Hub current_hub_or_raise(str what)


# The node of the running thread, or the hub's default node outside any thread (what
# events.current_node() answers; --in-process nodes are told apart by it).
cdef inline object node_of_current(Hub hub):
    return hub.current.node if hub.current is not None else hub.default_node


# A libuv timer callback that wakes or starts a thread must say so to the poll it runs in.
# libuv before 1.45 (Debian 12 has 1.44) runs the timers already due at the *start* of
# uv_run(UV_RUN_ONCE), then blocks in epoll with a timeout computed as if their callbacks had done
# nothing: the thread a timer made runnable there waited for the next I/O event or deadline --
# forever when there was none (a thread's sleep ending just after the non-blocking look of
# _poll_libuv: a hang seen under load). Such a callback takes a mark before its work and calls
# stop_poll_if_runnable after it: uv_stop() makes this uv_run poll without blocking (libuv clears
# the flag when uv_run returns; later libuv versions need none of this, and it costs them nothing).
cdef inline Py_ssize_t runnable_mark(Hub hub) noexcept:
    return hub.ready_tail + PyList_GET_SIZE(hub.new_tasks)


cdef inline void stop_poll_if_runnable(Hub hub, Py_ssize_t mark) noexcept:
    if hub.ready_tail + PyList_GET_SIZE(hub.new_tasks) != mark:
        uv_stop(hub.loop)


# Virtual time (splay.sim): the clock every deadline is measured on, in ns -- the virtual clock
# while a simulation runs, else uv_hrtime(). Socket timeouts, RPC deadlines and link pacing use it.
cdef uint64_t clock_ns() noexcept

# A source of timed events on the virtual clock (the simulated network, splayc/simnet.pyx):
# ``next_fn(&due)`` sets ``due`` to the time (ns) of its earliest event and returns True, or returns
# False when it has none; ``run_fn(now)`` runs every event due at or before ``now``. When every
# thread is blocked the hub jumps to the earliest of that and its timers; at one instant, the
# source's events run before the threads' timers fire.
ctypedef bint (*next_event_fn)(uint64_t* due) noexcept
ctypedef int (*run_events_fn)(uint64_t now) except -1
cdef void set_event_source(next_event_fn next_fn, run_events_fn run_fn) noexcept

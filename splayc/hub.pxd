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
from libc.stdint cimport uint64_t
from splayc.uv cimport uv_loop_t, uv_timer_t, uv_poll_t
from splayc.greenlet_capi cimport greenlet

cdef enum TaskState:
    T_NEW = 0        # created, waits for its first turn
    T_READY = 1      # woken, waits in the ready list
    T_RUNNING = 2
    T_BLOCKED = 3    # switched to the hub, waits for a wake
    T_DEAD = 4


cdef class Worker(greenlet):
    cdef Hub hub
    cdef Task task               # the task this worker runs now (None while parked)
    cdef uv_timer_t* timer       # per-worker timer for sleep and block timeouts (lazily created)

    cdef void _finish(self, Task t)
    cdef void _close_timer(self)


cdef class Task:
    cdef readonly Hub hub
    cdef readonly unsigned long id
    cdef public object name
    cdef object fn
    cdef tuple args
    cdef object context          # contextvars.Context copied at spawn
    cdef public object node      # per-node identity (job, logger, accounting), inherited at spawn
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
    cdef uint64_t deadline_ns           # absolute uv_hrtime() deadline of the running timer
    cdef list held_locks                # Locks held, for secure release at death
    cdef list joiners                   # (Task, token) waiting for this task's end

    cdef void _on_death(self)


cdef class EventSlots:
    cdef Hub hub
    cdef dict fired          # name -> args tuple, fired this round, not yet delivered
    cdef dict spare          # the other fired dict (they take turns: no allocation per round)
    cdef dict waiters        # name -> list of (Task, token), in wait order

    cdef bint fire(self, object name, tuple args)
    cdef object wait(self, object name, double timeout)
    cdef void deliver(self)


cdef class Hub:
    cdef uv_loop_t* loop
    cdef greenlet glet               # the hub greenlet of the current run() (None when not running)
    cdef greenlet runner             # the greenlet that called run()
    cdef readonly Task current       # the task running now (None: the hub itself or outside run)
    cdef list new_tasks              # phase 0, FIFO; tasks spawned during the phase run in it too
    cdef Py_ssize_t new_pos          # new_tasks[:new_pos] already started
    cdef list batch                  # phase 1: woken before this round began
    cdef Py_ssize_t batch_pos        # batch[:batch_pos] already run
    cdef list ready_next             # woken during this round (the next round's batch)
    cdef list unwinding              # killed tasks to unwind before anything else
    cdef list idle                   # parked Workers for reuse
    cdef set alive                   # every task not yet dead: the hub owns them (see CORE-NOTES 7)
    cdef readonly EventSlots slots
    cdef dict tracked                # node -> {id(obj): obj} closeables to close at exit
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

    cdef Task spawn(self, object fn, tuple args)
    cdef Task begin_block(self)
    cdef object block(self, Task t, double timeout)
    cdef void wake(self, Task t, unsigned long token, object value)
    cdef void make_ready(self, Task t)
    cdef object yield_now(self)
    cdef object sleep(self, double seconds)
    cdef void track(self, object obj)
    cdef void untrack(self, object obj)
    cdef int _switch_to(self, Task t) except -1
    cdef int _leave(self, Task t) except -1
    cdef Task _next(self)
    cdef Worker _get_worker(self)
    cdef void _arm_timer(self, Task t, double timeout) except *
    cdef void _stop_timer(self, Task t)
    cpdef object kill(self, Task t)


cdef Hub get_hub()
cdef Hub current_hub_or_raise(str what)

# cython: language_level=3, boundscheck=False, wraparound=False
"""RPC counters of a node, kept in C where the calls happen (issue #11, the observatory).

Per node, per RPC mode (``rpc``, ``rpcq``, ``urpc``) and per function: calls made and served,
errors, timeouts, and a histogram of the latency of calls made over the fixed buckets of
:mod:`splay.observatory.buckets`. The RPC modules wrap their transport (client side) and their
``answer`` function (server side) once, with :func:`MeasuredTransport` and
:func:`MeasuredAnswer`: each call then costs a clock read, one dict lookup and a few C increments.
:func:`set_enabled` turns counting off (the wrappers then only forward the call).

The counters of the running thread's node are its node object's ``rpc_stats`` attribute when it
has one (``--in-process`` nodes each get their own), else the process-wide :func:`default_stats`.
A ping is counted under the function name ``(ping)``.
"""
from libc.math cimport frexp
from libc.stdint cimport uint64_t
from splayc.hub cimport Hub, Task, get_hub, clock_ns
from splayc.rpc_answer cimport CompiledDispatch

from splayc.rpc_answer import NOT_HANDLED

DEF N_BOUNDS = 24
DEF N_BUCKETS = 25

MODES = ("rpc", "rpcq", "urpc")
PING = "(ping)"

cdef double _bounds[N_BOUNDS]
cdef int _i
for _i in range(N_BOUNDS):
    _bounds[_i] = 1e-5 * (2.0 ** _i)

cdef bint _enabled = True
cdef RpcStats _default


cdef inline int _bucket(double seconds) noexcept:
    # The bucket is the first bound >= seconds. The bounds are 1e-5 * 2**i: start from the binary
    # exponent of seconds / 1e-5 (at most a step off) instead of walking the bounds from 0.
    cdef int e, i
    frexp(seconds * 1e5, &e)
    i = e - 1
    if i < 0:
        i = 0
    elif i > N_BOUNDS:
        i = N_BOUNDS
    while i > 0 and seconds <= _bounds[i - 1]:
        i -= 1
    while i < N_BOUNDS and seconds > _bounds[i]:
        i += 1
    return i


def latency_bucket(double seconds):
    """The histogram bucket of a call lasting ``seconds`` (that of
    :func:`splay.observatory.buckets.bucket_index`)."""
    return _bucket(seconds)


cdef class FunctionStats:
    """The counters of one function in one mode (read with :meth:`as_dict`)."""
    cdef public unsigned long long made, served, errors, timeouts
    cdef unsigned long long latency[N_BUCKETS]
    cdef public double latency_sum


    cdef inline void observe(self, double seconds):
        self.latency[_bucket(seconds)] += 1
        self.latency_sum += seconds

    def as_dict(self):
        """``{"made", "served", "errors", "timeouts", "latency": [25 counts], "latency_sum": s}``
        (cumulative; ``latency_sum`` is the total seconds of the calls made)."""
        return {"made": self.made, "served": self.served, "errors": self.errors,
                "timeouts": self.timeouts, "latency_sum": self.latency_sum,
                "latency": [self.latency[i] for i in range(N_BUCKETS)]}


cdef class RpcStats:
    """The RPC counters of one node: ``mode -> function -> FunctionStats``."""
    cdef dict tables           # one dict per mode, index = position in MODES
    cdef dict rpc, rpcq, urpc  # the same dicts, found without a lookup on the hot path

    def __cinit__(self):
        self.rpc, self.rpcq, self.urpc = {}, {}, {}
        self.tables = {0: self.rpc, 1: self.rpcq, 2: self.urpc}

    cdef FunctionStats get(self, int mode, object function):
        cdef dict table = self.rpcq if mode == 1 else (self.rpc if mode == 0 else self.urpc)
        cdef object f = table.get(function)
        if f is None:
            f = FunctionStats()
            table[function] = f
        return <FunctionStats>f

    def snapshot(self):
        """``{"<mode>/<function>": {...counters...}}``, cumulative, for a sample."""
        out = {}
        for mode, table in self.tables.items():
            for function, f in table.items():
                out[f"{MODES[mode]}/{function}"] = (<FunctionStats>f).as_dict()
        return out

    def function(self, mode, function):
        """The :class:`FunctionStats` of ``function`` in ``mode`` (created at zero if new)."""
        return self.get(MODES.index(mode), function)


cdef RpcStats _stats_of_current():
    cdef Hub hub = get_hub()
    cdef Task t = hub.current
    cdef object node, s
    if t is None or t.node is None:
        node = hub.default_node
        if node is None:
            return _default
    else:
        node = t.node
    s = getattr(node, "rpc_stats", None)
    return _default if s is None else <RpcStats>s


cdef inline object _function_of(object request):
    cdef object call
    if type(request) is not dict:
        return "(invalid)"
    call = (<dict>request).get("call")
    if call is None:
        return PING
    if type(call) is list and len(<list>call) > 0:
        call = (<list>call)[0]
    elif type(call) is dict:
        call = (<dict>call).get(1)
    if type(call) is str:
        return call
    return "(invalid)"


cdef class _LastFunction:
    """The counters a wrapper used last, found again without a dict lookup when the next call
    is to the same function of the same node (nearly always, in a loop of calls)."""
    cdef int mode
    cdef RpcStats stats
    cdef object name
    cdef FunctionStats f

    cdef FunctionStats get(self, object request):
        cdef RpcStats stats = _stats_of_current()
        cdef object name = _function_of(request)
        if stats is self.stats and (name is self.name or name == self.name):
            return self.f
        self.f = stats.get(self.mode, name)
        self.stats = stats
        self.name = name
        return self.f


cdef inline int _count_made(_LastFunction last, object request, double elapsed,
                            object result) except -1:
    cdef FunctionStats f = last.get(request)
    f.made += 1
    f.observe(elapsed)
    ok, payload = result
    if not ok:
        if payload == "timeout":
            f.timeouts += 1
        else:
            f.errors += 1
    elif type(payload) is dict and "error" in <dict>payload:
        f.errors += 1
    return 0


cdef inline int _count_served(_LastFunction last, object request, object reply) except -1:
    cdef FunctionStats f = last.get(request)
    f.served += 1
    if type(reply) is dict and "error" in <dict>reply:
        f.errors += 1
    return 0


# The wrappers are closures (Cython functions), not instances of a class with __call__: a Cython
# function is called through vectorcall, an instance through tp_call, which builds an argument
# tuple at every call (~400 of the ~2,800 instructions metrics added to an rpcq call, callgrind,
# bench/test_metrics_overhead.py).

def MeasuredTransport(mode, transport):
    """``transport(ip, port, request, timeout)`` of an RPC mode, wrapped to count each call it
    makes (made, errors, timeouts, latency) for the running thread's node."""
    cdef _LastFunction last = _LastFunction()
    last.mode = MODES.index(mode)

    def measured_transport(ip, port, request, timeout):
        cdef uint64_t start
        if not _enabled:
            return transport(ip, port, request, timeout)
        start = clock_ns()              # the hub's clock: a simulation's latencies are virtual
        result = transport(ip, port, request, timeout)
        _count_made(last, request, (clock_ns() - start) * 1e-9, result)
        return result
    return measured_transport


def MeasuredAnswer(mode, answer, dispatcher=None):
    """``answer(request) -> reply`` of an RPC server, wrapped to count each call it serves.

    With the server's ``dispatcher`` (a :class:`splay.rpc_core.dispatch.Dispatcher`), the common
    call runs through its compiled fast path (:mod:`splayc.rpc_answer`) and only the other
    requests reach ``answer``."""
    cdef _LastFunction last = _LastFunction()
    cdef int m = MODES.index(mode)
    cdef CompiledDispatch fast = None if dispatcher is None else CompiledDispatch(dispatcher)
    last.mode = m

    def measured_answer(request):
        reply = NOT_HANDLED if fast is None else fast.answer(m, request)
        if reply is NOT_HANDLED:
            reply = answer(request)
        if _enabled:
            _count_served(last, request, reply)
        return reply
    return measured_answer


def counted_answer(dispatcher, mode):
    """``dispatcher``'s answer for ``mode`` ("rpc", "rpcq" or "urpc"), counted and compiled
    (:func:`MeasuredAnswer` over its ``answer_<mode>``): made at the first use, then kept in
    ``dispatcher.answers``, as each connection of a server asks for it."""
    answers = dispatcher.answers
    answer = answers.get(mode)
    if answer is None:
        answer = answers[mode] = MeasuredAnswer(mode, getattr(dispatcher, "answer_" + mode),
                                                dispatcher)
    return answer


def set_enabled(bint on):
    """Count RPCs (the default) or not; the wrappers stay in place either way."""
    global _enabled
    _enabled = on


def enabled():
    """Whether RPCs are being counted."""
    return _enabled


def default_stats():
    """The counters of the process's node (used when the node object has no ``rpc_stats``)."""
    return _default


def stats_of(node):
    """The counters of ``node`` (``None``: the process's node)."""
    if node is None:
        return _default
    s = getattr(node, "rpc_stats", None)
    return _default if s is None else s


_default = RpcStats()


def threads_by_node(Hub hub):
    """``{node: number of live threads}`` of ``hub`` (the node of a thread outside any node is
    ``None``); read by the observatory's sampler, which may run in another OS thread."""
    cdef dict counts = {}
    cdef Task t = hub.alive_head
    while t is not None:
        counts[t.node] = counts.get(t.node, 0) + 1
        t = t.alive_next
    return counts

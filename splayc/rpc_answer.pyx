# cython: language_level=3, boundscheck=False, wraparound=False
"""The common case of an RPC server's dispatch, compiled (issue #13: instructions per call).

:class:`splay.rpc_core.dispatch.Dispatcher` defines what a request means. Nearly every request a
server receives is ``{"type": "call", "call": ["name", args...]}`` naming a function the
application defines at the top of its namespace; :meth:`CompiledDispatch.answer` runs exactly that
case without entering the interpreter for the dispatch (two Python frames, the name checks, the
reply dict) and returns :data:`NOT_HANDLED` for anything else, which the caller then hands to the
Python dispatcher. Both paths give the same reply for the same request: the conditions below are
those of ``Dispatcher.run_call``'s fast path, and a failing function is reported by the
dispatcher's own ``failed`` method.
"""
from types import FunctionType

#: Returned by :meth:`CompiledDispatch.answer` for a request it leaves to the Python dispatcher.
NOT_HANDLED = object()

# Call names already checked to be plain public identifiers (``f``, not ``a.b``, ``_x`` or
# ``t[1]``). Bounded: a peer sending endless distinct names only costs it the slow path.
cdef dict _plain_names = {}
DEF MAX_PLAIN_NAMES = 4096


cdef bint _is_plain(str name):
    if name in _plain_names:
        return True
    if not (name.isascii() and name.isidentifier() and name[0] != "_"):
        return False
    if len(_plain_names) < MAX_PLAIN_NAMES:
        _plain_names[name] = True
    return True


cdef class CompiledDispatch:
    """The compiled fast path of one :class:`~splay.rpc_core.dispatch.Dispatcher`."""

    def __cinit__(self, dispatcher):
        self.root = dispatcher.root
        self.own_module = dispatcher.own_module
        self.failed = dispatcher.failed

    cdef object answer(self, int mode, object request):
        """The reply of ``mode`` (0 rpc, 1 rpcq, 2 urpc, as in splayc.rpcstats.MODES), or
        NOT_HANDLED."""
        cdef object call, name, target, result, kind
        cdef dict reply
        cdef list out
        cdef bint ok = True
        if type(request) is not dict or type(self.root) is not dict:
            return NOT_HANDLED
        kind = (<dict>request).get("type")
        if type(kind) is not str or <str>kind != "call":
            return NOT_HANDLED
        call = (<dict>request).get("call")
        if type(call) is not list or len(<list>call) == 0:
            return NOT_HANDLED
        if mode == 1 and "n" not in <dict>request:
            return NOT_HANDLED
        name = (<list>call)[0]
        if type(name) is not str or not _is_plain(<str>name):
            return NOT_HANDLED
        target = (<dict>self.root).get(name)
        if type(target) is not FunctionType:
            return NOT_HANDLED
        if self.own_module is not None and target.__module__ != self.own_module:
            return NOT_HANDLED
        try:
            if len(<list>call) > 1:
                result = target(*(<list>call)[1:])
            else:
                result = target()
        except Exception as exc:
            ok = False
            result = self.failed(name, exc)
        if ok:
            out = list(<tuple>result) if type(result) is tuple else [result]
        if mode == 1:
            if ok:
                return {"reply": out, "n": (<dict>request)["n"]}
            return {"n": (<dict>request)["n"], "error": result}
        if mode == 0:
            return out if ok else {"error": result}
        reply = dict(<dict>request)
        reply["reply"] = True
        if ok:
            reply["call"] = out
        else:
            del reply["call"]
            reply["error"] = result
        return reply


def compiled_answer(mode, dispatcher):
    """``answer(request)`` for ``mode`` ("rpc", "rpcq" or "urpc"): the compiled fast path of
    ``dispatcher``, falling back to its ``answer_<mode>`` method (for tests and the benchmark;
    servers get theirs from :func:`splayc.rpcstats.MeasuredAnswer`)."""
    cdef int m = ("rpc", "rpcq", "urpc").index(mode)
    cdef CompiledDispatch fast = CompiledDispatch(dispatcher)
    slow = getattr(dispatcher, "answer_" + mode)

    def answer(request):
        reply = fast.answer(m, request)
        return slow(request) if reply is NOT_HANDLED else reply
    return answer

# cython: language_level=3, boundscheck=False, wraparound=False
"""The common client call of an RPC mode, compiled (issue #13: instructions per call).

:class:`splay.rpc_core.client_api.ClientAPI` defines what ``acall``, ``call`` and ``ecall`` mean.
Nearly every call a node makes is ``call(node, ["name", args...])`` with the node as a tuple,
:class:`splay.node.Node` or ``{"ip": ..., "port": ...}`` dict, no keyword but perhaps
``timeout=``, and no ``settings["max"]``: :func:`client_functions` runs exactly that case in C (no
Python frame for the three methods it goes through) and hands every other form to the
``ClientAPI`` method itself, so both give the same result for the same arguments.
"""
from splay.node import Node
from splayc.errors import RPCError, RPCTimeout

from splay.rpc_core.client_api import NO_CALL, results_of


cdef inline bint _plain_address(object ip, object port) noexcept:
    """What ClientAPI._exchange takes without the general parser (splay.node.address)."""
    return type(ip) is str and type(port) is int and <str>ip != "" and <str>ip != "*" and \
        0 <= <long>port <= 65535


cdef class _FastCall:
    """The state shared by one mode's compiled functions: its API object, settings and
    transport (each compiled function's ``fast`` attribute; a benchmark may swap ``transport``)."""
    cdef readonly object api
    cdef dict settings
    cdef public object transport
    cdef str mode

    cdef object exchange(self, object node, list call, object timeout):
        """``(ok, payload)`` of the call, or None when it is not the common case."""
        cdef object ip, port, kind = type(node)
        cdef double t
        if kind is tuple or kind is Node:
            if len(<tuple>node) != 2:
                return None
            ip = (<tuple>node)[0]
            port = (<tuple>node)[1]
        elif kind is dict:
            ip = (<dict>node).get("ip")
            port = (<dict>node).get("port")
        else:
            return None
        if not _plain_address(ip, port) or self.settings.get("max"):
            return None
        if timeout is None:
            timeout = self.settings["default_timeout"]
        t = -1.0 if timeout is None or timeout < 0 else float(timeout)
        return self.transport(ip, port, {"type": "call", "call": call}, t)

    cdef object common(self, object node, tuple args, object call, object timeout):
        """:meth:`exchange` when ``args`` is the common ``(["name", args...],)`` with no
        ``call=`` keyword, else None (the caller then uses the ClientAPI method)."""
        cdef object c
        if len(args) != 1 or call is not NO_CALL:
            return None
        c = args[0]
        if type(c) is not list or not c:
            return None
        return self.exchange(node, <list>c, timeout)


cdef inline object _results(object payload):
    """``(True, [results])`` or ``(False, message)`` (results_of, with its common case inline)."""
    if type(payload) is list:
        return (True, payload)
    return results_of(payload)


cdef inline object _value(list results):
    """What call/ecall return for ``results``: one value, a tuple for several, None for none."""
    if not results:
        return None
    if len(results) == 1:
        return results[0]
    return tuple(results)


def client_functions(api):
    """``(acall, call, ecall)`` of the :class:`~splay.rpc_core.client_api.ClientAPI` ``api``,
    with the common call compiled and every other form going to ``api``'s own method."""
    cdef _FastCall fast = _FastCall()
    fast.api = api
    fast.settings = api.settings
    fast.transport = api.transport
    fast.mode = api.mode
    slow_acall, slow_call, slow_ecall = api.acall, api.call, api.ecall

    def acall(node, *args, call=NO_CALL, timeout=None):
        """``acall(node, call, timeout=None)`` or ``acall(ip, port, call, timeout=None)``: call
        ``call`` (``"name"`` or ``["name", args...]``) on the node:
        ``(True, [results])`` or ``(False, "message")``."""
        cdef object r = fast.common(node, args, call, timeout)
        if r is not None:
            ok, payload = r
            if not ok:
                return (False, payload)
            return _results(payload)
        return slow_acall(node, *args, call=call, timeout=timeout)

    def call(node, *args, call=NO_CALL, timeout=None):
        """``call(node, call, timeout=None)`` (or ``call(ip, port, ...)``): the result of the
        remote call: one value, a tuple for several, None for none or on failure (use
        :func:`acall` to tell a failure from a None result)."""
        cdef object r = fast.common(node, args, call, timeout)
        if r is not None:
            ok, payload = r
            if not ok:
                return None
            if type(payload) is list:
                return _value(<list>payload)
            ok, results = results_of(payload)
            if not ok:
                return None
            return _value(results)
        return slow_call(node, *args, call=call, timeout=timeout)

    def ecall(node, *args, call=NO_CALL, timeout=None):
        """Like :func:`call`, but a failure raises :class:`splay.RPCError`
        (:class:`splay.RPCTimeout` for a timeout)."""
        cdef object r = fast.common(node, args, call, timeout)
        if r is not None:
            ok, payload = r
            if ok:
                ok, payload = _results(payload)
            if not ok:
                if payload == "timeout":
                    raise RPCTimeout(f"{fast.mode} call {args[0]!r:.80} to {node!r}: timeout")
                raise RPCError(f"{fast.mode} call {args[0]!r:.80} to {node!r} failed: {payload}")
            return _value(payload)
        return slow_ecall(node, *args, call=call, timeout=timeout)

    acall.fast = call.fast = ecall.fast = fast
    return acall, call, ecall

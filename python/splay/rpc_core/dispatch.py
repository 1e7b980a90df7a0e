"""Running the call of an RPC request in the served namespace, with every failure captured.

A call on the wire is ``["name", arg1, ...]`` (a Lua caller whose arguments contain nil sends a dict
with integer keys instead, ``{1: "name", 3: x}``: the holes become None). The name is resolved by
:mod:`.names`; then:

* a callable is called with the arguments; a returned tuple is several results, anything else one
  (``None`` is one nil);
* a value without arguments is returned (remote variable read); a missing name reads as None;
* a value with arguments fails with "calling a variable with parameters" (the manual's message);
* an exception in the function fails the call with ``"<ExceptionType>: <message>"``; the server
  goes on serving.

Each RPC mode wraps the outcome in its own reply shape (see docs/rpc.md, "Error replies"):
``answer_rpc``, ``answer_rpcq`` and ``answer_urpc``.
"""
from types import FunctionType

from .names import MISSING, NameError_, resolve

__all__ = ["Dispatcher", "as_call_list", "CALLING_A_VARIABLE"]

#: The manual's error text for arguments given to something that is not a function.
CALLING_A_VARIABLE = "calling a variable with parameters"


def as_call_list(call):
    """``["name", args...]`` from the wire forms of a call; ValueError says what is wrong."""
    if type(call) is list:
        if call:
            return call
        raise ValueError("empty call: expected [\"name\", arg1, ...]")
    if isinstance(call, str):
        return [call]
    if isinstance(call, dict) and call and all(type(k) is int and k >= 1 for k in call):
        return [call.get(i) for i in range(1, max(call) + 1)]
    raise ValueError(f"invalid call {call!r:.100}: expected \"name\" or [\"name\", arg1, ...]")


class Dispatcher:
    """Runs the calls of one server against its :class:`~.namespace.ServedNamespace`."""

    __slots__ = ("root", "own_module", "log", "answers")

    def __init__(self, served, log):
        self.root = served.root
        self.own_module = served.own_module
        self.log = log
        #: mode -> the ``answer`` function a mode's connections share (built by the mode module
        #: at its first connection: splayc.rpcstats.MeasuredAnswer over this dispatcher)
        self.answers = {}

    def run_call(self, call):
        """``(True, [results])`` or ``(False, "message")``; never raises an ``Exception``."""
        name = call[0] if type(call) is list and call else None
        target = None
        if type(name) is str and type(self.root) is dict and name.isascii() \
                and name.isidentifier() and name[0] != "_":
            # The common case, without the general resolver: a function of the application
            # defined at the top of its namespace (exactly what resolve() would accept).
            target = self.root.get(name)
            if type(target) is not FunctionType or (self.own_module is not None
                                                    and target.__module__ != self.own_module):
                target = None
        if target is None:
            try:
                call = as_call_list(call)
                name = call[0]
                if not isinstance(name, str):
                    raise ValueError(f"invalid call name {name!r:.100}: expected a string")
                target = resolve(self.root, name, self.own_module)
            except (ValueError, NameError_) as exc:
                self.log.notice(f"refused a call: {exc}")
                return False, str(exc)
        if target is MISSING:
            target = None
        if callable(target):
            try:
                result = target(*call[1:]) if len(call) > 1 else target()
            except Exception as exc:
                return False, self.failed(name, exc)
        elif len(call) > 1:
            return False, CALLING_A_VARIABLE
        else:
            result = target
        if type(result) is tuple:
            return True, list(result)
        return True, [result]

    def failed(self, name, exc):
        """The error message of a call of ``name`` that raised ``exc`` (logged at notice level)."""
        self.log.notice(f"the remote function {name!r} failed: {type(exc).__name__}: {exc}")
        return f"{type(exc).__name__}: {exc}"

    # -- the reply of each mode

    def answer_rpc(self, request):
        """splay.rpc: the result list, ``True`` for a ping, or ``{"error": message}``."""
        if type(request) is not dict:
            return {"error": f"invalid request {request!r:.100}: expected a dict"}
        kind = request.get("type")
        if kind == "call":
            ok, out = self.run_call(request.get("call"))
            return out if ok else {"error": out}
        if kind == "ping":
            return True
        return {"error": f"unknown request type {kind!r:.50}: expected 'call' or 'ping'"}

    def answer_rpcq(self, request):
        """splay.rpcq: ``{"reply": results, "n": n}``, or ``{"n": n, "error": message}``."""
        n = request["n"]
        kind = request.get("type")
        if kind == "call":
            ok, out = self.run_call(request.get("call"))
            return {"reply": out, "n": n} if ok else {"n": n, "error": out}
        if kind == "ping":
            return {"reply": True, "n": n}
        return {"n": n, "error": f"unknown request type {kind!r:.50}: expected 'call' or 'ping'"}

    def answer_urpc(self, request):
        """splay.urpc: the request dict with ``"reply": True`` and the results in ``"call"``; on
        failure ``"call"`` removed and ``"error": message``."""
        reply = dict(request)
        reply["reply"] = True
        kind = request.get("type")
        if kind == "call":
            ok, out = self.run_call(request.get("call"))
            if ok:
                reply["call"] = out
            else:
                reply.pop("call", None)
                reply["error"] = out
        elif kind != "ping":
            reply.pop("call", None)
            reply["error"] = f"unknown request type {kind!r:.50}: expected 'call' or 'ping'"
        return reply

"""``acall``, ``call``, ``ecall``, ``ping`` and ``proxy``: the caller's API, the same for every mode.

A mode provides a *transport*: ``transport(ip, port, request, timeout)`` sends ``request``
(``{"type": "call", "call": [...]}`` or ``{"type": "ping"}``) and returns ``(True, payload)`` or
``(False, "message")``, where the payload is what the peer answered: for a call the result list
(or ``{"error": message}`` from a Python server), for a ping anything true.
"""
import time

from splayc.errors import RPCError, RPCTimeout

from splay import events
from splay.node import Node, address, node_args

from .dispatch import as_call_list

__all__ = ["ClientAPI", "Proxy", "results_of"]

#: The default of the keyword ``call=``: the call is then the positional argument after the node.
NO_CALL = object()


def results_of(payload):
    """``(True, [results])`` or ``(False, message)`` from a call's reply payload.

    A Lua peer whose results contain nil sends a dict with integer keys: the holes become None.
    """
    if type(payload) is list:
        return True, payload
    if isinstance(payload, dict):
        if "error" in payload:
            return False, str(payload["error"])
        if all(type(k) is int and k >= 1 for k in payload):
            return True, [payload.get(i) for i in range(1, max(payload, default=0) + 1)]
    return False, f"invalid reply {payload!r:.100}: expected the list of results"


class Proxy:
    """``proxy(node).name(*args)`` is ``ecall(node, ["name", *args])``."""

    __slots__ = ("_api", "_node", "_timeout")

    def __init__(self, api, node, timeout=None):
        self._api = api
        self._node = node
        self._timeout = timeout

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        api, node, timeout = self._api, self._node, self._timeout

        def remote(*args):
            return api.ecall(node, [name, *args], timeout)

        remote.__name__ = name
        return remote

    def __repr__(self):
        return f"<{self._api.mode} proxy of {self._node!r}>"


class ClientAPI:
    """The calling side of one RPC mode; its bound methods are the module's functions."""

    def __init__(self, mode, settings, transport, log=None):
        self.mode = mode
        self.log = log
        self.settings = settings
        self.transport = transport
        self._gate = None
        self._gate_size = None

    def _limit(self):
        """The semaphore enforcing ``settings["max"]`` (None when unlimited)."""
        size = self.settings.get("max")
        if not size:
            return None
        if self._gate is None or self._gate_size != size:
            self._gate = events.semaphore(int(size), secure=False)
            self._gate_size = size
        return self._gate

    def _exchange(self, node, request, timeout):
        kind = type(node)
        if kind is dict:                  # the common forms, without the general parser
            ip, port = node.get("ip"), node.get("port")
        elif kind is tuple or kind is Node:
            ip, port = node if len(node) == 2 else (None, None)
        else:
            ip = port = None
        if type(ip) is not str or type(port) is not int or ip in ("", "*") or \
                not 0 <= port <= 65535:
            ip, port = address(node)
        if timeout is None:
            timeout = self.settings["default_timeout"]
        timeout = -1.0 if timeout is None or timeout < 0 else float(timeout)
        if not self.settings.get("max"):      # unlimited (the default): no semaphore to take
            return self.transport(ip, port, request, timeout)
        gate = self._limit()
        # Waiting for a free slot counts in the call's timeout.
        start = time.monotonic()
        if not gate.lock(None if timeout < 0 else timeout):
            return False, "timeout"
        try:
            if timeout >= 0:
                timeout = max(0.0, timeout - (time.monotonic() - start))
            return self.transport(ip, port, request, timeout)
        finally:
            gate.unlock()

    def acall(self, node, *args, call=NO_CALL, timeout=None):
        """``acall(node, call, timeout=None)`` or ``acall(ip, port, call, timeout=None)``: call
        ``call`` (``"name"`` or ``["name", args...]``) on the node:
        ``(True, [results])`` or ``(False, "message")``."""
        return self._acall(node, args, call, timeout)

    def _acall(self, node, args, call, timeout):
        """:meth:`acall` with its arguments as given (``args``: the positional ones after node)."""
        if len(args) != 1 or type(node) is str:   # not the common call(node, call)
            node, args = node_args(node, args, "acall", 2)
            if call is not NO_CALL:
                if args:
                    raise TypeError("acall() got the call both by position and as call=")
                args = (call,)
            if not args:
                raise TypeError("acall() needs the call: acall(node, call, timeout=None)")
            if len(args) == 2:
                timeout = args[1]
        elif call is not NO_CALL:
            raise TypeError("acall() got the call both by position and as call=")
        call = args[0]
        if type(call) is not list or not call:
            try:
                call = as_call_list(list(call) if type(call) is tuple else call)
            except ValueError as exc:
                return False, str(exc)
        ok, payload = self._exchange(node, {"type": "call", "call": call}, timeout)
        if not ok:
            return False, payload
        if type(payload) is list:
            return True, payload
        return results_of(payload)

    def call(self, node, *args, call=NO_CALL, timeout=None):
        """``call(node, call, timeout=None)`` (or ``call(ip, port, ...)``): the result of the
        remote call: one value, a tuple for several, None for none or on failure (use
        :meth:`acall` to tell a failure from a None result)."""
        ok, results = self._acall(node, args, call, timeout)
        if not ok or not results:
            return None
        if len(results) == 1:
            return results[0]
        return tuple(results)

    def ecall(self, node, *args, call=NO_CALL, timeout=None):
        """Like :meth:`call`, but a failure raises :class:`splay.RPCError`
        (:class:`splay.RPCTimeout` for a timeout)."""
        node, args = node_args(node, args, "ecall", 2)
        ok, results = self._acall(node, args, call, timeout)
        if call is NO_CALL:
            call = args[0] if args else None
        if not ok:
            if results == "timeout":
                raise RPCTimeout(f"{self.mode} call {call!r:.80} to {node!r}: timeout")
            raise RPCError(f"{self.mode} call {call!r:.80} to {node!r} failed: {results}")
        if not results:
            return None
        if len(results) == 1:
            return results[0]
        return tuple(results)

    def ping(self, node, *args, timeout=None):
        """``ping(node, timeout=None)`` or ``ping(ip, port, timeout=None)``: the round-trip time
        to the node in seconds, or None when it does not answer (the reason is logged at
        notice level on the module's ``l_o``)."""
        node, args = node_args(node, args, "ping", 1)
        if args:
            timeout = args[0]
        start = time.monotonic()
        ok, payload = self._exchange(node, {"type": "ping"}, timeout)
        if not ok or not payload or (isinstance(payload, dict) and "error" in payload):
            # The API returns None here (never a truthy tuple); the reason goes to the log.
            if self.log is not None:
                reason = payload if not ok else f"invalid reply {payload!r:.100}"
                self.log.notice(f"{self.mode} ping {node!r} failed: {reason}")
            return None
        return time.monotonic() - start

    def proxy(self, node, *args, timeout=None):
        """``proxy(node, timeout=None)`` or ``proxy(ip, port, timeout=None)``: an object whose
        attribute calls are :meth:`ecall`\\ s: ``proxy(n).concat("a", "b")``."""
        node, args = node_args(node, args, "proxy", 1)
        if args:
            timeout = args[0]
        return Proxy(self, node, timeout)

"""``splay.maelstrom.Node``: serve Maelstrom's messages from a pysplay application, no subprocess.

::

    from splay.maelstrom import Node

    node = Node()

    @node.handler("echo")
    def echo(message):
        node.reply(message, {"type": "echo_ok", "echo": message["body"]["echo"]})

``splay run --maelstrom echo --app this_file.py -n 3`` runs the file in every pysplay node; the
adapter hands the node every message addressed to it and carries what it sends over pysplay's
network. Each message is handled in its own SPLAY thread, so a handler may wait (``node.rpc``,
``events.sleep``). ``init`` is answered by the node itself (``node.id`` and ``node.ids`` are set
first, then an ``init`` handler, if any, runs); a message type without a handler gets error 10
(not supported), as Maelstrom expects.
"""
from splay import events

from .messages import error_body

__all__ = ["Node", "RPCError"]


class RPCError(Exception):
    """An error reply to :meth:`Node.rpc`: ``code`` and ``text`` as the peer sent them."""

    def __init__(self, code, text):
        super().__init__(f"error {code}: {text}")
        self.code, self.text = code, text


class Node:
    """A Maelstrom node: message handlers, ``send``, ``reply`` and ``rpc``."""

    def __init__(self):
        self.id = None
        self.ids = []
        self.out = None            # set by the adapter: the function that sends a message
        self._handlers = {}
        self._waiting = {}         # msg_id -> reply body (None until it arrives)
        self._next_id = 0

    def handler(self, kind):
        """Decorator: ``@node.handler("broadcast")`` handles messages whose body type is ``kind``."""
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a handler's message type must be a non-empty string, not {kind!r}")

        def register(function):
            self._handlers[kind] = function
            return function
        return register

    def send(self, dest, body):
        """Send ``body`` to ``dest`` (a node id like ``"n3"``, a client, or a service)."""
        if self.out is None:
            raise RuntimeError("this Maelstrom node is not running: start it with "
                               "'splay run --maelstrom WORKLOAD --app FILE'")
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise ValueError(f"a message body is a dict with a string 'type', not {body!r}")
        self.out({"src": self.id, "dest": dest, "body": body})

    def reply(self, request, body):
        """Answer ``request`` (a message this node received) with ``body``."""
        body = dict(body)
        if "msg_id" in request["body"]:
            body["in_reply_to"] = request["body"]["msg_id"]
        self.send(request["src"], body)

    def rpc(self, dest, body, timeout=1.0):
        """Send ``body`` to ``dest`` and wait for the reply body; raises :class:`RPCError` for
        an error reply and ``TimeoutError`` after ``timeout`` seconds."""
        self._next_id += 1
        msg_id = self._next_id
        self._waiting[msg_id] = None
        try:
            self.send(dest, dict(body, msg_id=msg_id))
            if self._waiting[msg_id] is None:
                events.wait(self._event(msg_id), timeout)
            reply = self._waiting[msg_id]
        finally:
            self._waiting.pop(msg_id, None)
        if reply is None:
            raise TimeoutError(f"no reply from {dest} to {body.get('type')!r} in {timeout} s")
        if reply.get("type") == "error":
            raise RPCError(reply.get("code"), reply.get("text", ""))
        return reply

    def _event(self, msg_id):
        return f"splay.maelstrom {id(self)} {msg_id}"

    def handle(self, message):
        """Take one message addressed to this node (called by the adapter)."""
        body = message["body"]
        answer_to = body.get("in_reply_to")
        if answer_to is not None and answer_to in self._waiting:
            self._waiting[answer_to] = body
            events.fire(self._event(answer_to))
            return
        kind = body["type"]
        if kind == "init":
            self.id, self.ids = body.get("node_id"), list(body.get("node_ids", []))
        function = self._handlers.get(kind)
        if function is None:
            if kind == "init":
                self.reply(message, {"type": "init_ok"})
            elif answer_to is None:
                self.reply(message, error_body(body, 10, f"no handler for {kind!r}"))
            return

        def run():
            function(message)
            if kind == "init":
                self.reply(message, {"type": "init_ok"})
        events.thread(run)

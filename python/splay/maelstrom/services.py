"""Maelstrom's key-value services (``lin-kv``, ``seq-kv``, ``lww-kv``), which programs reach by
sending messages to those names. Here they are one store per service on node 0's adapter,
reached over pysplay's network like any other message; a single copy, so every service is
linearizable (which also satisfies the weaker seq-kv and lww-kv). Unlike Maelstrom's, these
messages cross the emulated network: a node partitioned from node 0 cannot reach them.
"""
from .messages import error_body

NAMES = ("lin-kv", "seq-kv", "lww-kv")


class KeyValueService:
    """One service's store; :meth:`handle` answers one request body with a reply body."""

    def __init__(self, name):
        self.name = name
        self.data = {}

    @staticmethod
    def _key(body):
        key = body.get("key")
        return json_key(key)

    def handle(self, body):
        """The reply body to request ``body`` (read, write or cas)."""
        kind = body["type"]
        if "key" not in body:
            return error_body(body, 12, f"{self.name}: {kind} needs a 'key'")
        key = self._key(body)
        if kind == "read":
            if key not in self.data:
                return error_body(body, 20, "key does not exist")
            return self._reply(body, {"type": "read_ok", "value": self.data[key]})
        if kind == "write":
            self.data[key] = body.get("value")
            return self._reply(body, {"type": "write_ok"})
        if kind == "cas":
            if key not in self.data:
                if body.get("create_if_not_exists"):
                    self.data[key] = body.get("to")
                    return self._reply(body, {"type": "cas_ok"})
                return error_body(body, 20, "key does not exist")
            if self.data[key] != body.get("from"):
                return error_body(body, 22, f"expected {body.get('from')!r}, but had "
                                            f"{self.data[key]!r}")
            self.data[key] = body.get("to")
            return self._reply(body, {"type": "cas_ok"})
        return error_body(body, 10, f"{self.name} has read, write and cas, not {kind!r}")

    @staticmethod
    def _reply(request, body):
        if "msg_id" in request:
            body["in_reply_to"] = request["msg_id"]
        return body


def json_key(key):
    """A JSON value usable as a dict key (lists become tuples)."""
    if isinstance(key, list):
        return tuple(json_key(k) for k in key)
    if isinstance(key, dict):
        return tuple(sorted((k, json_key(v)) for k, v in key.items()))
    return key

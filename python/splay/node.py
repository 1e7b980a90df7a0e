"""Nodes: anything with an ip and a port.

SPLAY passes nodes around as tables ``{ip=..., port=...}``. In Python a node may be a dict
``{"ip": ..., "port": ...}``, a :class:`Node`, or a tuple ``(ip, port)``; every call that takes a
node (or a port) accepts all three through :func:`address`.
"""
from collections import namedtuple

__all__ = ["Node", "address", "as_node", "node_args"]


class Node(namedtuple("Node", ["ip", "port"])):
    """An immutable ``(ip, port)`` that also reads like SPLAY's node table: ``n["ip"]``, ``n["port"]``.

    >>> n = Node("127.0.0.1", 20000)
    >>> n["port"], n.port, n == ("127.0.0.1", 20000)
    (20000, 20000, True)
    """

    __slots__ = ()

    def __getitem__(self, key):
        if key == "ip":
            return tuple.__getitem__(self, 0)
        if key == "port":
            return tuple.__getitem__(self, 1)
        return tuple.__getitem__(self, key)

    def get(self, key, default=None):
        """Dict-style lookup of ``"ip"`` or ``"port"``."""
        if key in ("ip", "port"):
            return self[key]
        return default

    def keys(self):
        """``("ip", "port")``, so ``dict(node)`` gives the SPLAY table form."""
        return ("ip", "port")

    def to_dict(self):
        """The SPLAY table form ``{"ip": ..., "port": ...}`` (what goes on the wire)."""
        return {"ip": self.ip, "port": self.port}

    def __repr__(self):
        return f"Node({self.ip!r}, {self.port})"


#: True in the worker processes of a run whose nodes listen on several loopback addresses
#: (``splay run --in-process --workers K``, see :mod:`splay.launch.workers`): there a server on
#: "every interface" (a port alone, ``"*"`` or ``0.0.0.0``) listens on its node's own address
#: (``job.me.ip``), so that ``127.0.0.1:20000`` and ``127.0.0.2:20000`` are two nodes.
wildcard_is_own_address = False


def _own_address():
    import splay
    return splay.job.me.ip


def address(node_or_ip, port=None, default_ip="127.0.0.1"):
    """Normalise SPLAY's ``<IP, port>`` argument forms to a ``(ip, port)`` tuple.

    Accepts ``(node)``, ``(ip, port)``, ``(port)`` (an int: the ip is ``default_ip``) and
    ``(node, None)``. Raises ``TypeError`` or ``ValueError`` naming what was wrong.
    """
    n = node_or_ip
    if isinstance(n, tuple) and len(n) == 2:   # Node or (ip, port)
        ip, p = n[0], n[1]
    elif isinstance(n, dict):
        if "ip" not in n and "port" not in n:
            raise ValueError(f"a node dict needs 'ip' and 'port' keys, got {sorted(map(str, n))}")
        ip, p = n.get("ip"), n.get("port")
    elif isinstance(n, int) and not isinstance(n, bool) and port is None:
        ip, p = None, n
    elif isinstance(n, (str, bytes)) or n is None:
        ip, p = n, port
    elif hasattr(n, "ip") and hasattr(n, "port"):
        ip, p = n.ip, n.port
    else:
        raise TypeError(f"expected a node (dict, Node or (ip, port)), an ip or a port, got {type(n).__name__}")
    if port is not None and not isinstance(n, (str, bytes)) and n is not None:
        p = port
    if isinstance(ip, bytes):
        ip = ip.decode()
    if ip in (None, "", "*"):
        ip = default_ip
    if ip == "0.0.0.0" and wildcard_is_own_address:
        ip = _own_address()
    if isinstance(p, str) and p.isdigit():
        p = int(p)
    if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 65535:
        raise ValueError(f"invalid port {p!r}: expected an integer from 0 to 65535")
    return ip, p


def as_node(node_or_ip, port=None):
    """The :class:`Node` for any accepted node form."""
    return Node(*address(node_or_ip, port))


def node_args(first, rest, function, most):
    """SPLAY's ``<ip, port>`` argument: ``f(node, ...)`` or ``f(ip, port, ...)``.

    The two-argument form is an ip (``str``) followed by a port (``int``); a lone string is never a
    node, so the forms cannot be confused. Returns ``(node, rest)`` with the other positional
    arguments (at most ``most`` of them; ``function`` names the call in the error).

    >>> node_args("127.0.0.1", (20000, "f"), "call", 2)
    (('127.0.0.1', 20000), ('f',))
    >>> node_args({"ip": "127.0.0.1", "port": 20000}, ("f",), "call", 2)
    ({'ip': '127.0.0.1', 'port': 20000}, ('f',))
    """
    if type(first) is str and rest and type(rest[0]) is int:
        first, rest = (first, rest[0]), rest[1:]
    if len(rest) > most:
        raise TypeError(f"{function}() takes a node (or ip, port) and at most {most} more "
                        f"arguments, got {len(rest)}")
    return first, rest

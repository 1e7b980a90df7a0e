"""The application namespace an RPC server serves.

By default it is the namespace of the application running the server: with ``splay run
--in-process`` every node runs the application source in its own namespace, found on the node
object (``events.current_node().namespace``); otherwise it is the globals of ``__main__``.
``server(..., namespace=obj_or_dict)`` serves another dict (its keys) or object (its attributes).
"""
import sys

from splay import events

__all__ = ["ServedNamespace", "for_server"]


class ServedNamespace:
    """What a server resolves names in: ``root`` (a dict or an object) and ``own_module``.

    ``own_module`` is the module name the application's own functions carry (``__name__`` of the
    default namespace): functions and methods defined elsewhere are not served from it. It is None
    for an explicit namespace, whose contents the application chose one by one.
    """

    __slots__ = ("root", "own_module")

    def __init__(self, root, own_module):
        self.root = root
        self.own_module = own_module

    def __repr__(self):
        kind = "dict" if isinstance(self.root, dict) else type(self.root).__name__
        return f"<ServedNamespace {kind} own_module={self.own_module!r}>"


def default_root():
    """The calling node's application namespace (a dict)."""
    node = events.current_node()
    ns = getattr(node, "namespace", None) if node is not None else None
    if isinstance(ns, dict):
        return ns
    return sys.modules["__main__"].__dict__


def for_server(namespace=None):
    """The :class:`ServedNamespace` for ``server(..., namespace=namespace)``."""
    if namespace is None:
        root = default_root()
        return ServedNamespace(root, root.get("__name__", "__main__"))
    if isinstance(namespace, ServedNamespace):
        return namespace
    return ServedNamespace(namespace, None)

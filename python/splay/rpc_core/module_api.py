"""What splay.rpc, splay.rpcq and splay.urpc build their module-level API from.

The three modules publish the same names (:data:`MODULE_API`); what differs is the transport of
a call and the server. Each builds one :class:`ModeModule` and binds its functions from it::

    mode = "rpcq"
    settings = {...}
    _module = ModeModule(__name__, mode, settings)
    l_o = _module.log
    ...
    acall, call, ecall, ping, proxy = _module.client_functions(_transport)
    server = _module.tcp_server(_serve_connection)     # the TCP modes (urpc has its own)
    stop_server = _module.tcp_stop_server()
"""
from splay import log as _log

from splayc.rpc_client import client_functions as compiled_client_functions
from splayc.rpcstats import MeasuredTransport

from .client_api import ClientAPI
from .dispatch import Dispatcher
from .namespace import for_server
from .server import Registry, TCPServer

__all__ = ["MODULE_API", "ModeModule"]

#: The names every RPC mode module publishes (each may add its own after them).
MODULE_API = ["server", "stop_server", "acall", "call", "ecall", "ping", "proxy", "mode",
              "settings", "l_o"]


class ModeModule:
    """One RPC mode module's shared parts: its logger (``l_o``), its registry of running servers
    and the functions it publishes.

    ``module_name`` is the publishing module's ``__name__``: the functions built here carry it
    (and their own name) as if they had been defined there. ``settings`` is the module's settings
    dict itself, read at every call.
    """

    def __init__(self, module_name, mode, settings):
        self.module_name = module_name
        self.mode = mode
        self.settings = settings
        self.log = _log.module_logger(mode)
        self.servers = Registry(mode)

    def _publish(self, function, name):
        function.__name__ = function.__qualname__ = name
        function.__module__ = self.module_name
        return function

    def client_functions(self, transport):
        """``(acall, call, ecall, ping, proxy)`` over ``transport(ip, port, request, timeout)``
        (see :mod:`.client_api`)."""
        # Every call made is counted for the observatory (splayc.rpcstats), in C.
        api = ClientAPI(self.mode, self.settings, MeasuredTransport(self.mode, transport),
                        self.log)
        # The common call(node, [...]) runs compiled (splayc.rpc_client); other forms reach api.
        acall, call, ecall = compiled_client_functions(api)
        return acall, call, ecall, api.ping, api.proxy

    def tcp_server(self, serve_connection, inline=False):
        """The ``server`` function of a TCP mode: every accepted connection is served by
        ``serve_connection(sock, dispatcher)`` in its own thread (``inline``: in the accept
        thread until it waits, see :class:`.server.TCPServer`), ``dispatcher`` being the
        server's :class:`.dispatch.Dispatcher` (which runs a request's call)."""
        mode, log, servers = self.mode, self.log, self.servers

        def server(port, max=None, namespace=None):
            """Serve RPCs on ``port`` (a port number or a node, whose ip selects the interface).

            ``max``: connections served at once (None: unlimited). ``namespace``: the dict or object whose
            names are callable (default: the application's namespace). Returns True; raises ``OSError``
            when the port cannot be bound. The server runs until :func:`stop_server` or ``events.exit()``.
            """
            dispatcher = Dispatcher(for_server(namespace), log)
            TCPServer(mode, port, serve_connection, max, log, servers, inline,
                      serve_args=(dispatcher,))
            return True

        return self._publish(server, "server")

    def tcp_stop_server(self):
        """The ``stop_server`` function of a TCP mode."""
        servers = self.servers

        def stop_server(port):
            """Stop the server on ``port`` (or node) and close its connections: True, or None if none."""
            return servers.stop(port)

        return self._publish(stop_server, "stop_server")

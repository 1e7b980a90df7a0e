"""The application process the RPC tests call: pysplay serving rpc, rpcq and urpc at once.

``start_rpc_app(tmp_path, functions)`` writes an application made of ``functions`` (source text:
what the servers serve, at the top level of ``__main__``) and a ``main`` that starts one server of
each mode, each on its own free port, and runs it in a new process.
"""
import socket
from contextlib import contextmanager

from splay import rpc, rpcq, urpc
from lua_peer import AppProcess, free_port

MODULES = {"rpc": rpc, "rpcq": rpcq, "urpc": urpc}

APP_HEAD = '''
import sys
from splay import events, rpc, rpcq, urpc

rpc_port, rpcq_port, urpc_port = (int(a) for a in sys.argv[1:4])
'''

APP_MAIN = '''
def main():
    rpc.server(rpc_port)
    rpcq.server(rpcq_port)
    urpc.server(urpc_port)
    print("ready", flush=True)

events.run(main)
'''


def port_for(mod):
    """A free port of the transport ``mod`` uses (UDP for urpc, else TCP)."""
    return free_port(socket.SOCK_DGRAM if mod is urpc else socket.SOCK_STREAM)


def start_rpc_app(tmp_path, functions):
    """Start the application (see the module docstring) and wait until it serves; returns its
    :class:`AppProcess`, with the ports as ``ports`` (by mode name) and ``rpc_port``,
    ``rpcq_port``, ``urpc_port``."""
    ports = {name: port_for(mod) for name, mod in MODULES.items()}
    app = AppProcess(tmp_path, APP_HEAD + functions + APP_MAIN,
                     args=(ports["rpc"], ports["rpcq"], ports["urpc"]))
    app.start()
    app.ports = ports
    app.rpc_port, app.rpcq_port, app.urpc_port = ports["rpc"], ports["rpcq"], ports["urpc"]
    return app


@contextmanager
def running_rpc_app(tmp_path, functions):
    """``start_rpc_app`` for a ``with`` block (a module fixture's body); stopped at its end."""
    app = start_rpc_app(tmp_path, functions)
    try:
        yield app
    finally:
        app.stop()

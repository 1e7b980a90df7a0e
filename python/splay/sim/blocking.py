"""Calls that would block the whole simulation fail loudly instead.

A simulation runs every node in one process on a virtual clock: a real ``time.sleep`` would stall
all of them in real time, a real socket would reach outside the simulated network, a subprocess
would run outside virtual time. While :func:`guard` is active those calls raise
:class:`SimulationError` naming the call and what to use instead, and ``time.time`` /
``time.monotonic`` read the virtual clock, so an application that reads them directly sees the
same time as ``misc.time()``.
"""

import contextlib
import os
import socket
import subprocess
import threading
import time

from splayc import hub as _hub


class SimulationError(RuntimeError):
    """A call that cannot work inside a simulation (the message says what to use instead)."""


def _refuse(call, alternative):
    def refused(*args, **kwargs):
        raise SimulationError(f"{call} would block the whole simulation (every node shares one "
                              f"process and a virtual clock): use {alternative} instead")
    refused.__name__ = call
    return refused


# (object, attribute, replacement): socket.socket itself stays a class (socket.socketpair and the
# hub's signal wake-up use it); the calls that reach a real network are refused.
_REFUSALS = (
    (time, "sleep", _refuse("time.sleep()", "events.sleep()")),
    (socket.socket, "connect", _refuse("a Python socket's connect()", "splay.socket / splay.net")),
    (socket.socket, "connect_ex", _refuse("a Python socket's connect_ex()", "splay.socket / splay.net")),
    (socket.socket, "bind", _refuse("a Python socket's bind()", "splay.socket / splay.net")),
    (socket.socket, "sendto", _refuse("a Python socket's sendto()", "splay.socket.udp()")),
    (socket, "create_connection", _refuse("socket.create_connection()", "splay.socket.tcp()")),
    (subprocess, "Popen", _refuse("subprocess.Popen()", "a SPLAY thread (events.thread())")),
    (subprocess, "run", _refuse("subprocess.run()", "a SPLAY thread (events.thread())")),
    (os, "system", _refuse("os.system()", "a SPLAY thread (events.thread())")),
)

_real_time = time.time
_real_monotonic = time.monotonic


# The OS thread that runs the simulation (the one that entered guard()): the virtual clock is
# its clock. Other OS threads (a metrics sampler, the progress reporter) keep the machine's.
_simulating_thread = None


def _virtual_time():
    v = _hub.virtual_time()
    return _real_time() if v is None or threading.get_ident() != _simulating_thread else v


def _virtual_monotonic():
    v = _hub.virtual_time()
    return _real_monotonic() if v is None or threading.get_ident() != _simulating_thread else v


@contextlib.contextmanager
def guard():
    """Refuse real blocking calls and serve ``time.time``/``time.monotonic`` from the virtual
    clock in the thread that entered it until the block ends (the originals are restored even
    when it raises)."""
    global _simulating_thread
    _simulating_thread = threading.get_ident()
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in _REFUSALS]
    saved += [(time, "time", time.time), (time, "monotonic", time.monotonic)]
    try:
        for obj, name, replacement in _REFUSALS:
            setattr(obj, name, replacement)
        time.time = _virtual_time
        time.monotonic = _virtual_monotonic
        yield
    finally:
        for obj, name, original in reversed(saved):
            setattr(obj, name, original)

"""The GIL around the hub's blocking poll (splayc/hub.pyx, ``_poll_libuv`` and
``_other_python_threads``).

While every SPLAY thread waits, the hub blocks in ``epoll_wait``. It releases the GIL there when
another Python thread exists (the deploy daemon's threads, a ``threading.Timer``), so that thread
runs while the hub sleeps; with no other Python thread it keeps the GIL (releasing and taking it
back would cost ~1k instructions per poll for nothing).

Each test has an OS thread do Python work and then connect to a SPLAY listening socket while the
only SPLAY thread blocks in ``accept()``: if the hub held the GIL in the poll, the OS thread could
never reach its ``connect`` and the accept would time out.
"""
import socket as pysocket
import threading

import pytest

from splay import events, socket

pytestmark = pytest.mark.timeout(60)

PATIENCE = 20          # seconds the SPLAY thread waits for the OS thread's connection


def python_work_then_connect(address, done):
    """Bytecode that needs the GIL throughout, then a connection to ``address``."""
    done.append(sum(i * i for i in range(200_000)))
    with pysocket.create_connection(address, timeout=PATIENCE):
        pass


def accept_one(server, results):
    server.settimeout(PATIENCE)
    peer = server.accept()
    results.append(peer is not None)
    if peer is not None:
        peer.close()
    server.close()


def test_a_thread_started_before_run_runs_while_the_hub_blocks():
    results, done = [], []
    server_ready = threading.Event()
    address = []

    def os_thread():
        server_ready.wait(PATIENCE)
        python_work_then_connect(address[0], done)

    t = threading.Thread(target=os_thread)
    t.start()

    def main():
        server = socket.bind("127.0.0.1", 0)
        address.append(server.getsockname())
        server_ready.set()
        accept_one(server, results)

    events.run(main)
    t.join(PATIENCE)
    assert results == [True], "the OS thread never connected: the hub held the GIL while blocked"
    assert done == [sum(i * i for i in range(200_000))]


def test_a_thread_started_inside_a_splay_thread_runs_while_the_hub_blocks():
    results, done, threads = [], [], []

    def main():
        server = socket.bind("127.0.0.1", 0)
        t = threading.Thread(target=python_work_then_connect, args=(server.getsockname(), done))
        t.start()               # its Python state exists from here: the poll releases the GIL
        threads.append(t)
        accept_one(server, results)

    events.run(main)
    threads[0].join(PATIENCE)
    assert results == [True], "the OS thread never connected: the hub held the GIL while blocked"
    assert len(done) == 1


def test_with_no_other_thread_the_hub_still_serves_and_stops():
    """The poll that keeps the GIL (a process with no other Python thread) blocks and wakes on
    I/O like the other one."""
    got = []

    def main():
        server = socket.bind("127.0.0.1", 0)
        host, port = server.getsockname()

        def client():
            c = socket.connect(host, port)
            c.send(b"ping\n")
            c.close()

        events.thread(client)
        server.settimeout(PATIENCE)
        peer = server.accept()
        peer.settimeout(PATIENCE)
        got.append(peer.receive())
        peer.close()
        server.close()

    events.run(main)
    assert got == [b"ping"]

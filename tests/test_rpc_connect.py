"""splay.rpc's connection per call (splayc/tcp.pyx ``connect_now``): the request is written as
soon as connect() returns, without waiting for the loop to see the socket writable.

On loopback the handshake is over when connect() returns; these tests make it not be: a listener
whose accept queue is full drops the SYN of a new connection (Linux), so the handshake waits for
the SYN's retransmission, one second later. The call's first write must then wait for the
handshake, bounded by the call's timeout, and the request must arrive whole, once.
"""
import socket
import threading
import time

import pytest

from splay import benc, events, rpc

pytestmark = pytest.mark.timeout(60)

REQUEST = b"40\nd4:calll6:concat3:one3:twoe4:type4:calle"
REPLY = b"10\nl6:onetwoe"


class FullListener:
    """A listener (plain stdlib sockets) whose accept queue is full: backlog 0, and one
    connection already in it, never sent anything. ``serve()`` starts answering rpc requests in
    a thread; ``requests`` are those it received."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port))   # fills the queue
        self.requests = []

    def serve(self):
        threading.Thread(target=self._accept_all, daemon=True).start()

    def _accept_all(self):
        self.sock.settimeout(10)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        conn.settimeout(10)
        data = b""
        with conn:
            while len(data) < len(REQUEST):
                chunk = conn.recv(4096)
                if not chunk:           # the filler, closed at the end
                    return
                data += chunk
            self.requests.append(data)
            conn.sendall(REPLY)

    def close(self):
        self.filler.close()
        self.sock.close()


def test_a_call_waits_for_a_handshake_still_under_way():
    listener = FullListener()
    out = {}

    def main():
        def accept_later():
            # what makes the handshake slow: nobody accepts for a while
            events.sleep(0.3)
            listener.serve()
        events.thread(accept_later)
        t0 = time.monotonic()
        out["r"] = rpc.acall(("127.0.0.1", listener.port), ["concat", "one", "two"], timeout=10)
        out["took"] = time.monotonic() - t0
    try:
        events.run(main)
    finally:
        listener.close()
    assert out["r"] == (True, ["onetwo"])
    assert listener.requests == [REQUEST]          # whole, and once
    assert out["took"] >= 0.3                      # it did wait for the handshake


def test_a_handshake_that_does_not_finish_in_time_is_a_timeout():
    listener = FullListener()                      # never accepts
    out = {}

    def main():
        t0 = time.monotonic()
        out["r"] = rpc.acall(("127.0.0.1", listener.port), ["concat", "one", "two"], timeout=0.5)
        out["took"] = time.monotonic() - t0
        # and the node goes on calling: a listener that answers
        listener.serve()
        out["after"] = rpc.acall(("127.0.0.1", listener.port), ["concat", "one", "two"],
                                 timeout=10)
    try:
        events.run(main)
    finally:
        listener.close()
    assert out["r"] == (False, "timeout")
    assert 0.4 < out["took"] < 2.5
    assert out["after"] == (True, ["onetwo"])


def test_a_refused_connection_fails_at_once():
    with socket.socket() as s:                     # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = {}

    def main():
        t0 = time.monotonic()
        out["r"] = rpc.acall(("127.0.0.1", port), ["concat", "one", "two"], timeout=10)
        out["took"] = time.monotonic() - t0
    events.run(main)
    assert out["r"] == (False, "connection refused")
    assert out["took"] < 2


def test_requests_of_one_segment_and_more_arrive_whole():
    # a request of one segment goes without TCP_NODELAY, a larger one with it (rpc_fast.pyx)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    data = b""
                    while b"\n" not in data or \
                            len(data) < data.index(b"\n") + 1 + int(data[:data.index(b"\n")]):
                        data += conn.recv(65536)
                    request = benc.decode(data[data.index(b"\n") + 1:])
                    reply = benc.encode([len(request["call"][1])])
                    conn.sendall(b"%d\n" % len(reply) + reply)
        threading.Thread(target=serve, daemon=True).start()
        sizes = [1, 1300, 1400, 1500, 300_000]
        out = []

        def main():
            for n in sizes:
                out.append(rpc.acall(("127.0.0.1", port), ["size", "x" * n], timeout=10))
        events.run(main)
    assert out == [(True, [n]) for n in sizes]

"""splay.socket.select: cooperative readiness of TCP (data, connections, close) and UDP sockets."""
import time

import pytest

from splay import events, socket
from support_events import run_main

pytestmark = pytest.mark.timeout(60)


def test_select_reports_the_readable_socket_among_several():
    def main():
        server = socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]
        clients = [socket.connect("127.0.0.1", port) for _ in range(3)]
        peers = [server.accept() for _ in range(3)]

        def later():
            events.sleep(0.05)
            clients[1].send(b"for peer 1\n")

        events.thread(later)
        readable, writable, err = socket.select(peers, [], 5)
        line = readable[0].receive() if readable else None
        for s in clients + peers + [server]:
            s.close()
        return [peers.index(s) for s in readable], writable, err, line

    assert run_main(main) == ([1], [], None, b"for peer 1")


def test_select_on_a_server_means_a_connection_to_accept():
    def main():
        server = socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]
        events.thread(lambda: socket.connect("127.0.0.1", port))
        readable, _, err = socket.select([server], None, 5)
        c = server.accept()
        ok = readable == [server] and err is None and c is not None
        c.close(), server.close()
        return ok

    assert run_main(main) is True


def test_select_timeout_and_writable():
    def main():
        server = socket.bind("127.0.0.1", 0)
        c = socket.connect("127.0.0.1", server.getsockname()[1])
        peer = server.accept()
        t0 = time.monotonic()
        timed_out = socket.select([peer], [], 0.1)
        waited = time.monotonic() - t0
        writable = socket.select([], [c], 1)
        for s in (c, peer, server):
            s.close()
        return timed_out, waited, writable[1] == [c]

    timed_out, waited, writable = run_main(main)
    assert timed_out == ([], [], "timeout")
    assert 0.09 <= waited < 5
    assert writable is True


def test_select_sees_close_and_udp_datagrams():
    def main():
        server = socket.bind("127.0.0.1", 0)
        c = socket.connect("127.0.0.1", server.getsockname()[1])
        peer = server.accept()
        u = socket.udp()
        u.setsockname("127.0.0.1", 0)
        sender = socket.udp()

        def later():
            events.sleep(0.05)
            c.close()
            sender.sendto(b"dgram", u.getsockname())

        events.thread(later)
        seen = set()
        while len(seen) < 2:
            readable, _, err = socket.select([peer, u], [], 5)
            assert err is None
            seen.update(id(s) for s in readable)
            if u in readable:
                assert u.receive() == b"dgram"
            if peer in readable:
                assert peer.receive() is None and peer.error == "closed"
            events.sleep(0.01)
        for s in (peer, server, u, sender):
            s.close()
        return seen == {id(peer), id(u)}

    assert run_main(main) is True


def test_select_bad_arguments():
    def main():
        with pytest.raises(TypeError, match="select\\(\\) takes splay sockets"):
            socket.select(["not a socket"], [], 1)
        with pytest.raises(ValueError, match="would wait forever"):
            socket.select([], [], None)
        return socket.select([], [], 0.01)

    assert run_main(main) == ([], [], "timeout")

"""splay.socket UDP: sendto/receivefrom, connected send/receive, timeouts, errors, node forms."""
import time

import pytest

from splay import Node, NotInThread, events, socket
from support_events import run_main

pytestmark = pytest.mark.timeout(60)


def bound_udp():
    u = socket.udp()
    assert u.setsockname("127.0.0.1", 0) is True, u.error
    return u, u.getsockname()[1]


def test_sendto_and_receivefrom():
    def main():
        a, pa = bound_udp()
        b, pb = bound_udp()
        assert a.sendto(b"hello", "127.0.0.1", pb) is True
        assert a.sendto("text", {"ip": "127.0.0.1", "port": pb}) is True
        assert a.sendto(b"", Node("127.0.0.1", pb)) is True
        got = [b.receivefrom(), b.receivefrom(), b.receivefrom()]
        a.close(), b.close()
        return got, pa

    got, pa = run_main(main)
    assert got == [(b"hello", "127.0.0.1", pa), (b"text", "127.0.0.1", pa), (b"", "127.0.0.1", pa)]


def test_receive_waits_for_a_later_datagram():
    def main():
        a, pa = bound_udp()
        b, pb = bound_udp()

        def later():
            events.sleep(0.05)
            a.sendto(b"later", ("127.0.0.1", pb))

        events.thread(later)
        got = b.receive()
        a.close(), b.close()
        return got

    assert run_main(main) == b"later"


def test_connected_send_and_receive():
    def main():
        a, pa = bound_udp()
        b, pb = bound_udp()
        assert a.setpeername("127.0.0.1", pb) is True
        assert b.setpeername({"ip": "127.0.0.1", "port": pa}) is True
        assert a.send(b"ping") is True
        got = b.receive()
        b.send("pong")
        back = a.receive()
        peer = a.getpeername()
        assert a.setpeername("*") is True
        unconnected_peer = a.getpeername()
        a.close(), b.close()
        return got, back, peer, unconnected_peer, pb

    got, back, peer, unconnected_peer, pb = run_main(main)
    assert (got, back) == (b"ping", b"pong")
    assert peer == ("127.0.0.1", pb)
    assert unconnected_peer is None


def test_datagram_is_cut_to_the_requested_size():
    def main():
        a, _ = bound_udp()
        b, pb = bound_udp()
        a.sendto(b"0123456789", "127.0.0.1", pb)
        a.sendto(b"abcdef", "127.0.0.1", pb)
        out = b.receive(4), b.receivefrom(3)[0]
        a.close(), b.close()
        return out

    assert run_main(main) == (b"0123", b"abc")


def test_receive_timeout():
    def main():
        u, _ = bound_udp()
        u.settimeout(0.1)
        t0 = time.monotonic()
        got = u.receivefrom()
        waited = time.monotonic() - t0
        err = u.error
        u.settimeout(0)
        immediate = u.receive(), u.error
        u.close()
        return got, err, waited, immediate

    got, err, waited, immediate = run_main(main)
    assert got is None and err == "timeout"
    assert 0.09 <= waited < 5
    assert immediate == (None, "timeout")


def test_connected_socket_reports_connection_refused():
    def main():
        gone, port = bound_udp()
        gone.close()
        u = socket.udp()
        u.setpeername("127.0.0.1", port)
        u.settimeout(2)
        u.send(b"anyone?")
        got = u.receive()
        u.close()
        return got, u.error

    assert run_main(main) == (None, "connection refused")


def test_close_wakes_the_receiver_and_later_calls_fail():
    def main():
        u, port = bound_udp()
        result = []
        events.thread(lambda: result.append((u.receive(), u.error)))
        events.sleep(0.02)
        u.close()
        u.close()
        events.sleep(0.01)
        return result, u.sendto(b"x", "127.0.0.1", port), u.error, u.is_closed()

    assert run_main(main) == ([(None, "closed")], None, "closed", True)


def test_second_concurrent_receiver_gets_busy():
    def main():
        a, _ = bound_udp()
        b, pb = bound_udp()
        first = []
        events.thread(lambda: first.append(b.receive()))
        events.sleep(0.02)
        second = b.receive(), b.error
        a.sendto(b"one", "127.0.0.1", pb)
        while not first:
            events.sleep(0.01)
        a.close(), b.close()
        return second, first

    (second, err), first = run_main(main)
    assert second is None and err.startswith("busy")
    assert first == [b"one"]


def test_killed_receiver_leaves_socket_consistent():
    def main():
        a, _ = bound_udp()
        b, pb = bound_udp()
        t = events.thread(b.receive)
        events.sleep(0.02)
        events.kill(t)
        a.sendto(b"after kill", "127.0.0.1", pb)
        got = b.receive()
        a.close(), b.close()
        return got

    assert run_main(main) == b"after kill"


def test_many_datagrams_keep_order_and_count():
    def main():
        a, _ = bound_udp()
        b, pb = bound_udp()
        b.settimeout(5)
        got = []
        for burst in range(5):          # bursts small enough for the kernel's receive buffer
            for i in range(burst * 100, burst * 100 + 100):
                a.sendto(b"%d" % i, "127.0.0.1", pb)
            got += [b.receive() for _ in range(100)]
        stats = a.getstats()[1], b.getstats()[0]
        a.close(), b.close()
        return got, stats

    got, (sent, received) = run_main(main)
    assert got == [b"%d" % i for i in range(500)]
    assert sent == received == sum(len(b"%d" % i) for i in range(500))


def test_errors_and_bad_arguments():
    def main():
        u, port = bound_udp()
        other = socket.udp()
        in_use = other.setsockname("127.0.0.1", port), other.error
        too_big = u.sendto(b"x" * 70000, "127.0.0.1", port), u.error
        unknown_host = u.sendto(b"x", "no such host!", 9), u.error
        with pytest.raises(TypeError, match="datagram must be bytes or str"):
            u.sendto(3.5, "127.0.0.1", port)
        with pytest.raises(ValueError, match="invalid port"):
            u.sendto(b"x", "127.0.0.1", -1)
        bad_option = u.setoption("nope", 1), u.error
        good_option = u.setoption("broadcast", True)
        # The socket still works after all of that.
        u.sendto(b"fine", "127.0.0.1", port)
        still = u.receive()
        u.close(), other.close()
        return in_use, too_big, unknown_host, bad_option, good_option, still

    in_use, too_big, unknown_host, bad_option, good_option, still = run_main(main)
    assert in_use == (None, "address already in use")
    assert too_big[0] is None and too_big[1]
    assert unknown_host == (None, "host not found")
    assert bad_option[0] is None and "unsupported option" in bad_option[1]
    assert good_option is True
    assert still == b"fine"


def test_receive_outside_a_thread_raises_not_in_thread():
    u = socket.udp()
    u.setsockname("127.0.0.1", 0)
    with pytest.raises(NotInThread):
        u.receive()
    u.close()


def test_idle_udp_socket_does_not_keep_the_loop_alive():
    kept = []

    def main():
        u, _ = bound_udp()
        kept.append(u)
        return "done"

    t0 = time.monotonic()
    assert run_main(main) == "done"
    assert time.monotonic() - t0 < 5
    kept[0].close()


def test_sendto_alternating_destinations_reach_each_one():
    # splayc.addr keeps the last parsed address: every change of ip, port or ip type must still
    # reach the right socket.
    def main():
        a, pa = bound_udp()
        b = socket.udp()
        assert b.setsockname("127.0.0.2", 0)
        pb = b.getsockname()[1]
        sender = socket.udp()
        plan = [("127.0.0.1", pa), ("127.0.0.2", pb), ("127.0.0.1", pa), (b"127.0.0.1", pa),
                ("localhost", pa), ("127.0.0.2", pb), ("127.0.0.1", pb), ("127.0.0.2", pb)]
        for i, (ip, port) in enumerate(plan):
            assert sender.sendto(b"%d" % i, ip, port)
        got = {}
        for s, name in ((a, "a"), (b, "b")):
            s.settimeout(0.3)
            while True:
                d = s.receive()
                if d is None:
                    break
                got.setdefault(name, []).append(int(d))
        for s in (a, b, sender):
            s.close()
        return got, pa == pb
    # 127.0.0.1:pb has no socket of ours (lost), unless pb happens to be a's port too
    got, same_port = run_main(main)
    assert got == {"a": [0, 2, 3, 4] + ([6] if same_port else []), "b": [1, 5, 7]}

"""splay.net: the manual's examples (servers, callbacks, client, udp_helper), limits and teardown."""
import socket as pysocket

import pytest

from splay import events, net, socket
from lua_peer import AppProcess, free_port
from support_events import run, wait_until

pytestmark = pytest.mark.timeout(60)


def connect(port):
    s = socket.connect("127.0.0.1", port)
    assert s is not None, socket.last_error
    s.settimeout(10)
    return s


def echo_server(s):
    """The manual's multi-client echo server."""
    r = s.receive("*l")
    while r:
        s.send(r + b"\n")
        r = s.receive("*l")


def test_manual_echo_server():
    port = free_port()

    def main():
        net.server(port, echo_server)
        a, b = connect(port), connect(port)
        a.send("one\n")
        b.send("two\n")
        out = [a.receive(), b.receive()]
        a.send("three\n")
        out.append(a.receive())
        a.close()
        b.close()
        net.stop_server(port)
        return out
    assert run(main) == [b"one", b"two", b"three"]


def test_manual_echo_server_in_another_process(tmp_path):
    port = free_port()
    app = AppProcess(tmp_path, f'''
        from splay import events, net

        def echo_server(s):
            r = s.receive("*l")
            while r:
                s.send(r + b"\\n")
                r = s.receive("*l")

        def main():
            net.server({port}, echo_server)
            print("ready", flush=True)

        events.run(main)
    ''')
    with app:
        with pysocket.create_connection(("127.0.0.1", port), timeout=10) as s:
            f = s.makefile("rwb")
            f.write(b"hello\r\n")
            f.flush()
            assert f.readline() == b"hello\n"


def test_manual_handler_that_returns_closes_the_socket():
    """The manual's hello_server: the handler starts threads and returns, so the socket closes."""
    port = free_port()

    def hello_server(s):
        events.thread(lambda: s.send("hello\n"))

    def main():
        net.server(port, hello_server)
        c = connect(port)
        data = c.receive("*a")
        err = c.error
        net.stop_server(port)
        return data, err
    data, err = run(main)
    assert data in (None, b"", b"hello\n")          # closed right after the handler returned
    assert data is not None or err == "closed"


def test_manual_callbacks_receive_send():
    port = free_port()
    sent = []

    def send(s):
        while events.sleep(0.02):
            if not s.send("hello\n"):
                break
            sent.append(1)

    def receive(s):
        s.receive("*l")                 # returns when the client closes: send() is killed

    def main():
        net.server(port, [receive, send, None, lambda s: events.fire("finalized")])
        c = connect(port)
        lines = [c.receive() for _ in range(3)]
        waiter = events.thread(lambda: events.wait("finalized", 10))
        c.close()
        waiter.join()                   # finalize runs after receive() ended and send() died
        count = len(sent)
        events.sleep(0.2)
        net.stop_server(port)
        return lines, count, len(sent)
    lines, count, later = run(main)
    assert lines == [b"hello"] * 3
    assert count == later                # send() was killed when receive() ended


def test_manual_complete_example_with_client():
    port = free_port()
    log = []

    def send(s):
        while events.sleep(0.02):
            if not s.send("hello\n"):
                break

    def receive(s):
        s.receive("*l")

    def init(s, connect):
        ip, p = s.getpeername()
        log.append(("connection to" if connect else "connection from", ip))

    def final(s):
        ip, p = s.getpeername()
        log.append(("closing", ip))

    def c_send(s):
        events.sleep(0.2)

    def c_receive(s):
        while True:
            m = s.receive("*l")
            if not m:
                break
            log.append(("got", m))

    def main():
        net.server(port, {"receive": receive, "send": send, "initialize": init,
                          "finalize": final})
        assert net.client({"ip": "localhost", "port": port},
                          {"send": c_send, "receive": c_receive, "finalize": final,
                           "initialize": init}) is True
        wait_until(lambda: [e[0] for e in log].count("closing") == 2)
        net.stop_server(port)
    run(main)
    kinds = [e[0] for e in log]
    assert "connection to" in kinds and "connection from" in kinds
    assert kinds.count("closing") == 2
    assert ("got", b"hello") in log
    # the client's send() ended after 0.2 s, which killed its receive(), then finalize ran
    assert kinds.index("closing") > kinds.index("got")


def test_initialize_returning_false_closes_the_connection():
    port = free_port()
    started = []

    def main():
        net.server(port, {"initialize": lambda s: False, "receive": lambda s: started.append(1),
                          "finalize": lambda s: started.append("finalize")})
        c = connect(port)
        r = c.receive()
        net.stop_server(port)
        return r, c.error
    assert run(main) == (None, "closed")
    assert started == []


def test_max_connections():
    port = free_port()
    state = {"running": 0, "peak": 0}

    def handler(s):
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        s.receive()
        state["running"] -= 1

    def main():
        net.server(port, handler, max=2)
        clients = [connect(port) for _ in range(4)]
        wait_until(lambda: state["running"] == 2)
        events.sleep(0.1)               # time for a third handler to start, were max not enforced
        peak_while_blocked = state["peak"]
        for c in clients:
            c.send("bye\n")
        wait_until(lambda: state["running"] == 0 and state["peak"] == 2)
        for c in clients:
            c.close()
        net.stop_server(port)
        return peak_while_blocked, state["peak"]
    assert run(main) == (2, 2)


def test_stop_server_closes_listener_and_connections():
    port = free_port()

    def main():
        net.server(port, echo_server)
        c = connect(port)
        c.send("x\n")
        assert c.receive() == b"x"
        assert net.stop_server(port) is True
        r = c.receive()
        refused = socket.connect("127.0.0.1", port)
        return r, c.error, refused, socket.last_error, net.stop_server(port)
    assert run(main) == (None, "closed", None, "connection refused", None)


def test_net_server_on_a_busy_port_raises():
    port = free_port()

    def main():
        net.server(port, echo_server)
        try:
            with pytest.raises(OSError):
                net.server(port, echo_server)
        finally:
            net.stop_server(port)
    run(main)


def test_bad_handlers_are_refused():
    with pytest.raises(TypeError):
        net._callbacks(3)
    with pytest.raises(ValueError, match="unknown net callback"):
        net._callbacks({"recieve": print})
    with pytest.raises(TypeError):
        net._callbacks([1])


def test_manual_udp_helper_with_handler():
    port = free_port(pysocket.SOCK_DGRAM)
    got = []

    def print_server(data, ip, p):
        got.append((data, ip))
        if len(got) == 2:
            events.fire("both")

    def main():
        u = net.udp_helper(port, print_server)
        u.s.sendto("hello", "127.0.0.1", port)
        u.s.sendto("world", "127.0.0.1", port)
        ok = events.wait("both", 5)
        u.close()
        return ok
    assert run(main) == (True,)
    assert sorted(got) == [(b"hello", "127.0.0.1"), (b"world", "127.0.0.1")]


def test_udp_helper_without_handler_fires_events():
    port = free_port(pysocket.SOCK_DGRAM)

    def main():
        u = net.udp_helper(port)
        assert u.port == port
        s = socket.udp()
        s.sendto("ping", "127.0.0.1", port)
        got = events.wait(f"udp:{port}", 5)
        s.close()
        u.close()
        return got, s.getsockname()
    (ok, data, ip, p), _ = run(main)
    assert (ok, data, ip) == (True, b"ping", "127.0.0.1") and p > 0


def test_exit_stops_net_servers_and_udp_helpers():
    tport, uport = free_port(), free_port(pysocket.SOCK_DGRAM)

    def main():
        net.server(tport, echo_server)
        net.udp_helper(uport)
        events.exit()
    events.run(main)                     # returns: nothing keeps the loop alive any more

    def after():
        return socket.connect("127.0.0.1", tport), socket.last_error
    assert run(after) == (None, "connection refused")


def test_client_accepts_ip_and_port_as_two_arguments():
    port = free_port()
    got = []

    def main():
        net.server(port, echo_server)
        ok = net.client("127.0.0.1", port, {
            "initialize": lambda s: s.send(b"two args\n") and None,
            "receive": lambda s: got.append(s.receive())})
        wait_until(lambda: got)
        net.stop_server(port)
        return ok
    assert run(main) is True
    assert got == [b"two args"]


def test_client_without_handlers_is_refused():
    def main():
        with pytest.raises(TypeError, match="needs the handlers"):
            net.client("127.0.0.1", free_port())
        with pytest.raises(TypeError, match="at most 1 more"):
            net.client(("127.0.0.1", free_port()), {}, {})
    run(main)

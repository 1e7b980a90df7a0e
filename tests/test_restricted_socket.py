"""splay.restricted_socket: per-node limits and exact counters in the compiled socket layer.

Each test runs its code as a thread of a small node object carrying its own policy
(``splayc.hub.spawn_in_node``), the way ``--in-process`` nodes do, so tests never touch the
process-wide default (except the one that checks ``init`` and resets it). The hostile jobs at the
end run through the real node runner with their limits in SPLAY_JOB.
"""
import importlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from splay import events, restricted_socket, socket
from splay.job import ENV_VAR
from splay import utils
from splayc import accounting, hub
from support_log import check_module_logger

pytestmark = pytest.mark.timeout(60)

ROOT = pathlib.Path(__file__).resolve().parent.parent


class TestNode:
    """A node object of its own, as ``--in-process`` uses (threads inherit it)."""
    __test__ = False

    def __init__(self, settings=None):
        self.net_policy = None if settings is None else restricted_socket.new_policy(settings)


def run_nodes(*bodies):
    """Run each ``(node, fn)`` as a thread of that node; return their results (re-raise errors)."""
    out = {}

    def main():
        tasks = [hub.spawn_in_node(node, fn) for node, fn in bodies]
        for t in tasks:
            t.join()
        out["results"] = [(t.exception, t.result) for t in tasks]

    events.run(main)
    for exc, _ in out["results"]:
        if exc is not None:
            raise exc
    return [r for _, r in out["results"]]


def run_in(node, fn):
    return run_nodes((node, fn))[0]


def echo_server(ports):
    """``(node, fn)``: an unrestricted node echoing length-prefixed messages (one length byte).

    It puts its port in ``ports["echo"]``, fires "echo ready", and stops on the event "done".
    """
    def serve():
        srv = socket.bind("127.0.0.1", 0)
        ports["echo"] = srv.getsockname()[1]
        events.thread(lambda: (events.wait("done"), srv.close()))
        events.fire("echo ready")
        while True:
            c = srv.accept()
            if c is None:
                return
            events.thread(lambda c=c: echo(c))

    def echo(c):
        while True:
            data = c.receive(1)
            if data is None:
                c.close()
                return
            rest = c.receive(ord(data)) if ord(data) else b""
            if rest is None:
                c.close()
                return
            c.send(rest)

    return TestNode(), serve


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize("settings, named", [
    ({"max_send": -1}, "max_send"),
    ({"max_receive": "lots"}, "max_receive"),
    ({"max_sockets": 2.5}, "max_sockets"),
    ({"max_sockets": True}, "max_sockets"),
    ({"start_port": 0}, "start_port"),
    ({"end_port": 70000}, "end_port"),
    ({"start_port": 3000, "end_port": 2000}, "start_port"),
    ({"local_ip": "not-an-ip"}, "local_ip"),
    ({"blacklist": "10.0.0.1"}, "blacklist"),
    ({"blacklist": [""]}, "blacklist"),
    ({"blacklist": ["*"]}, "blacklist"),
    ({"blacklist": ["10.*.1"]}, "blacklist"),
    ({"blacklist": ["300.1.1.1"]}, "blacklist"),
    ({"blacklist": ["a.*.org"]}, "blacklist"),
    ({"blacklist": ["10.0.0.0/33"]}, "blacklist"),
    ({"udp_drop_ratio": 1.5}, "udp_drop_ratio"),
    ({"udp_drop_ratio": float("nan")}, "udp_drop_ratio"),
])
def test_bad_settings_are_refused_naming_the_setting(settings, named):
    with pytest.raises(ValueError, match=named):
        restricted_socket.init(settings, node=TestNode())
    with pytest.raises(ValueError, match=named):
        restricted_socket.new_policy(settings)


def test_limits_infos_and_stats_of_the_current_node():
    node = TestNode({"max_send": 1000, "max_receive": 2000, "max_sockets": 5,
                     "start_port": 41000, "end_port": 41009, "local_ip": "127.0.0.1",
                     "blacklist": ["10.*"], "other_key": "ignored"})
    plain = TestNode()

    def body():
        return socket.limits(), socket.stats(), socket.infos()

    (limits, stats, infos), (plimits, pstats, pinfos) = run_nodes((node, body), (plain, body))
    assert limits == (1000, 2000, 5, 41000, 41009, "127.0.0.1")
    assert stats == (0, 0, 0, 0)
    assert "sent 0/1000 bytes" in infos and "bind ports 41000-41009" in infos
    assert plimits is None and pstats is None and "off" in pinfos


def test_init_without_a_node_sets_the_process_default_and_keeps_counters():
    assert accounting.default_policy() is None
    try:
        restricted_socket.init({"max_sockets": 3})
        assert socket.limits() == (None, None, 3, None, None, None)
        before = accounting.default_policy()
        u = socket.udp()
        assert socket.stats() == (0, 0, 0, 1)
        restricted_socket.init({"max_sockets": 4, "max_send": 10})   # new limits, same counters
        assert accounting.default_policy() is before
        assert socket.limits()[:3] == (10, None, 4)
        assert socket.stats() == (0, 0, 0, 1)
        u.close()
        assert socket.stats() == (0, 0, 0, 0)
    finally:
        accounting.install_default(None)
    assert socket.limits() is None


def test_init_inside_a_node_restricts_that_node_only():
    node = TestNode()

    def body():
        restricted_socket.init({"max_sockets": 1})
        return socket.limits()[2]

    assert run_in(node, body) == 1
    assert node.net_policy is not None and accounting.default_policy() is None


# ---------------------------------------------------------------------------- exact counters


def test_tcp_bytes_and_sockets_are_counted_exactly():
    client, server = TestNode({}), TestNode({})
    ready = {}

    def serve():
        srv = socket.bind("127.0.0.1", 0)
        ready["port"] = srv.getsockname()[1]
        events.fire("ready")
        c = srv.accept()
        during = socket.stats()
        data = c.receive(1000)
        c.send(data + b"!")
        assert c.receive() is None            # the client closed
        c.close()
        srv.close()
        return during, socket.stats()

    def talk():
        events.wait("ready")
        s = socket.connect("127.0.0.1", ready["port"])
        assert s.send(b"x" * 1000) == 1000
        assert s.receive(1001) == b"x" * 1000 + b"!"
        during = socket.stats()
        s.close()
        return during, socket.stats()

    (s_during, s_after), (c_during, c_after) = run_nodes((server, serve), (client, talk))
    assert s_during[2:] == (2, 0)             # the listening socket and the accepted one
    assert s_after == (1001, 1000, 0, 0)
    assert c_during == (1000, 1001, 1, 0)
    assert c_after == (1000, 1001, 0, 0)
    assert server.net_policy.stats() == s_after and client.net_policy.stats() == c_after


def test_udp_bytes_and_sockets_are_counted_exactly():
    a, b = TestNode({}), TestNode({})
    ports = {}

    def receiver():
        u = socket.udp()
        assert u.setsockname("127.0.0.1", 0)
        ports["b"] = u.getsockname()[1]
        events.fire("ready")
        got = [u.receivefrom()[0] for _ in range(3)]
        during = socket.stats()
        u.close()
        return got, during, socket.stats()

    def sender():
        events.wait("ready")
        u = socket.udp()
        for size in (10, 200, 1):
            assert u.sendto(b"d" * size, "127.0.0.1", ports["b"]) is True
        during = socket.stats()
        u.close()
        return during, socket.stats()

    (got, r_during, r_after), (s_during, s_after) = run_nodes((b, receiver), (a, sender))
    assert [len(g) for g in got] == [10, 200, 1]
    assert r_during == (0, 211, 0, 1) and r_after == (0, 211, 0, 0)
    assert s_during == (211, 0, 0, 1) and s_after == (211, 0, 0, 0)


def test_two_nodes_in_one_process_have_their_own_counters_and_limits():
    n1, n2 = TestNode({"max_sockets": 1}), TestNode({"max_sockets": 3})

    def open_many():
        socks = []
        while True:
            s = socket.udp()
            if s is None:
                break
            socks.append(s)
        stats = socket.stats()
        for s in socks:
            s.close()
        return len(socks), stats

    (c1, st1), (c2, st2) = run_nodes((n1, open_many), (n2, open_many))
    assert (c1, c2) == (1, 3)
    assert st1 == (0, 0, 0, 1) and st2 == (0, 0, 0, 3)
    assert n1.net_policy.stats() == n2.net_policy.stats() == (0, 0, 0, 0)


def test_sockets_of_a_stopped_node_are_uncounted_when_closed_at_exit():
    node = TestNode({})

    def body():
        socket.udp()
        socket.tcp()
        return socket.stats()

    assert run_in(node, body) == (0, 0, 1, 1)
    # events.run() closes what its nodes left open
    assert node.net_policy.stats() == (0, 0, 0, 0)


# ---------------------------------------------------------------------------- each limit


def test_max_sockets_refuses_creation_and_does_not_count():
    node = TestNode({"max_sockets": 2})

    def body():
        t = socket.tcp()
        u = socket.udp()
        assert socket.tcp() is None and socket.last_error == "restricted"
        assert socket.udp() is None and socket.last_error == "restricted"
        assert socket.connect("127.0.0.1", 9) is None and socket.last_error == "restricted"
        assert socket.bind("127.0.0.1", 0) is None and socket.last_error == "restricted"
        refused_stats = socket.stats()
        t.close()
        again = socket.tcp()              # a closed socket frees its place
        assert again is not None
        again.close()
        u.close()
        return refused_stats, socket.stats()

    refused_stats, after = run_in(node, body)
    assert refused_stats == (0, 0, 1, 1)
    assert after == (0, 0, 0, 0)


def test_max_sockets_refuses_an_accepted_connection_and_the_server_keeps_accepting():
    server = TestNode({"max_sockets": 2})     # the listening socket + one connection
    ports = {}

    def serve():
        srv = socket.bind("127.0.0.1", 0)
        ports["p"] = srv.getsockname()[1]
        events.fire("ready")
        first = srv.accept()
        refused = srv.accept()
        error = srv.error
        first.close()
        third = srv.accept()                  # room again
        line = third.receive()
        third.close()
        srv.close()
        return refused, error, line

    def clients():
        events.wait("ready")
        a = socket.connect("127.0.0.1", ports["p"])
        b = socket.connect("127.0.0.1", ports["p"])
        assert b.receive() is None and b.error == "closed"      # dropped by the server
        c = socket.connect("127.0.0.1", ports["p"])
        c.send(b"hello\n")
        a.close(), b.close(), c.close()
        return True

    (refused, error, line), _ = run_nodes((server, serve), (TestNode(), clients))
    assert refused is None and error == "restricted" and line == b"hello"
    assert server.net_policy.stats()[2:] == (0, 0)


def test_max_send_refuses_the_send_that_would_pass_it_and_does_not_count():
    node = TestNode({"max_send": 100})

    ports = {}

    def body():
        events.wait("echo ready")
        port = ports["echo"]
        s = socket.connect("127.0.0.1", port)
        assert s.send(bytes([59]) + b"a" * 59) == 60
        assert s.receive(59) == b"a" * 59
        assert s.send(b"b" * 41) is None and s.error == "restricted"
        assert socket.stats()[0] == 60
        assert s.send(bytes([39]) + b"c" * 39) == 40             # exactly up to the limit
        assert s.receive(39) == b"c" * 39
        assert s.send(b"d") is None and s.error == "restricted"
        u = socket.udp()
        assert u.sendto(b"e", "127.0.0.1", port) is None and u.error == "restricted"
        result = socket.stats()[0]
        s.close(), u.close()
        events.fire("done")
        return result

    assert run_nodes(echo_server(ports), (node, body))[1] == 100
    assert node.net_policy.refused == 3


def test_max_send_counts_udp_and_refuses_the_datagram_that_would_pass_it():
    node = TestNode({"max_send": 50})

    def body():
        rx = socket.udp()
        rx.setsockname("127.0.0.1", 0)
        port = rx.getsockname()[1]
        u = socket.udp()
        assert u.sendto(b"x" * 30, "127.0.0.1", port) is True
        assert u.sendto(b"y" * 21, "127.0.0.1", port) is None and u.error == "restricted"
        assert u.sendto(b"z" * 20, "127.0.0.1", port) is True
        got = [rx.receive(), rx.receive()]
        rx.settimeout(0.2)
        assert rx.receive() is None and rx.error == "timeout"      # the refused one never left
        return got, socket.stats()

    got, stats = run_in(node, body)
    assert got == [b"x" * 30, b"z" * 20]
    assert stats[:2] == (50, 50)


def test_max_receive_drops_what_does_not_fit_and_the_receive_fails_restricted():
    node = TestNode({"max_receive": 100})
    ports = {}

    def peer():                               # unrestricted
        srv = socket.bind("127.0.0.1", 0)
        ports["p"] = srv.getsockname()[1]
        events.fire("ready")
        c = srv.accept()
        c.send(b"a" * 60)
        events.wait("go")
        c.send(b"b" * 30)
        events.wait("go")
        c.send(b"c" * 50)                     # would pass the limit
        c.receive()                           # until the restricted node closes
        c.close(), srv.close()

    def restricted():
        events.wait("ready")
        s = socket.connect("127.0.0.1", ports["p"])
        assert s.receive(60) == b"a" * 60
        assert socket.stats()[1] == 60
        events.fire("go")
        while socket.stats()[1] < 90:         # the 30 bytes are buffered, not yet received
            socket.select([s], None, 5.0)
            events.yield_()
        events.fire("go")
        assert s.receive(30) == b"b" * 30      # buffered before the refusal: still readable
        assert s.receive(1) is None and s.error == "restricted" and s.partial == b""
        assert s.receive(1) is None and s.error == "restricted"
        stats = socket.stats()
        s.close()
        return stats

    _, stats = run_nodes((TestNode(), peer), (node, restricted))
    assert stats[1] == 90
    assert node.net_policy.refused == 1


def test_max_receive_drops_a_udp_datagram_that_does_not_fit():
    node = TestNode({"max_receive": 100})
    ports = {}

    def restricted():
        u = socket.udp()
        u.setsockname("127.0.0.1", 0)
        ports["p"] = u.getsockname()[1]
        events.fire("ready")
        first = u.receive()
        second = u.receive()
        error = u.error
        third = u.receive()
        return first, second, error, third, socket.stats()

    def peer():
        events.wait("ready")
        u = socket.udp()
        for data in (b"a" * 80, b"b" * 50, b"c" * 20):
            u.sendto(data, "127.0.0.1", ports["p"])
            events.sleep(0.02)                # one datagram per read callback, in order
        u.close()

    (first, second, error, third, stats), _ = run_nodes((node, restricted), (TestNode(), peer))
    assert first == b"a" * 80
    assert second is None and error == "restricted"
    assert third == b"c" * 20                 # a later datagram that fits is delivered
    assert stats[1] == 100


def test_bind_outside_the_port_range_is_refused_and_port_zero_picks_inside():
    node = TestNode({"start_port": 41230, "end_port": 41239})

    def body():
        assert socket.bind("127.0.0.1", 41240) is None and socket.last_error == "restricted"
        assert socket.bind("127.0.0.1", 80) is None and socket.last_error == "restricted"
        a = socket.bind("127.0.0.1", 0)
        b = socket.bind("127.0.0.1", 0)
        u = socket.udp()
        assert u.setsockname("127.0.0.1", 50000) is None and u.error == "restricted"
        assert u.setsockname("127.0.0.1", 0) is True
        ports = (a.getsockname()[1], b.getsockname()[1], u.getsockname()[1])
        c = socket.bind("127.0.0.1", 41239)
        last = c.getsockname()[1] if c else socket.last_error
        for s in (a, b, u, c):
            if s:
                s.close()
        return ports, last, socket.stats()

    ports, last, stats = run_in(node, body)
    assert all(41230 <= p <= 41239 for p in ports) and ports[0] != ports[1]
    assert last == 41239
    assert stats[2:] == (0, 0)
    assert node.net_policy.refused == 3


def test_forced_local_ip_for_bind_and_outgoing_connections():
    node = TestNode({"local_ip": "127.0.0.2"})
    ports = {}

    def peer():
        srv = socket.bind("127.0.0.1", 0)
        ports["p"] = srv.getsockname()[1]
        events.fire("ready")
        c = srv.accept()
        seen = c.getpeername()[0]
        c.close(), srv.close()
        return seen

    def restricted():
        events.wait("ready")
        srv = socket.bind("*", 0)
        bound = srv.getsockname()[0]
        srv.close()
        u = socket.udp()
        u.setsockname("0.0.0.0", 0)
        ubound = u.getsockname()[0]
        u.close()
        s = socket.connect("127.0.0.1", ports["p"])
        s.receive()
        s.close()
        # UDP: a connected socket and an unbound one leave from the forced address too
        rx = socket.udp()
        rx.setsockname("127.0.0.1", 0)            # bound to 127.0.0.2 in fact
        rx.settimeout(10)
        connected = socket.udp()
        assert connected.setpeername(rx.getsockname()) is True, connected.error
        assert connected.send(b"c") is True, connected.error
        unbound = socket.udp()
        assert unbound.sendto(b"u", rx.getsockname()) is True, unbound.error
        sources = sorted(rx.receivefrom()[1] for _ in range(2))
        for u in (rx, connected, unbound):
            u.close()
        return bound, ubound, sources

    seen, (bound, ubound, sources) = run_nodes((TestNode(), peer), (node, restricted))
    assert bound == ubound == seen == "127.0.0.2"
    assert sources == ["127.0.0.2", "127.0.0.2"]


def test_blacklisted_hosts_are_refused_and_nothing_counts():
    node = TestNode({"blacklist": ["127.0.0.5", "127.1.*", "127.2.0.0/16", "*.blocked.test",
                                   "localhost", "::1"]})

    ports = {}

    def body():
        events.wait("echo ready")
        port = ports["echo"]
        refused = []
        for host in ("127.0.0.5", "127.1.2.3", "127.2.200.1", "node.blocked.test",
                     "a.b.blocked.test", "localhost", "LOCALHOST", "::1"):
            s = socket.connect(host, port)
            refused.append((host, s is None and socket.last_error == "restricted"))
        u = socket.udp()
        refused.append(("udp", u.sendto(b"x", "127.1.0.1", port) is None and u.error == "restricted"))
        refused.append(("peer", u.setpeername("node.blocked.test", port) is None
                        and u.error == "restricted"))
        stats = socket.stats()
        ok = socket.connect("127.0.0.1", port)              # not blacklisted
        allowed = ok is not None
        ok.close(), u.close()
        events.fire("done")
        return refused, stats, allowed

    _, (refused, stats, allowed) = run_nodes(echo_server(ports), (node, body))
    assert all(ok for _, ok in refused), refused
    assert stats == (0, 0, 0, 1)              # the UDP socket; the refused TCP ones are closed
    assert allowed
    assert node.net_policy.refused == 10


def test_udp_drop_ratio_drops_datagrams_but_counts_them_as_sent():
    all_dropped = TestNode({"udp_drop_ratio": 1.0})
    half = TestNode({"udp_drop_ratio": 0.5})
    half.net_policy.seed(12345)
    ports = {}

    def receiver():
        u = socket.udp()
        u.setsockname("127.0.0.1", 0)
        ports["p"] = u.getsockname()[1]
        events.fire("ready")
        u.settimeout(0.5)
        got = 0
        while u.receive() is not None:
            got += 1
        u.close()
        return got

    def sender(n):
        def send():
            events.wait("ready")
            u = socket.udp()
            for i in range(n):
                assert u.sendto(b"p", "127.0.0.1", ports["p"]) is True
                if i % 50 == 49:
                    events.sleep(0.005)       # let the receiver drain the kernel buffer
            u.close()
            return socket.stats()[0]
        return send

    got, sent = run_nodes((TestNode(), receiver), (all_dropped, sender(20)))
    assert got == 0 and sent == 20
    got, sent = run_nodes((TestNode(), receiver), (half, sender(1000)))
    assert sent == 1000
    assert 350 <= got <= 650


def test_rpc_between_restricted_nodes_is_counted_and_max_send_stops_calls():
    rpc = pytest.importorskip("splay.rpc")
    server, client = TestNode({}), TestNode({"max_send": 400})
    ports = {}

    def serve():
        srv = socket.bind("127.0.0.1", 0)     # find a free port, then serve RPC on it
        ports["p"] = srv.getsockname()[1]
        srv.close()
        rpc.server(ports["p"], namespace={"add": lambda a, b: a + b})
        events.fire("ready")
        events.wait("done")
        rpc.stop_server(ports["p"])

    def call():
        events.wait("ready")
        results = []
        while True:
            ok, r = rpc.acall(("127.0.0.1", ports["p"]), ["add", 1, 2], timeout=5)
            if not ok:
                results.append(r)
                break
            results.append(r[0])
        stats = socket.stats()
        events.fire("done")
        return results, stats

    _, (results, stats) = run_nodes((server, serve), (client, call))
    assert results[:-1] and all(r == 3 for r in results[:-1])
    assert "restricted" in results[-1]
    assert 0 < stats[0] <= 400 and stats[1] > 0


# ---------------------------------------------------------------------------- hostile jobs


HOSTILE = {
    "too_many_sockets": ("""
        from splay.base import *
        socks = []
        while len(socks) < 100:
            s = socket.udp()
            if s is None:
                print("refused after", len(socks), "sockets:", socket.last_error)
                break
            socks.append(s)
        socks.pop().close()
        print("alive", socket.udp() is not None, socket.stats())
    """, {"max_sockets": 5}, ["refused after 5 sockets: restricted", "alive True (0, 0, 0, 5)"]),
    "send_past_max_send": ("""
        from splay.base import *
        def main():
            rx = socket.udp(); rx.setsockname("127.0.0.1", 0)
            u = socket.udp()
            sent = 0
            while u.sendto(b"x" * 100, rx.getsockname()) is True:
                sent += 100
            print("refused after", sent, "bytes:", u.error)
            print("alive", u.sendto(b"y" * 24, rx.getsockname()), socket.stats()[0])
        events.run(main)
    """, {"max_send": 1024}, ["refused after 1000 bytes: restricted", "alive True 1024"]),
    "bind_outside_ports": ("""
        from splay.base import *
        for port in (22, 8080, 45000):
            print(port, socket.bind("127.0.0.1", port), socket.last_error)
        s = socket.bind("127.0.0.1", 0)
        print("alive", 41300 <= s.getsockname()[1] <= 41310)
    """, {"start_port": 41300, "end_port": 41310},
        ["22 None restricted", "8080 None restricted", "45000 None restricted", "alive True"]),
    "connect_blacklisted": ("""
        from splay.base import *
        def main():
            srv = socket.bind("127.0.0.1", 0)
            for host in ("127.0.0.9", "victim.example.org", "127.0.0.1"):
                s = socket.connect(host, srv.getsockname()[1])
                print(host, "refused:" if s is None else "connected", socket.last_error)
            print("alive", socket.stats()[2:])
        events.run(main)
    """, {"blacklist": ["127.0.0.9", "*.example.org"]},
        ["127.0.0.9 refused: restricted", "victim.example.org refused: restricted",
         "127.0.0.1 connected None", "alive (2, 0)"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_job_is_stopped_with_restricted_and_keeps_running(tmp_path, name):
    source, settings, expected = HOSTILE[name]
    app = tmp_path / f"{name}.py"
    app.write_text(textwrap.dedent(source))
    job = utils.generate_job(0, 1, first_port=41400, settings=settings)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    env[ENV_VAR] = job.to_json()
    out = subprocess.run([sys.executable, "-m", "splay.launch.node", str(app)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == expected, out.stdout + out.stderr


def test_node_runner_refuses_bad_restricted_settings(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("print('ran')\n")
    job = utils.generate_job(0, 1, settings={"max_sockets": -3})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    env[ENV_VAR] = job.to_json()
    out = subprocess.run([sys.executable, "-m", "splay.launch.node", str(app)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ran" not in out.stdout
    assert "max_sockets" in out.stderr and "restricted-socket" in out.stderr


def test_in_process_nodes_get_their_own_policy_from_their_jobs(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        from splay.base import *
        def main():
            socks = []
            while len(socks) < 20:
                s = socket.udp()
                if s is None:
                    break
                socks.append(s)
            print("node", job.position, "opened", len(socks), socket.limits()[2])
        events.run(main)
    """))
    jobs = [utils.generate_job(i, 2, first_port=41500, settings={"max_sockets": 2 + i})
            for i in range(2)]
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps([j.to_dict() for j in jobs]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]),
               SPLAY_JOBS_FILE=str(jobs_file))
    out = subprocess.run([sys.executable, "-m", "splay.launch.in_process", str(app)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = sorted(line.split("\x1f")[-1] for line in out.stdout.splitlines() if "opened" in line)
    assert lines == ["node 0 opened 2 2", "node 1 opened 3 3"]


def test_module_logger_l_o():
    check_module_logger(importlib.import_module("splay.restricted_socket"), "restricted_socket")

"""splay.rpcq specifics: the window, message matching, idle and LRU closing, reconnection."""
import os
import pathlib
import subprocess
import sys
import time

import pytest

from splay import events, rpcq
from lua_peer import AppProcess, free_port
from support_events import restored_settings, run

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings():
    """rpcq.settings, restored after the test."""
    yield from restored_settings(rpcq)


def concurrency_probe():
    state = {"running": 0, "peak": 0}

    def slow(seconds):
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        events.sleep(seconds)
        state["running"] -= 1
        return seconds
    return state, {"slow": slow, "echo": lambda x: x}


@pytest.mark.parametrize("window", [1, 2, 5])
def test_window_bounds_the_calls_in_flight(settings, window):
    settings["window_size"] = window
    state, ns = concurrency_probe()
    port = free_port()

    def main():
        rpcq.server(port, namespace=ns)
        node = ("127.0.0.1", port)
        threads = [events.thread(lambda: rpcq.call(node, ["slow", 0.1])) for _ in range(12)]
        for t in threads:
            t.join()
        rpcq.stop_server(port)
        return len(rpcq.connections())
    assert run(main) == 1                 # one persistent connection carried all 12 calls
    assert state["peak"] <= window        # never more in flight than the window
    assert state["peak"] >= min(window, 2)   # and pipelined when the window allows it


def test_replies_are_matched_by_number_after_a_timeout(settings):
    state, ns = concurrency_probe()
    port = free_port()

    def main():
        rpcq.server(port, namespace=ns)
        node = ("127.0.0.1", port)
        late = rpcq.acall(node, ["slow", 0.3], 0.05)         # its reply arrives later
        values = [rpcq.call(node, ["echo", i]) for i in range(20)]
        rpcq.stop_server(port)
        return late, values
    late, values = run(main)
    assert late == (False, "timeout")
    assert values == list(range(20))


def test_idle_connections_are_closed(settings):
    settings["clean_timeout"] = 0.2
    port_a, port_b = free_port(), free_port()

    def main():
        rpcq.server(port_a, namespace={"v": 1})
        rpcq.server(port_b, namespace={"v": 2})
        rpcq.call(("127.0.0.1", port_a), "v")
        before = [c.port for c in rpcq.connections()]
        events.sleep(1.3)                          # idle for longer than clean_timeout
        rpcq.call(("127.0.0.1", port_b), "v")     # cleaning runs on the next call
        after = [c.port for c in rpcq.connections()]
        rpcq.stop_server(port_a)
        rpcq.stop_server(port_b)
        return before, after
    before, after = run(main)
    assert before == [port_a] and after == [port_b]


def test_least_recently_used_connection_closed_at_max(settings):
    settings["max_connections"] = 2
    ports = [free_port() for _ in range(3)]

    def main():
        for i, p in enumerate(ports):
            rpcq.server(p, namespace={"v": i})
        got = [rpcq.call(("127.0.0.1", p), "v") for p in (ports[0], ports[1], ports[0], ports[2])]
        open_ports = sorted(c.port for c in rpcq.connections())
        for p in ports:
            rpcq.stop_server(p)
        return got, open_ports
    got, open_ports = run(main)
    assert got == [0, 1, 0, 2]
    assert open_ports == sorted([ports[0], ports[2]])        # ports[1] was least recently used


def test_lost_connection_reconnects_and_resends(settings):
    settings["reconnect_interval"] = 0.05
    state, ns = concurrency_probe()
    port = free_port()

    def main():
        rpcq.server(port, namespace=ns)
        node = ("127.0.0.1", port)
        result = {}
        t = events.thread(lambda: result.setdefault("r", rpcq.acall(node, ["slow", 0.2], 10)))
        events.sleep(0.05)
        rpcq.stop_server(port)            # drops the connection with the call in flight
        rpcq.server(port, namespace=ns)   # a new server listens before the caller reconnects
        t.join()
        after = rpcq.call(node, ["echo", "again"])
        rpcq.stop_server(port)
        return result["r"], after
    assert run(main) == ((True, [0.2]), "again")


def test_new_call_to_a_dead_peer_fails_at_once():
    def main():
        start = time.monotonic()
        r = rpcq.acall(("127.0.0.1", free_port()), "f", 20)
        return r, time.monotonic() - start
    r, took = run(main)
    assert r == (False, "connection refused") and took < 5


RESTART_APP = '''
import sys
from splay import events, rpcq
port = int(sys.argv[1])

def echo(x):
    return x

def main():
    rpcq.server(port)
    print("ready", flush=True)

events.run(main)
'''


def test_server_restarted_under_traffic(tmp_path, settings):
    settings["reconnect_interval"] = 0.05
    port = free_port()
    app = AppProcess(tmp_path, RESTART_APP, args=(port,)).start()
    outcomes = []
    phase = {"restarted": False}

    def caller(i):
        node = ("127.0.0.1", port)
        for k in range(60):
            r = rpcq.acall(node, ["echo", [i, k]], 5)
            outcomes.append((phase["restarted"], (i, k), r))
            events.sleep(0.01)

    def main():
        threads = [events.thread(lambda i=i: caller(i)) for i in range(10)]
        events.sleep(0.2)
        app.stop()
        app.start()
        phase["restarted"] = True
        for t in threads:
            t.join()
    try:
        run(main)
    finally:
        app.stop()
    assert len(outcomes) == 600
    for restarted, (i, k), (ok, value) in outcomes:
        if ok:
            assert value == [[i, k]]                 # never somebody else's reply
        else:
            assert value in ("connection refused", "closed", "timeout") or "reset" in value
    assert sum(1 for restarted, _, (ok, _) in outcomes if restarted and ok) > 100


def test_server_bounds_the_calls_running_for_one_connection(settings):
    settings["window_size"] = 10
    settings["server_max_running"] = 2
    state, ns = concurrency_probe()
    port = free_port()

    def main():
        rpcq.server(port, namespace=ns)
        node = ("127.0.0.1", port)
        results = []
        threads = [events.thread(lambda: results.append(rpcq.call(node, ["slow", 0.05])))
                   for _ in range(8)]
        for t in threads:
            t.join()
        rpcq.stop_server(port)
        return results
    assert run(main) == [0.05] * 8
    assert 1 <= state["peak"] <= 2          # 8 were in flight on the one connection


def test_idle_connection_closed_by_the_server_is_reopened(settings):
    port = free_port()

    def main():
        rpcq.server(port, namespace={"v": "first"})
        node = ("127.0.0.1", port)
        first = rpcq.call(node, "v")
        rpcq.stop_server(port)                      # closes the idle connection server-side
        rpcq.server(port, namespace={"v": "second"})
        events.sleep(0.05)                          # the client side sees the close (EOF)
        second = rpcq.acall(node, "v", 10)
        rpcq.stop_server(port)
        return first, second
    assert run(main) == ("first", (True, ["second"]))


PEER_APP = '''
import sys
from splay import events, rpcq
port = int(sys.argv[1])

def echo(x):
    return x

def hang():
    events.sleep(60)

def main():
    rpcq.server(port)
    print("ready", flush=True)

events.run(main)
'''


def _idle_connection_dropped(node):
    """Wait (up to 10 s) until the pool no longer lists a connection to ``node``."""
    for _ in range(1000):
        if not any((c.ip, c.port) == node for c in rpcq.connections()):
            return True
        events.sleep(0.01)
    return False


def test_pooled_connection_to_a_killed_peer_fails_at_once(tmp_path):
    port = free_port()
    app = AppProcess(tmp_path, PEER_APP, args=(port,)).start()
    node = ("127.0.0.1", port)

    def main():
        first = rpcq.acall(node, ["echo", 1], 20)
        app.stop()                                  # SIGKILL: the kernel closes its sockets
        dropped = _idle_connection_dropped(node)
        start = time.monotonic()
        second = rpcq.acall(node, ["echo", 2], 20)
        return first, dropped, second, time.monotonic() - start
    try:
        first, dropped, second, took = run(main)
    finally:
        app.stop()
    assert first == (True, [1]) and dropped
    assert second == (False, "connection refused") and took < 5


def test_call_in_flight_when_the_peer_is_killed_fails_at_once(tmp_path):
    port = free_port()
    app = AppProcess(tmp_path, PEER_APP, args=(port,)).start()
    node = ("127.0.0.1", port)

    def main():
        result = {}
        start = time.monotonic()
        t = events.thread(lambda: result.setdefault("r", rpcq.acall(node, "hang", 20)))
        events.sleep(0.2)
        app.stop()                                  # SIGKILL with the call in flight
        t.join()
        return result["r"], time.monotonic() - start
    try:
        r, took = run(main)
    finally:
        app.stop()
    assert r == (False, "connection refused") and took < 5


def test_pooled_connection_to_a_stopped_server_fails_at_once():
    port = free_port()

    def main():
        rpcq.server(port, namespace={"v": "here"})
        node = ("127.0.0.1", port)
        first = rpcq.call(node, "v")
        rpcq.stop_server(port)                       # closes the listening socket and the peer
        start = time.monotonic()
        second = rpcq.acall(node, "v", 20)           # whether or not the EOF was seen yet
        return first, second, time.monotonic() - start
    first, second, took = run(main)
    assert first == "here"
    assert second == (False, "connection refused") and took < 5


PARTITION_APP = '''
import time
from splay import events, rpcq
from splay.base import job

def echo(x):
    return x

def main():
    rpcq.server(job.me)
    if job.position == 0:
        epoch = job.settings["partition_epoch"]
        peer = job.nodes()[1]
        events.sleep(0.6)
        print("before", rpcq.acall(peer, ["echo", 1], 5), flush=True)
        events.sleep(max(0.0, 2.0 - (time.time() - epoch)))
        start = time.monotonic()
        r = rpcq.acall(peer, ["echo", 2], 20)           # during the cut
        print("during", r, "%.2f" % (time.monotonic() - start), flush=True)
        events.sleep(max(0.0, 3.5 - (time.time() - epoch)))
        print("after", rpcq.acall(peer, ["echo", 3], 5), flush=True)
    else:
        events.sleep(4.5)
    events.exit()

events.run(main)
'''


def test_call_across_an_emulated_partition_fails_at_once_and_works_after_the_heal(tmp_path):
    """The emulation's cut breaks the pooled connection and refuses new ones (docs/emulation.md):
    a call during the cut fails at once with "connection refused", not after its timeout, and
    calls work again once the cut heals."""
    from splay.deploy.testbed import free_port_range
    (tmp_path / "app.py").write_text(PARTITION_APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "-n", "2",
                          "--in-process", "--first-port", str(free_port_range(2)),
                          "--partition", "0|1@1.5-3"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {}
    for line in out.stdout.splitlines():
        words = line.split("] ", 1)[-1].split()         # lines come as "[node 0] before ..."
        if words and words[0] in ("before", "during", "after"):
            lines[words[0]] = " ".join(words)
    assert "(True, [1])" in lines["before"], out.stdout
    assert "(False, 'connection refused')" in lines["during"], out.stdout
    assert float(lines["during"].split()[-1]) < 5
    assert "(True, [3])" in lines["after"], out.stdout

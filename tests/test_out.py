"""splay.out: standard output, files and TCP log sinks (plain sockets and cooperative ones)."""
import queue
import socket as stdsocket
import threading

import pytest

from splay import events, log, out
from splay import socket as coop_socket
from support_log import check_module_logger


def test_file_appends_lines(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("existing\n")
    f = out.file(str(path))
    f("one")
    f("two \xe9")
    assert path.read_text(encoding="utf-8") == "existing\none\ntwo \xe9\n"
    f.close()
    f("three")                  # reopens after close
    assert path.read_text(encoding="utf-8").endswith("three\n")


class LineSink:
    """A real TCP log sink on loopback: accepts connections one after the other and queues every
    line received. ``close_after`` lines on a connection, it closes that connection."""

    def __init__(self, close_after=None, port=0):
        self.server = stdsocket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.lines = queue.Queue()
        self.close_after = close_after
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn, conn.makefile("rb") as stream:
                for count, line in enumerate(stream, 1):
                    self.lines.put(line.decode().rstrip("\n"))
                    if self.close_after and count >= self.close_after:
                        break

    def get(self):
        return self.lines.get(timeout=10)

    def close(self):
        self.server.close()


def test_network_sends_one_line_per_message():
    sink = LineSink()
    try:
        send = out.network("127.0.0.1", sink.port)
        send("first")
        send("second line")
        assert [sink.get(), sink.get()] == ["first", "second line"]
        send.close()
    finally:
        sink.close()


def test_network_accepts_a_node_and_localhost():
    sink = LineSink()
    try:
        send = out.network({"ip": "localhost", "port": sink.port})
        send("via node")
        assert sink.get() == "via node"
        send.close()
    finally:
        sink.close()


def test_network_reconnects_without_losing_lines():
    sink = LineSink(close_after=1)
    try:
        send = out.network("127.0.0.1", sink.port)
        send("a")
        assert sink.get() == "a"
        # the sink closed that connection: wait until it is gone on our side too
        send._plain.settimeout(10)
        assert send._plain.recv(1, stdsocket.MSG_PEEK) == b""
        send("b")
        assert sink.get() == "b"
        assert sink.connections == 2
        send.close()
    finally:
        sink.close()


def test_network_keeps_lines_while_the_sink_is_down():
    probe = stdsocket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                                   # nothing listens on `port` now
    send = out.NetworkOutput("127.0.0.1", port, retry_interval=0)
    send("kept 1")
    send("kept 2")
    assert list(send.pending) == [b"kept 1\n", b"kept 2\n"] and send.error
    sink = LineSink(port=port)
    try:
        send("kept 3")
        assert [sink.get(), sink.get(), sink.get()] == ["kept 1", "kept 2", "kept 3"]
        assert not send.pending
        send.close()
    finally:
        sink.close()


def test_network_bounds_pending_lines():
    probe = stdsocket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    send = out.NetworkOutput("127.0.0.1", port, max_pending=3)
    for i in range(5):
        send(f"line {i}")
    assert list(send.pending) == [b"line 2\n", b"line 3\n", b"line 4\n"] and send.dropped == 2


def test_logger_to_network_inside_splay_threads_uses_cooperative_sockets():
    received = []

    def main():
        server = coop_socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]

        def sink():
            conn = server.accept()
            for _ in range(2):
                received.append(conn.receive())
            conn.close()
        t = events.thread(sink)
        l_o = log.new(2, "[net]")
        l_o.out = out.network("127.0.0.1", port)
        l_o.notice("hello")
        assert l_o.out._coop is not None and l_o.out._plain is None
        l_o.error("world")
        while not events.dead(t):
            events.sleep(0.01)
        l_o.out.close()
        server.close()
    events.run(main)
    assert received == [b"[net] N: hello", b"[net] E: world"]


def test_network_inside_splay_threads_reconnects_without_losing_lines():
    received = []

    def main():
        server = coop_socket.bind("127.0.0.1", 0)
        port = server.getsockname()[1]

        def sink():
            for _ in range(2):           # one line per connection, then close it
                conn = server.accept()
                received.append(conn.receive())
                conn.close()
        t = events.thread(sink)
        send = out.network("127.0.0.1", port)
        send("one")
        while len(received) < 1:
            events.sleep(0.01)
        first = send._coop
        while not coop_socket.select([first], [], 0)[0]:     # wait until the close reached us
            events.sleep(0.01)
        send("two")
        assert send._coop is not first and not send.pending
        while not events.dead(t):
            events.sleep(0.01)
        send.close()
        server.close()
    events.run(main)
    assert received == [b"one", b"two"]


def test_module_logger_l_o():
    check_module_logger(out, "out")


def test_file_with_a_bad_path_fails_at_creation(tmp_path):
    missing = tmp_path / "no-such-dir" / "log.txt"
    with pytest.raises(OSError, match="out.file: cannot open .*no-such-dir.*writable directory"):
        out.file(str(missing))
    with pytest.raises(OSError, match="cannot open"):
        out.file(str(tmp_path))                    # a directory
    f = out.file(str(tmp_path / "ok.txt"))         # a good path still works afterwards
    f("line")
    f.close()
    assert (tmp_path / "ok.txt").read_text() == "line\n"

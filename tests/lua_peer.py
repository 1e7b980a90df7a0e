"""Peers for the RPC and net tests: a fake Lua SPLAY node, and pysplay apps in their own process.

No Lua SPLAY is installed here, so the *fake Lua peer* replays the exact bytes WIRE.md recorded from
the Lua libraries, with plain blocking stdlib sockets (no pysplay code on its side):

* as a client, it sends Lua's request bytes to a pysplay server and returns the raw reply bytes;
* as a server (:class:`FakeLuaServer`, one stdlib thread), it records the raw bytes a pysplay
  client sends and answers with the bytes a Lua server sends.

:class:`AppProcess` runs a pysplay application (source text) as ``__main__`` of a separate Python
process, for tests that need two real processes.
"""
import os
import socket
import subprocess
import sys
import textwrap
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ---------------------------------------------------------------- bytes observed from Lua SPLAY

RPC_CALL_REQUEST = b"40\nd4:calll6:concat3:one3:twoe4:type4:calle"
RPC_CALL_REPLY = b"10\nl6:onetwoe"
RPC_PING_REQUEST = b"14\nd4:type4:pinge"
RPC_PING_REPLY = b"1\nt"
RPC_UNKNOWN_WITH_ARGS_REPLY = b"2\nle"

#: rpcq request n=1 for concat("one", 1), keys in Lua's hash order
RPCQ_CALL_REQUEST = b"44\nd4:calll6:concat3:onei1ee4:type4:call1:ni1ee"


def rpcq_reply(n, payload=b"l2:abe"):
    """A Lua rpcq reply block (WIRE.md: ``d5:replyl2:abe1:ni7ee`` for n=7, concat("a", "b"))."""
    body = b"d5:reply" + payload + b"1:ni%de" % n + b"e"
    return b"%d\n" % len(body) + body


def urpc_key(counter=1):
    """A Lua-style urpc key: 40 hex digits of a SHA1, then a decimal counter."""
    return "0123456789abcdef0123456789abcdef01234567" + str(counter)


def urpc_call(key):
    """Lua's urpc call datagram for concat("one", "two")."""
    k = key.encode()
    return b"d4:calll6:concat3:one3:twoe4:type4:call3:key%d:%se" % (len(k), k)


def urpc_reply(key):
    """Lua's urpc reply datagram to :func:`urpc_call`."""
    k = key.encode()
    return b"d4:calll6:onetwoe4:type4:call3:key%d:%s5:replyte" % (len(k), k)


def urpc_free(key):
    """Lua's urpc free datagram."""
    k = key.encode()
    return b"d3:key%d:%s4:freete" % (len(k), k)


URPC_PING = b"d3:key5:abc-24:type4:pinge"
URPC_PING_REPLY = b"d4:type4:ping3:key5:abc-25:replyte"


# ---------------------------------------------------------------- the fake Lua client

def free_port(kind=socket.SOCK_STREAM):
    """A port number free for TCP (or ``socket.SOCK_DGRAM``) on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_both():
    """A port free for both TCP and UDP (rpc and urpc servers share port numbers)."""
    for _ in range(50):
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP")


def tcp_exchange(port, data, timeout=10.0, read_until_close=True):
    """Send raw ``data`` to 127.0.0.1:port; return everything received until the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while read_until_close:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def read_block(sock_file):
    """One llenc block from a stdlib socket file (``sock.makefile("rb")``): the payload or None."""
    line = sock_file.readline()
    if not line:
        return None
    n = int(line.strip())
    data = sock_file.read(n)
    return data if len(data) == n else None


def udp_exchange(port, datagram, timeout=5.0, expect_reply=True):
    """Send one datagram to 127.0.0.1:port; return the reply datagram (or None on timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(datagram, ("127.0.0.1", port))
        if not expect_reply:
            return None
        try:
            return s.recvfrom(65536)[0]
        except socket.timeout:
            return None


# ---------------------------------------------------------------- the fake Lua server

class FakeLuaServer:
    """A stdlib thread answering like a Lua SPLAY server, recording every raw request.

    ``mode`` is "rpc" (one block per connection, then close), "rpcq" (blocks on a persistent
    connection; replies echo the request's n) or "urpc" (datagrams). ``answer(raw_request)``
    returns the raw reply bytes (or None to stay silent, or for rpc to close without a reply).
    """

    def __init__(self, mode, answer):
        self.mode = mode
        self.answer = answer
        self.received = []
        self.errors = []
        kind = socket.SOCK_DGRAM if mode == "urpc" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if mode != "urpc":
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stopping:
                try:
                    if self.mode == "urpc":
                        data, addr = self.sock.recvfrom(65536)
                        self.received.append(data)
                        reply = self.answer(data)
                        if reply is not None:
                            self.sock.sendto(reply, addr)
                        continue
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.settimeout(10)
                with conn, conn.makefile("rb") as f:   # both closed: the fd is really closed
                    while True:
                        line = f.readline()
                        if not line:
                            break
                        payload = f.read(int(line.strip()))
                        raw = line + payload
                        self.received.append(raw)
                        reply = self.answer(raw)
                        if reply is None:
                            break
                        conn.sendall(reply)
                        if self.mode == "rpc":
                            break
        except Exception as exc:          # surfaced by the test through .errors
            self.errors.append(exc)

    def close(self):
        """Stop the thread and close the listening socket."""
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


# ---------------------------------------------------------------- pysplay apps in a process

class AppProcess:
    """Run pysplay application ``source`` as ``__main__`` in a new Python process.

    The app prints ``ready`` (flushed) once its servers listen; :meth:`start` waits for that line.
    Use as a context manager; the process is killed on exit.
    """

    def __init__(self, tmp_path, source, name="app.py", args=()):
        self.path = os.path.join(str(tmp_path), name)
        with open(self.path, "w") as f:
            f.write(textwrap.dedent(source))
        self.args = [str(a) for a in args]
        self.proc = None

    def start(self, timeout=30):
        """Start the process and wait until it prints ``ready``; returns self."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), ROOT,
                                             env.get("PYTHONPATH", "")])
        self.err_path = self.path + ".stderr"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-u", self.path, *self.args],
                                         stdout=subprocess.PIPE, stderr=err, env=env)
        ready = threading.Event()
        self.lines = []

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                if self.lines[-1] == "ready":
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None and "ready" not in self.lines:
            self.stop()
            raise RuntimeError(f"app {self.path} did not start: {self.lines} {self.stderr()}")
        return self

    def output(self):
        """Lines the app printed so far (``ready`` included)."""
        return list(self.lines)

    def stop(self):
        """Kill the app (if it still runs) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def wait(self, timeout=30):
        """Wait for the app to end by itself: its exit code."""
        return self.proc.wait(timeout)

    def stderr(self):
        """What the app wrote on its standard error so far."""
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

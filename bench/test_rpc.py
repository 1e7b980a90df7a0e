"""RPC between two processes on loopback: pysplay rpc, rpcq, urpc against gevent, asyncio+uvloop,
plain asyncio, and the C floor of each exchange.

Every implementation calls ``concat("one", "two")`` on a server in **another process** and checks
every result. Workloads:

* ``seq``:  one caller, sequential calls (round trips per second);
* ``conc``: 100 callers at once (calls per second).

Families (what is compared with what):

* ``persistent``: pysplay **rpcq** against the same RPC written with gevent sockets and with
  asyncio streams (on uvloop and on asyncio's own loop): one persistent TCP connection, llenc framing (``<len>\\n<payload>``) of
  JSON, requests numbered and replies matched by number (so 100 callers share the connection, as
  with rpcq). rpcq runs twice: with its default ``window_size`` of 2 and with a window of 100
  (``rpcq-w100``), the peers having no window at all.
* ``percall``: pysplay **rpc** (a connection per call) against the same per-call-connection pattern
  in gevent, asyncio+uvloop and plain asyncio.
* ``udp``: pysplay **urpc** against the same RPC over asyncio datagram endpoints (numbered
  requests, JSON, no retry), on uvloop and on asyncio's own loop, and over a gevent UDP socket
  (the server answers in its receiving greenlet, the client's reader greenlet matches replies).

Every family also runs ``c-floor``, bench/rpc_floor.c (compiled here with ``cc -O2``): 48-byte
messages with no encoding and no dispatch over non-blocking sockets and epoll, the least work any
event-loop RPC must do per call: a ping-pong on one persistent TCP connection, a connection per call
(connect, write, read, close), and a UDP request/reply; ``callers`` requests in flight at once. The
table gives each pysplay row's fraction of the floor's rate. The sequential workloads of the TCP
families also run ``py-floor``: the least a CPython program must do to exchange rpcq's (or rpc's)
messages (blocking sockets, no event loop, pysplay's compiled benc codec; see serve_py_floor),
what the interpreter alone costs against the C floor.

Where ``$SPLAY_LUA`` names a directory of the original Lua SPLAY libraries (bench/lua_splay.py;
BENCHMARKS.md, "The Lua original", says how to build one), every workload also runs ``lua``:
bench/lua_rpc_peer.lua, the same calls through Lua SPLAY's own rpcq, rpc and urpc (Lua 5.1,
LuaSocket), and the table gets a column "over Lua SPLAY": its time over ours, per run.

Each measurement starts a fresh server process and a fresh client process
(``python bench/test_rpc.py --server IMPL FAMILY`` / ``--client IMPL FAMILY WORKLOAD PORT``); the
client times its own main task, from the first call to the last reply, so start-up counts for no
one. Every TCP peer sets TCP_NODELAY (pysplay and uvloop do by default).

    python bench/test_rpc.py --reps 5          # interleaved runs, medians, ratios (RESULTS-rpc.md)
    python bench/test_rpc.py --family udp --reps 5   # one family (persistent, percall, udp)
    python bench/test_rpc.py --family percall --workload seq --impls rpc,c-floor,uvloop --reps 7
    python bench/test_rpc.py --callgrind       # CPU instructions per sequential call (both sides)
    python bench/test_rpc.py --callgrind --ours --keep DIR   # pysplay only; keep the profiles
    python -m pytest bench/test_rpc.py         # pytest-benchmark, one benchmark per cell

``--callgrind`` runs server and client under ``valgrind --tool=callgrind`` twice (200 and 1,200
sequential calls) and reports (instructions at 1,200 - instructions at 200) / 1,000 for the client
and the server processes: user-space instructions per call, which the machine's load does not
change (kernel time is not counted).
"""
import hashlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from lua_splay import lua_commands, lua_env, lua_modules

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CALLS = {  # (family, workload) -> (callers, calls per caller)
    ("persistent", "seq"): (1, 20_000),
    ("persistent", "conc"): (100, 300),
    ("persistent", "conns"): (10, 200),      # in each of CLIENT_PROCESSES processes
    ("percall", "seq"): (1, 4_000),
    ("percall", "conc"): (100, 40),
    ("udp", "seq"): (1, 10_000),
    ("udp", "conc"): (100, 100),
}
#: Client processes of a workload (default 1): ``conns`` is many connections to one server, one
#: per client process, started together once every client is connected.
CLIENT_PROCESSES = {("persistent", "conns"): 8}
IMPLS = {
    "persistent": ["rpcq", "rpcq-w100", "c-floor", "py-floor", "gevent", "uvloop", "asyncio"],
    "percall": ["rpc", "c-floor", "py-floor", "gevent", "uvloop", "asyncio"],
    "udp": ["urpc", "c-floor", "gevent", "uvloop", "asyncio"],
}
#: What is not a peer: pysplay's implementations and the floors (the C one does no RPC at all).
PYSPLAY = {"rpcq", "rpcq-w100", "rpc", "urpc"}
FLOOR = "c-floor"
#: The CPython floor: the family's wire messages over blocking sockets (see serve_py_floor),
#: only for sequential calls.
PY_FLOOR = "py-floor"
#: The C floor's kind of exchange for each family (bench/rpc_floor.c).
FLOOR_KIND = {"persistent": "tcp", "percall": "connect", "udp": "udp"}
OURS = {"persistent": "rpcq", "percall": "rpc", "udp": "urpc"}
#: The original Lua SPLAY libraries (bench/lua_rpc_peer.lua), measured when $SPLAY_LUA names a
#: directory of them (see lua_modules); not a Python peer: it has its own column.
LUA = "lua"
#: The implementations callgrind measures (the C floors have no interpreter to profile).
CALLGRIND_IMPLS = {"rpcq", "rpc", "urpc", "py-floor", "gevent", "uvloop", "asyncio"}
EXPECTED = "onetwo"


def concat(a, b):
    return a + b


NAMESPACE = {"concat": concat}


def frame(obj):
    body = json.dumps(obj).encode()
    return b"%d\n" % len(body) + body


def answer(req):
    """The peers' dispatcher: the same name lookup (no eval) and result list as pysplay's."""
    name, *args = req["call"]
    return [NAMESPACE[name](*args)]


# ------------------------------------------------------------------------------ servers

def serve_pysplay(family, ready):
    from splay import events, rpc, rpcq, urpc
    # SIGTERM ends every server with a plain exit, so that callgrind writes its counts
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    def main():
        import socket as pysocket
        kind = pysocket.SOCK_DGRAM if family == "udp" else pysocket.SOCK_STREAM
        with pysocket.socket(pysocket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mod = {"persistent": rpcq, "percall": rpc, "udp": urpc}[family]
        mod.server(("127.0.0.1", port), namespace=NAMESPACE)
        ready(port)
    events.run(main)


def serve_gevent(family, ready):
    import gevent
    from gevent import socket as gsocket
    import socket as pysocket

    if family == "udp":
        return serve_gevent_udp(ready)
    server = gsocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)

    def serve(c):
        c.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        f = c.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                break
            req = json.loads(f.read(int(line)))
            if family == "percall":
                c.sendall(frame(answer(req)))
                break
            c.sendall(frame({"reply": answer(req), "n": req["n"]}))
        f.close()
        c.close()

    def acceptor():
        while True:
            c, _ = server.accept()
            gevent.spawn(serve, c)

    gevent.signal_handler(signal.SIGTERM, os._exit, 0)
    ready(server.getsockname()[1])
    gevent.spawn(acceptor).join()


def serve_gevent_udp(ready):
    """The udp family's gevent server: each datagram answered by the receiving greenlet."""
    import gevent
    from gevent import socket as gsocket
    import socket as pysocket

    sock = gsocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        while True:
            data, addr = sock.recvfrom(65536)
            req = json.loads(data)
            sock.sendto(json.dumps({"reply": answer(req), "n": req["n"]}).encode(), addr)

    gevent.signal_handler(signal.SIGTERM, os._exit, 0)
    ready(sock.getsockname()[1])
    gevent.spawn(serve).join()


def serve_uvloop(family, ready, use_uvloop=True):
    import asyncio

    async def serve(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            req = json.loads(await reader.readexactly(int(line)))
            if family == "percall":
                writer.write(frame(answer(req)))
                break
            writer.write(frame({"reply": answer(req), "n": req["n"]}))
        writer.close()

    class Datagrams(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            req = json.loads(data)
            self.transport.sendto(json.dumps({"reply": answer(req), "n": req["n"]}).encode(),
                                  addr)

    async def main():
        loop = asyncio.get_running_loop()
        if family == "udp":
            transport, _ = await loop.create_datagram_endpoint(Datagrams,
                                                               local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
        else:
            server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
            port = server.sockets[0].getsockname()[1]
        loop.add_signal_handler(signal.SIGTERM, os._exit, 0)
        ready(port)
        await asyncio.Event().wait()

    run_loop(main(), use_uvloop)


def run_loop(coroutine, use_uvloop):
    """Run ``coroutine`` on uvloop's event loop or on asyncio's own."""
    import asyncio
    if use_uvloop:
        import uvloop
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


# ------------------------------------------------------------------------------ clients

def wait_for_go():
    """With RPC_BENCH_GO set (several client processes): say "ready" on stdout, connected and
    warmed up, and wait for the "go" line on stdin (the whole process waits, which is the point)."""
    if os.environ.get("RPC_BENCH_GO"):
        print("ready", flush=True)
        sys.stdin.readline()


def check(results, callers, calls):
    if len(results) != callers * calls or any(r != EXPECTED for r in results):
        bad = [r for r in results if r != EXPECTED][:3]
        raise RuntimeError(f"{len(results)} results, wrong ones: {bad}")


def client_pysplay(impl, port, callers, calls):
    from splay import events, rpc, rpcq, urpc
    mod = {"rpcq": rpcq, "rpcq-w100": rpcq, "rpc": rpc, "urpc": urpc}[impl]
    if impl == "rpcq-w100":
        rpcq.settings["window_size"] = 100
    node = ("127.0.0.1", port)
    results = []
    out = {}

    def caller():
        for _ in range(calls):
            results.append(mod.call(node, ["concat", "one", "two"]))

    def main():
        mod.call(node, ["concat", "one", "two"])        # warm-up (rpcq: opens the connection)
        wait_for_go()
        t0 = time.perf_counter()
        threads = [events.thread(caller) for _ in range(callers)]
        for t in threads:
            t.join()
        out["seconds"] = time.perf_counter() - t0
    events.run(main)
    check(results, callers, calls)
    return out["seconds"]


def client_gevent(family, port, callers, calls):
    import gevent
    from gevent import socket as gsocket
    from gevent.event import AsyncResult
    import socket as pysocket

    results = []

    def connect():
        s = gsocket.create_connection(("127.0.0.1", port))
        s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        return s

    if family == "udp":
        # one socket; a reader greenlet hands each reply to the caller with its number (no retry:
        # loopback loses no datagram at these rates, a loss would time out)
        s = gsocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        pending = {}
        numbers = itertools.count()

        def reader():
            while True:
                msg = json.loads(s.recv(65536))
                r = pending.pop(msg["n"], None)
                if r is not None:
                    r.set(msg["reply"])
        gevent.spawn(reader)

        def call(name, *args):
            n = next(numbers)
            r = pending[n] = AsyncResult()
            s.send(json.dumps({"type": "call", "n": n, "call": [name, *args]}).encode())
            return r.get(timeout=60)[0]
    elif family == "percall":
        def call(name, *args):
            s = connect()
            s.sendall(frame({"type": "call", "call": [name, *args]}))
            f = s.makefile("rb")
            reply = json.loads(f.read(int(f.readline())))
            f.close()
            s.close()
            return reply[0]
    else:
        s = connect()
        pending = {}
        numbers = itertools.count()

        def reader():
            f = s.makefile("rb")
            while True:
                line = f.readline()
                if not line:
                    break
                msg = json.loads(f.read(int(line)))
                pending.pop(msg["n"]).set(msg["reply"])
        gevent.spawn(reader)

        def call(name, *args):
            n = next(numbers)
            r = pending[n] = AsyncResult()
            s.sendall(frame({"type": "call", "n": n, "call": [name, *args]}))
            return r.get(timeout=60)[0]

    def caller():
        for _ in range(calls):
            results.append(call("concat", "one", "two"))

    def main():
        call("concat", "one", "two")
        wait_for_go()
        t0 = time.perf_counter()
        gevent.joinall([gevent.spawn(caller) for _ in range(callers)], raise_error=True)
        return time.perf_counter() - t0

    seconds = gevent.spawn(main).get()
    check(results, callers, calls)
    return seconds


def client_uvloop(family, port, callers, calls, use_uvloop=True):
    import asyncio

    results = []

    class Replies(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            msg = json.loads(data)
            fut = pending.pop(msg["n"], None)
            if fut is not None:
                fut.set_result(msg["reply"])

    pending = {}

    async def main():
        loop = asyncio.get_running_loop()
        if family == "udp":
            transport, _ = await loop.create_datagram_endpoint(
                Replies, remote_addr=("127.0.0.1", port))
            numbers = itertools.count()

            async def call(name, *args):
                # no retry: loopback loses no datagram at these rates (a loss would time out)
                n = next(numbers)
                fut = pending[n] = loop.create_future()
                transport.sendto(json.dumps({"type": "call", "n": n,
                                             "call": [name, *args]}).encode())
                return (await asyncio.wait_for(fut, 60))[0]
        elif family == "percall":
            async def call(name, *args):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(frame({"type": "call", "call": [name, *args]}))
                reply = json.loads(await reader.readexactly(int(await reader.readline())))
                writer.close()
                return reply[0]
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            numbers = itertools.count()

            async def read_loop():
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    msg = json.loads(await reader.readexactly(int(line)))
                    pending.pop(msg["n"]).set_result(msg["reply"])
            loop.create_task(read_loop())

            async def call(name, *args):
                n = next(numbers)
                fut = pending[n] = loop.create_future()
                writer.write(frame({"type": "call", "n": n, "call": [name, *args]}))
                return (await fut)[0]

        async def caller():
            for _ in range(calls):
                results.append(await call("concat", "one", "two"))

        await call("concat", "one", "two")
        wait_for_go()
        t0 = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(callers)])
        return time.perf_counter() - t0

    seconds = run_loop(main(), use_uvloop)
    check(results, callers, calls)
    return seconds


# ------------------------------------------------------------------------------ processes

def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), ROOT,
                                         env.get("PYTHONPATH", "")])
    return env


#: The implementations a command line asked for (``--impls rpc,lua,c-floor``); None: all.
ONLY_IMPLS = None


def impls_of(family, workload):
    """The implementations measured for a workload (the CPython floor makes sequential calls;
    the Lua peer runs when $SPLAY_LUA names the Lua libraries)."""
    impls = [i for i in IMPLS[family] if i != PY_FLOOR or workload == "seq"] + \
        ([LUA] if lua_modules() else [])
    return [i for i in impls if ONLY_IMPLS is None or i in ONLY_IMPLS]


def commands(family, impl, workload):
    """(server command, client command, environment) of a Python implementation or of the Lua
    peer; "{port}" in the client command stands for the port the server prints. The Lua server
    listens on a port given to it: a free one, chosen here."""
    if impl == LUA:
        callers, calls = CALLS[family, workload]
        server_cmd, client_cmd = lua_commands(family, callers, calls)
        return ([a.replace("{port}", _free_port(family)) for a in server_cmd], client_cmd,
                lua_env(_env()))
    return ([sys.executable, os.path.abspath(__file__), "--server", server_impl(impl), family],
            [sys.executable, os.path.abspath(__file__), "--client", impl, family, workload,
             "{port}"], _env())


def _free_port(family):
    import socket
    kind = socket.SOCK_DGRAM if family == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def total_calls(family, workload):
    """The calls a workload makes, over all its callers and client processes."""
    callers, calls = CALLS[family, workload]
    return CLIENT_PROCESSES.get((family, workload), 1) * callers * calls


def server_impl(impl):
    return "pysplay" if impl in PYSPLAY else impl


def floor_binary():
    """bench/rpc_floor.c compiled with the system C compiler (once per version of the source)."""
    src = os.path.join(HERE, "rpc_floor.c")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    exe = os.path.join(tempfile.gettempdir(), f"pysplay-rpc-floor-{digest}")
    if not os.path.exists(exe):
        part = f"{exe}.{os.getpid()}"
        subprocess.run(["cc", "-O2", "-o", part, src], check=True)
        os.replace(part, exe)
    return exe


def measure_floor(family, workload):
    """Seconds for the workload done by the C floor: the same number of calls, ``callers`` of
    them in flight at once."""
    callers, calls = CALLS[family, workload]
    exe = floor_binary()
    kind = FLOOR_KIND[family]
    server = subprocess.Popen([exe, "server", kind], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        out = subprocess.run([exe, "client", kind, str(port), str(callers), str(callers * calls)],
                             check=True, capture_output=True, text=True, timeout=600)
        return json.loads(out.stdout)["seconds"]
    finally:
        server.kill()
        server.wait()


def measure_processes(family, impl, workload):
    """Seconds for a workload of several client processes (one connection each) against one fresh
    server: from the moment every client is connected and told to go to the last one's end."""
    callers, calls = CALLS[family, workload]
    processes = CLIENT_PROCESSES[family, workload]
    if impl == FLOOR:
        exe = floor_binary()
        server_cmd = [exe, "server", FLOOR_KIND[family]]
        client_cmd = [exe, "client", FLOOR_KIND[family], "{port}", str(callers),
                      str(callers * calls), "go"]
        env = _env()
    else:
        server_cmd, client_cmd, env = commands(family, impl, workload)
    env = dict(env, RPC_BENCH_GO="1")
    server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True, env=env)
    clients = []
    try:
        port = str(int(server.stdout.readline()))
        clients = [subprocess.Popen([a.replace("{port}", port) for a in client_cmd],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env=env) for _ in range(processes)]
        for c in clients:
            if c.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {impl} client did not get ready")
        start = time.perf_counter()
        for c in clients:
            c.stdin.write("go\n")
            c.stdin.flush()
        for c in clients:
            json.loads(c.stdout.readline())          # its own seconds; the end is what counts
        seconds = time.perf_counter() - start
        for c in clients:
            if c.wait(60) != 0:
                raise RuntimeError(f"a {impl} client failed with status {c.returncode}")
        return seconds
    finally:
        for c in clients:
            c.kill()
            c.wait()
        server.kill()
        server.wait()


def measure(family, impl, workload):
    """Seconds for the workload: a fresh server process and fresh client processes."""
    if CLIENT_PROCESSES.get((family, workload), 1) > 1:
        return measure_processes(family, impl, workload)
    if impl == FLOOR:
        return measure_floor(family, workload)
    server_cmd, client_cmd, env = commands(family, impl, workload)
    server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = str(int(server.stdout.readline()))
        out = subprocess.run([a.replace("{port}", port) for a in client_cmd], check=True,
                             capture_output=True, text=True, env=env, timeout=600)
        return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    finally:
        server.kill()
        server.wait()


def child_server(impl, family):
    def ready(port):
        print(port, flush=True)
    if impl == "asyncio":
        serve_uvloop(family, ready, use_uvloop=False)
    elif impl == PY_FLOOR:
        serve_py_floor(ready)
    else:
        {"pysplay": serve_pysplay, "gevent": serve_gevent, "uvloop": serve_uvloop}[impl](family,
                                                                                        ready)


def child_client(impl, family, workload, port):
    callers, calls = CALLS[family, workload]
    if os.environ.get("RPC_BENCH_CALLS"):
        calls = int(os.environ["RPC_BENCH_CALLS"])
    if impl in PYSPLAY:
        return client_pysplay(impl, port, callers, calls)
    if impl == "asyncio":
        return client_uvloop(family, port, callers, calls, use_uvloop=False)
    if impl == PY_FLOOR:
        return client_py_floor(family, port, callers, calls)
    return {"gevent": client_gevent, "uvloop": client_uvloop}[impl](family, port, callers, calls)


# ------------------------------------------------------------------------------ the CPython floor
# The least a CPython program must do to exchange rpcq's messages (WIRE.md), or rpc's (the same
# with a connection per call and no message number), with no event loop, no scheduler, no
# metrics and no error handling: blocking sockets (a send and a recv per call and side, one
# system call fewer than an epoll loop), each message a benc document decoded into Python objects
# and encoded from them by pysplay's compiled codec, the served function found by name and
# called. What separates pysplay from the C floor beyond this is the cost of its event loop,
# threads and RPC layer; what separates this from the C floor is the interpreter's.

RECEIVE_SIZE = 65536         # what one recv asks for (a larger frame takes several)


class _Frames:
    """The benc documents of the llenc frames (``b"LENGTH\n" + body``) arriving on a blocking
    socket. In a ping-pong each receive is one whole frame, decoded where it lies
    (``decode_prefix``, no copy of its body); a frame split over receives is put together."""

    def __init__(self, sock, decode_prefix):
        self.recv = sock.recv
        self.decode_prefix = decode_prefix        # splayc.benc's
        self.buf = b""

    def next(self):
        """The next frame's document, or None at the end of the stream."""
        data = self.recv(RECEIVE_SIZE)
        newline = data.find(b"\n")
        if not self.buf and newline > 0 and len(data) == newline + 1 + int(data[:newline]):
            return self.decode_prefix(data, newline + 1)[0]
        self.buf += data
        while data:
            newline = self.buf.find(b"\n")
            if newline > 0:
                end = newline + 1 + int(self.buf[:newline])
                if len(self.buf) >= end:
                    body, self.buf = self.buf[newline + 1:end], self.buf[end:]
                    return self.decode_prefix(body)[0]
            data = self.recv(RECEIVE_SIZE)
            self.buf += data
        return None


def _blocking_socket():
    import socket as pysocket
    s = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
    return s


def serve_py_floor(ready):
    """Serve one connection at a time: decode each request, call the function, send the reply."""
    import socket as pysocket
    from splayc.benc import decode_prefix, encode_framed
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = _blocking_socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    ready(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        frames = _Frames(conn, decode_prefix)
        while (request := frames.next()) is not None:
            name, *args = request["call"]
            result = [NAMESPACE[name](*args)]
            n = request.get("n")
            conn.sendall(encode_framed(result if n is None else {"reply": result, "n": n}))
        conn.close()


def client_py_floor(family, port, callers, calls):
    """Sequential calls, each request built, encoded, sent, its reply read and decoded: on one
    connection (persistent) or each on a connection of its own (percall)."""
    from splayc.benc import decode_prefix, encode_framed
    if callers != 1:
        raise ValueError("the CPython floor makes sequential calls only")
    results = []
    if family == "percall":
        def one(n):
            sock = _blocking_socket()
            sock.connect(("127.0.0.1", port))
            sock.sendall(encode_framed({"call": ["concat", "one", "two"], "type": "call"}))
            data = b""
            while True:                        # the reply, then the server closes
                chunk = sock.recv(RECEIVE_SIZE)
                if not chunk:
                    raise RuntimeError("the server closed the connection before its reply")
                data += chunk
                newline = data.find(b"\n")
                if newline > 0 and len(data) >= newline + 1 + int(data[:newline]):
                    break
            sock.close()
            return decode_prefix(data, newline + 1)[0][0]
    else:
        sock = _blocking_socket()
        sock.connect(("127.0.0.1", port))
        frames = _Frames(sock, decode_prefix)

        def one(n):
            sock.sendall(encode_framed({"call": ["concat", "one", "two"], "type": "call",
                                        "n": n}))
            reply = frames.next()
            if reply["n"] != n:
                raise RuntimeError(f"reply {reply['n']} to call {n}")
            return reply["reply"][0]

    one(0)                                              # warm-up
    wait_for_go()
    t0 = time.perf_counter()
    for n in range(1, calls + 1):
        results.append(one(n))
    seconds = time.perf_counter() - t0
    check(results, 1, calls)
    return seconds


# ------------------------------------------------------------------------- pytest-benchmark entry

try:
    import pytest
except ImportError:            # the command-line mode needs no pytest
    pytest = None

if pytest is not None:
    CELLS = [(f, i, w) for (f, w) in CALLS for i in impls_of(f, w)]

    @pytest.mark.parametrize("family, impl, workload", CELLS)
    def test_rpc(benchmark, family, impl, workload):
        inner = []
        benchmark.group = f"{family}-{workload}"
        benchmark.extra_info["impl"] = impl
        benchmark.pedantic(lambda: inner.append(measure(family, impl, workload)), rounds=3,
                           iterations=1)
        benchmark.extra_info["inner_seconds"] = inner
        benchmark.extra_info["calls_per_second"] = total_calls(family, workload) / \
            statistics.median(inner)
        assert all(s > 0 for s in inner)


# ------------------------------------------------------------------------------- callgrind

def _instructions(out_file):
    with open(out_file) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {out_file}")


def callgrind_run(family, impl, calls, workdir):
    """(client, server) instructions for ``calls`` sequential calls, each in a fresh process."""
    vg = ["valgrind", "--tool=callgrind", "--quiet", "--dump-instr=yes"]
    tag = f"{family}-{impl}-{calls}"
    s_out, c_out = os.path.join(workdir, f"s-{tag}"), os.path.join(workdir, f"c-{tag}")
    server = subprocess.Popen(vg + [f"--callgrind-out-file={s_out}", sys.executable,
                                    os.path.abspath(__file__), "--server", server_impl(impl),
                                    family], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        port = int(server.stdout.readline())
        env = _env()
        env["RPC_BENCH_CALLS"] = str(calls)
        subprocess.run(vg + [f"--callgrind-out-file={c_out}", sys.executable,
                             os.path.abspath(__file__), "--client", impl, family, "seq",
                             str(port)], check=True, capture_output=True, env=env, timeout=1800)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(300)
    return _instructions(c_out), _instructions(s_out)


def callgrind_table(only_ours=False, keep=None):
    """The instructions table; ``only_ours``: pysplay's rpcq, rpc and urpc alone; ``keep``: a
    directory that keeps the callgrind output files (for callgrind_annotate)."""
    low, high = 200, 1200
    lines = ["| family | impl | client instr/call | server instr/call | total | this ÷ ours |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = keep or tmp
        for family in ("persistent", "percall", "udp"):
            per = {}
            for impl in IMPLS[family]:
                if impl == "rpcq-w100" or (only_ours and impl not in (OURS[family], PY_FLOOR)):
                    continue                    # same code as rpcq for sequential calls
                if impl not in CALLGRIND_IMPLS:
                    continue                    # the C floors: no interpreter to measure
                c1, s1 = callgrind_run(family, impl, low, workdir)
                c2, s2 = callgrind_run(family, impl, high, workdir)
                per[impl] = ((c2 - c1) / (high - low), (s2 - s1) / (high - low))
                print(f"{family} {impl}: client {per[impl][0]:,.0f} server {per[impl][1]:,.0f}",
                      file=sys.stderr, flush=True)
            ours = sum(per[OURS[family]])
            for impl, (c, s) in per.items():
                lines.append(f"| {family} | {impl} | {c:,.0f} | {s:,.0f} | {c + s:,.0f} | "
                             f"×{(c + s) / ours:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- command line

def table(reps):
    times = {}
    for rep in range(reps):
        for (family, workload) in CALLS:
            impls = impls_of(family, workload)
            impls = impls if rep % 2 == 0 else impls[::-1]
            for impl in impls:
                s = measure(family, impl, workload)
                times.setdefault((family, impl, workload), []).append(s)
                print(f"rep {rep + 1}/{reps} {family:10} {impl:9} {workload:5} {s:.3f} s "
                      f"({total_calls(family, workload) / s:,.0f} calls/s)", file=sys.stderr,
                      flush=True)
    return format_table(times, reps)


def format_table(times, reps):
    """The results table. For each pysplay row, against the best Python peer: the best peer's
    median time over ours, and the median over repetitions of (the best peer's time in that
    repetition / ours in it), which cancels the load changes between repetitions on a shared
    machine; against the C floor: the median over repetitions of (the floor's time / ours), the
    fraction of the floor's rate reached; with the Lua peer, the median over repetitions of
    (Lua SPLAY's time / ours), the speed-up over the original."""
    with_lua = any(impl == LUA for (_, impl, _) in times)
    lines = ["| family | workload | impl | median calls/s | runs (s) | speed-up over the best "
             "peer: ratio of medians | median of per-run ratios | of the C floor (per run) |"
             + (" over Lua SPLAY (per run) |" if with_lua else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if with_lua else "")]
    for (family, workload), (callers, calls) in CALLS.items():
        peers = [i for i in impls_of(family, workload)
                 if i not in PYSPLAY and i not in (FLOOR, PY_FLOOR, LUA)]
        best = min((statistics.median(times[family, i, workload]) for i in peers), default=None)
        floor = times.get((family, FLOOR, workload))
        lua = times.get((family, LUA, workload))
        for impl in impls_of(family, workload):
            runs = times[family, impl, workload]
            med = statistics.median(runs)
            ratio = per_run = of_floor = over_lua = ""
            if impl != FLOOR and floor is not None:
                of_floor = "%.2f" % statistics.median(floor[r] / runs[r] for r in range(reps))
            if impl in PYSPLAY and lua is not None:
                over_lua = "×%.2f" % statistics.median(lua[r] / runs[r] for r in range(reps))
            if best is not None and impl in PYSPLAY:
                ratio = f"×{best / med:.2f}"
                per_run = "×%.2f" % statistics.median(
                    min(times[family, p, workload][r] for p in peers) / runs[r]
                    for r in range(reps))
            procs = CLIENT_PROCESSES.get((family, workload), 1)
            shape = f"{callers}×{calls:,}" if procs == 1 else f"{procs} conns × {callers}×{calls:,}"
            lines.append(f"| {family} | {workload} ({shape}) | {impl} | "
                         f"{total_calls(family, workload) / med:,.0f} | {' '.join(f'{r:.2f}' for r in runs)} | "
                         f"{ratio} | {per_run} | {of_floor} |"
                         + (f" {over_lua} |" if with_lua else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--server":
        child_server(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "--client":
        seconds = child_client(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        print(json.dumps({"seconds": seconds}))
    elif "--callgrind" in sys.argv:
        print("user-space instructions per sequential call (valgrind callgrind); "
              "this ÷ ours = this impl's total / ours (>1: pysplay does less work)")
        keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
        print(callgrind_table("--ours" in sys.argv, keep))
    else:
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
        if "--family" in sys.argv:             # e.g. --family udp: that family's rows alone
            families = sys.argv[sys.argv.index("--family") + 1].split(",")
            CALLS = {k: v for k, v in CALLS.items() if k[0] in families}
        if "--workload" in sys.argv:           # e.g. --workload seq
            workloads = sys.argv[sys.argv.index("--workload") + 1].split(",")
            CALLS = {k: v for k, v in CALLS.items() if k[1] in workloads}
        if "--impls" in sys.argv:              # e.g. --impls rpc,lua,c-floor,uvloop
            ONLY_IMPLS = set(sys.argv[sys.argv.index("--impls") + 1].split(","))
        print(f"median of {reps} runs; speed-up = the best peer's median time / this median time "
              f"(>1: pysplay faster); load average at start: {os.getloadavg()[0]:.1f}")
        print(table(reps))

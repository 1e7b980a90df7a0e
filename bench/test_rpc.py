"""RPC between two processes on loopback: pysplay rpc, rpcq, urpc against gevent and asyncio+uvloop.

Every implementation calls ``concat("one", "two")`` on a server in **another process** and checks
every result. Workloads:

* ``seq``:  one caller, sequential calls (round trips per second);
* ``conc``: 100 callers at once (calls per second).

Families (what is compared with what):

* ``persistent``: pysplay **rpcq** against the same RPC written with gevent sockets and with
  asyncio+uvloop streams: one persistent TCP connection, llenc framing (``<len>\\n<payload>``) of
  JSON, requests numbered and replies matched by number (so 100 callers share the connection, as
  with rpcq). rpcq runs twice: with its default ``window_size`` of 2 and with a window of 100
  (``rpcq-w100``), the peers having no window at all.
* ``percall``: pysplay **rpc** (a connection per call) against the same per-call-connection pattern
  in gevent and asyncio+uvloop.
* ``udp``: pysplay **urpc**, reported alone (no peer).

Each measurement starts a fresh server process and a fresh client process
(``python bench/test_rpc.py --server IMPL FAMILY`` / ``--client IMPL FAMILY WORKLOAD PORT``); the
client times its own main task, from the first call to the last reply, so start-up counts for no
one. Every TCP peer sets TCP_NODELAY (pysplay and uvloop do by default).

    python bench/test_rpc.py --reps 5          # interleaved runs, medians, ratios (RESULTS-rpc.md)
    python bench/test_rpc.py --callgrind       # CPU instructions per sequential call (both sides)
    python -m pytest bench/test_rpc.py         # pytest-benchmark, one benchmark per cell

``--callgrind`` runs server and client under ``valgrind --tool=callgrind`` twice (200 and 1,200
sequential calls) and reports (instructions at 1,200 - instructions at 200) / 1,000 for the client
and the server processes: user-space instructions per call, which the machine's load does not
change (kernel time is not counted).
"""
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CALLS = {  # (family, workload) -> (callers, calls per caller)
    ("persistent", "seq"): (1, 20_000),
    ("persistent", "conc"): (100, 300),
    ("percall", "seq"): (1, 4_000),
    ("percall", "conc"): (100, 40),
    ("udp", "seq"): (1, 10_000),
    ("udp", "conc"): (100, 100),
}
IMPLS = {
    "persistent": ["rpcq", "rpcq-w100", "gevent", "uvloop"],
    "percall": ["rpc", "gevent", "uvloop"],
    "udp": ["urpc"],
}
OURS = {"persistent": "rpcq", "percall": "rpc", "udp": "urpc"}
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


def serve_uvloop(family, ready):
    import asyncio
    import uvloop

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

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)
        ready(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(main())


# ------------------------------------------------------------------------------ clients

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

    if family == "percall":
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
        t0 = time.perf_counter()
        gevent.joinall([gevent.spawn(caller) for _ in range(callers)], raise_error=True)
        return time.perf_counter() - t0

    seconds = gevent.spawn(main).get()
    check(results, callers, calls)
    return seconds


def client_uvloop(family, port, callers, calls):
    import asyncio
    import uvloop

    results = []

    async def main():
        loop = asyncio.get_running_loop()
        if family == "percall":
            async def call(name, *args):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(frame({"type": "call", "call": [name, *args]}))
                reply = json.loads(await reader.readexactly(int(await reader.readline())))
                writer.close()
                return reply[0]
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            pending = {}
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
        t0 = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(callers)])
        return time.perf_counter() - t0

    seconds = uvloop.run(main())
    check(results, callers, calls)
    return seconds


# ------------------------------------------------------------------------------ processes

def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), ROOT,
                                         env.get("PYTHONPATH", "")])
    return env


def server_impl(impl):
    return "pysplay" if impl in ("rpc", "rpcq", "rpcq-w100", "urpc") else impl


def measure(family, impl, workload):
    """Seconds for the workload: a fresh server process and a fresh client process."""
    callers, calls = CALLS[family, workload]
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--server",
                               server_impl(impl), family], stdout=subprocess.PIPE, text=True,
                              env=_env())
    try:
        port = int(server.stdout.readline())
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--client", impl, family,
                              workload, str(port)], check=True, capture_output=True, text=True,
                             env=_env(), timeout=600)
        return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    finally:
        server.kill()
        server.wait()


def child_server(impl, family):
    def ready(port):
        print(port, flush=True)
    {"pysplay": serve_pysplay, "gevent": serve_gevent, "uvloop": serve_uvloop}[impl](family, ready)


def child_client(impl, family, workload, port):
    callers, calls = CALLS[family, workload]
    if os.environ.get("RPC_BENCH_CALLS"):
        calls = int(os.environ["RPC_BENCH_CALLS"])
    if impl in ("rpc", "rpcq", "rpcq-w100", "urpc"):
        return client_pysplay(impl, port, callers, calls)
    return {"gevent": client_gevent, "uvloop": client_uvloop}[impl](family, port, callers, calls)


# ------------------------------------------------------------------------- pytest-benchmark entry

try:
    import pytest
except ImportError:            # the command-line mode needs no pytest
    pytest = None

if pytest is not None:
    CELLS = [(f, i, w) for f, impls in IMPLS.items() for i in impls for w in ("seq", "conc")]

    @pytest.mark.parametrize("family, impl, workload", CELLS)
    def test_rpc(benchmark, family, impl, workload):
        inner = []
        benchmark.group = f"{family}-{workload}"
        benchmark.extra_info["impl"] = impl
        benchmark.pedantic(lambda: inner.append(measure(family, impl, workload)), rounds=3,
                           iterations=1)
        callers, calls = CALLS[family, workload]
        benchmark.extra_info["inner_seconds"] = inner
        benchmark.extra_info["calls_per_second"] = callers * calls / statistics.median(inner)
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
    vg = ["valgrind", "--tool=callgrind", "--quiet"]
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


def callgrind_table():
    low, high = 200, 1200
    lines = ["| family | impl | client instr/call | server instr/call | total | this ÷ ours |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as workdir:
        for family in ("persistent", "percall"):
            per = {}
            for impl in IMPLS[family]:
                if impl == "rpcq-w100":
                    continue                    # same code as rpcq for sequential calls
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
            impls = IMPLS[family] if rep % 2 == 0 else IMPLS[family][::-1]
            for impl in impls:
                s = measure(family, impl, workload)
                times.setdefault((family, impl, workload), []).append(s)
                callers, calls = CALLS[family, workload]
                print(f"rep {rep + 1}/{reps} {family:10} {impl:9} {workload:4} {s:.3f} s "
                      f"({callers * calls / s:,.0f} calls/s)", file=sys.stderr, flush=True)
    return format_table(times, reps)


def format_table(times, reps):
    """The results table. Two ratios for each pysplay row: the best peer's median time over ours,
    and the median over repetitions of (the best peer's time in that repetition / ours in it),
    which cancels the load changes between repetitions on a shared machine."""
    lines = ["| family | workload | impl | median calls/s | runs (s) | speed-up over the best "
             "peer: ratio of medians | median of per-run ratios |",
             "|---|---|---|---|---|---|---|"]
    for (family, workload), (callers, calls) in CALLS.items():
        peers = [i for i in IMPLS[family] if server_impl(i) != "pysplay"]
        best = min((statistics.median(times[family, i, workload]) for i in peers), default=None)
        for impl in IMPLS[family]:
            runs = times[family, impl, workload]
            med = statistics.median(runs)
            ratio = per_run = ""
            if best is not None and impl not in peers:
                ratio = f"×{best / med:.2f}"
                per_run = "×%.2f" % statistics.median(
                    min(times[family, p, workload][r] for p in peers) / runs[r]
                    for r in range(reps))
            lines.append(f"| {family} | {workload} ({callers}×{calls:,}) | {impl} | "
                         f"{callers * calls / med:,.0f} | {' '.join(f'{r:.2f}' for r in runs)} | "
                         f"{ratio} | {per_run} |")
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
        print(callgrind_table())
    else:
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
        print(f"median of {reps} runs; speed-up = the best peer's median time / this median time "
              f"(>1: pysplay faster); load average at start: {os.getloadavg()[0]:.1f}")
        print(table(reps))

"""TCP echo round trips over loopback: pysplay against gevent, asyncio and asyncio+uvloop.

Workloads (64-byte messages, client and echo server in one process and one loop):

* ``seq``:  one client, 50,000 sequential round trips;
* ``conc``: 100 clients at once, 1,000 round trips each (100,000 in all).

Each measurement runs in a fresh subprocess (``python bench/test_echo.py --child IMPL WORKLOAD``)
and is timed inside the framework's main task or coroutine, from the first connect to the last
reply, so interpreter start-up, imports and loop creation count for no one. Every peer uses
TCP_NODELAY (pysplay, asyncio and uvloop set it by default; gevent is told to).

Two ways to run it:

* ``python -m pytest bench/test_echo.py`` (pytest-benchmark): one benchmark per implementation
  and workload; ``extra_info["inner_seconds"]`` holds the in-process times, the reported wall
  times include process start-up.
* ``python bench/test_echo.py [--reps 5]``: runs the subprocesses interleaved (order reversed on
  odd repetitions) and prints the median wall and CPU times and the ratios to asyncio+uvloop (the
  table in bench/RESULTS-echo.md).
* ``python bench/test_echo.py --child IMPL WORKLOAD [ROUNDS]``: one measurement; ROUNDS overrides
  the round trips per client (run it under ``valgrind --tool=callgrind`` with two ROUNDS values
  and subtract, for instructions per round trip).
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MESSAGE = b"m" * 64
WORKLOADS = {"seq": (1, 50_000), "conc": (100, 1_000)}     # clients, round trips per client
IMPLS = ["pysplay", "gevent", "asyncio", "uvloop"]


# ------------------------------------------------------------------------------ implementations

def run_pysplay(clients, rounds):
    from splay import events, socket

    result = {}

    def main():
        server = socket.bind("127.0.0.1", 0, 128)
        port = server.getsockname()[1]

        def serve(c):
            while True:
                data = c.receive(64)
                if data is None:
                    break
                c.send(data)
            c.close()

        def acceptor():
            for _ in range(clients):
                events.thread(lambda c=server.accept(): serve(c))

        running = [clients]

        def client():
            s = socket.connect("127.0.0.1", port)
            for _ in range(rounds):
                s.send(MESSAGE)
                if s.receive(64) is None:
                    raise RuntimeError(f"echo failed: {s.error}")
            s.close()
            running[0] -= 1
            if running[0] == 0:          # the last client to finish stops the clock
                result["seconds"] = time.perf_counter() - t0
                result["cpu"] = time.process_time() - c0
                server.close()

        events.thread(acceptor)
        t0 = time.perf_counter()
        c0 = time.process_time()
        events.thread([client] * clients)

    events.run(main)
    return result["seconds"], result["cpu"]


def run_gevent(clients, rounds):
    import gevent
    from gevent import socket as gsocket
    import socket as pysocket

    def recv_exact(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    server = gsocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    port = server.getsockname()[1]

    def serve(c):
        c.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        while True:
            data = recv_exact(c, 64)
            if data is None:
                break
            c.sendall(data)
        c.close()

    def acceptor():
        for _ in range(clients):
            c, _ = server.accept()
            gevent.spawn(serve, c)

    def client():
        s = gsocket.create_connection(("127.0.0.1", port))
        s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
        for _ in range(rounds):
            s.sendall(MESSAGE)
            if recv_exact(s, 64) is None:
                raise RuntimeError("echo failed")
        s.close()

    def main():
        gevent.spawn(acceptor)
        t0 = time.perf_counter()
        c0 = time.process_time()
        gevent.joinall([gevent.spawn(client) for _ in range(clients)], raise_error=True)
        return time.perf_counter() - t0, time.process_time() - c0

    return gevent.spawn(main).get()


def run_asyncio(clients, rounds, use_uvloop=False):
    import asyncio

    async def serve(reader, writer):
        try:
            while True:
                data = await reader.readexactly(64)
                writer.write(data)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(rounds):
            writer.write(MESSAGE)
            await writer.drain()
            await reader.readexactly(64)
        writer.close()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=128)
        port = server.sockets[0].getsockname()[1]
        t0 = time.perf_counter()
        c0 = time.process_time()
        await asyncio.gather(*[client(port) for _ in range(clients)])
        seconds = time.perf_counter() - t0, time.process_time() - c0
        server.close()
        return seconds

    if use_uvloop:
        import uvloop
        return uvloop.run(main())
    return asyncio.run(main())


def child(impl, workload, rounds=None):
    clients, default_rounds = WORKLOADS[workload]
    rounds = default_rounds if rounds is None else rounds
    if impl == "pysplay":
        return run_pysplay(clients, rounds)
    if impl == "gevent":
        return run_gevent(clients, rounds)
    if impl == "asyncio":
        return run_asyncio(clients, rounds)
    if impl == "uvloop":
        return run_asyncio(clients, rounds, use_uvloop=True)
    raise SystemExit(f"unknown implementation {impl!r}: use one of {', '.join(IMPLS)}")


def measure(impl, workload):
    """Run one measurement in a fresh process: ``(wall seconds, CPU seconds)`` of the main task."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), ROOT,
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", impl, workload],
                         check=True, capture_output=True, text=True, env=env, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["cpu"]


# ------------------------------------------------------------------------- pytest-benchmark entry

try:
    import pytest
except ImportError:            # the command-line mode needs no pytest
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("workload", list(WORKLOADS))
    @pytest.mark.parametrize("impl", IMPLS)
    def test_echo(benchmark, impl, workload):
        inner = []
        benchmark.pedantic(lambda: inner.append(measure(impl, workload)), rounds=3, iterations=1)
        clients, rounds = WORKLOADS[workload]
        benchmark.extra_info["inner_seconds"] = [wall for wall, _ in inner]
        benchmark.extra_info["inner_cpu_seconds"] = [cpu for _, cpu in inner]
        benchmark.extra_info["round_trips_per_second"] = (
            clients * rounds / statistics.median(wall for wall, _ in inner))
        assert all(wall > 0 and cpu > 0 for wall, cpu in inner)


# ------------------------------------------------------------------------------- command line

def table(reps):
    times = {(i, w): [] for i in IMPLS for w in WORKLOADS}
    for rep in range(reps):
        order = IMPLS if rep % 2 == 0 else IMPLS[::-1]
        for workload in WORKLOADS:
            for impl in order:
                wall, cpu = measure(impl, workload)
                times[impl, workload].append((wall, cpu))
                print(f"rep {rep + 1}/{reps} {impl:8} {workload:5} wall {wall:.3f} s  cpu {cpu:.3f} s",
                      file=sys.stderr, flush=True)
    lines = ["| workload | measure | " + " | ".join(IMPLS) + " |", "|---" * (len(IMPLS) + 2) + "|"]
    for workload, (clients, rounds) in WORKLOADS.items():
        for k, what in ((0, "wall"), (1, "CPU")):
            base = statistics.median(t[k] for t in times["uvloop", workload])
            cells = []
            for impl in IMPLS:
                med = statistics.median(t[k] for t in times[impl, workload])
                cells.append(f"{med:.3f} s, ×{base / med:.2f}")
            lines.append(f"| {workload} ({clients} × {rounds:,} rt) | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--child":
        # An optional 4th argument overrides the round trips per client (for callgrind runs).
        wall, cpu = child(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else None)
        print(json.dumps({"seconds": wall, "cpu": cpu}))
    else:
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
        print(f"median of {reps} runs; ×N = asyncio+uvloop time / this time (higher is faster)")
        print(table(reps))

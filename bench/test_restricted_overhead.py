"""Cost of restricted sockets on the hot path: the same workloads with accounting off and on.

Workloads (client and server in one process and one loop, loopback, sequential round trips):

* ``echo``:  TCP echo of 64-byte messages (``send`` + ``receive(64)``);
* ``rpc``:   ``splay.rpc.call`` (a TCP connection per call: socket creation, connect, accept,
  close all go through the policy);
* ``rpcq``:  ``splay.rpcq.call`` (one persistent connection, the RPC fast path in Cython);
* ``urpc``:  ``splay.urpc.call`` (UDP datagrams).

``on`` calls ``splay.restricted_socket.init`` with every limit set and never reached: max_send,
max_receive, max_sockets, a bind port range, local_ip and a 6-entry blacklist (IPv4 addresses,
prefixes, networks and host-name wildcards), so every check runs in full. ``off`` runs without a
policy (the sockets test ``policy is None`` only). ``emu0`` applies an all-zero link model
(``splay.emulation.apply(LinkModel.uniform(0), ...)``: no delay, no rate limit, no loss) with the
server as an emulated peer, so connections and datagrams to it look their links up and find
nothing to do (bench/RESULTS-emulation.md).

    python bench/test_restricted_overhead.py [--reps 5]   # interleaved wall-clock runs, medians
    python bench/test_restricted_overhead.py --callgrind  # instructions per round trip (exact)
    python bench/test_restricted_overhead.py --callgrind --modes off emu0   # the emulation figure
    python bench/test_restricted_overhead.py --reps 5 --modes off emu0
    python -m pytest bench/test_restricted_overhead.py    # a quick run of both, checks <= 5 %

Each measurement is a fresh subprocess (``--child MODE WORKLOAD ROUNDS``) timing its own main
thread, from the first call to the last reply. ``--callgrind`` runs each child under
``valgrind --tool=callgrind`` at two round counts and reports the difference per round trip:
user-space instructions, which the machine's load does not change.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOADS = {"echo": 20_000, "rpc": 3_000, "rpcq": 10_000, "urpc": 10_000}
MODES = ["off", "on"]          # --modes off emu0: the emulation figure (with --callgrind or --reps)
PORTS = (42000, 42999)
SETTINGS = {"max_send": 1 << 40, "max_receive": 1 << 40, "max_sockets": 10_000,
            "start_port": PORTS[0], "end_port": PORTS[1], "local_ip": "127.0.0.1",
            "blacklist": ["10.1.2.3", "192.168.*", "172.16.0.0/12", "*.blocked.example",
                          "evil.example", "127.9.9.9"]}


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))


# ------------------------------------------------------------------------------ one measurement

def child(mode, workload, rounds):
    """Run ``rounds`` round trips of ``workload``; returns the seconds they took."""
    from splay import events, socket, restricted_socket
    if mode == "on":
        restricted_socket.init(SETTINGS)
    result = {}

    def emulate(port):
        if mode == "emu0":
            from splay.emulation import LinkModel, apply
            apply(LinkModel.uniform(0), 0, [("127.0.0.1", 1), ("127.0.0.1", port)])

    def free_port():
        s = socket.bind("127.0.0.1", 0)
        port = s.getsockname()[1]
        s.close()
        return port

    def main():
        if workload == "echo":
            server = socket.bind("127.0.0.1", 0)
            port = server.getsockname()[1]

            def serve():
                c = server.accept()
                while True:
                    data = c.receive(64)
                    if data is None:
                        break
                    c.send(data)
                c.close()

            events.thread(serve)
            emulate(port)
            s = socket.connect("127.0.0.1", port)
            message = b"m" * 64
            t0 = time.perf_counter()
            for _ in range(rounds):
                s.send(message)
                s.receive(64)
            result["seconds"] = time.perf_counter() - t0
            s.close()
            server.close()
        else:
            import importlib
            mod = importlib.import_module(f"splay.{workload}")
            port = free_port()
            mod.server(port, namespace={"concat": lambda a, b: a + b})
            node = ("127.0.0.1", port)
            emulate(port)
            assert mod.call(node, ["concat", "one", "two"]) == "onetwo"
            t0 = time.perf_counter()
            for _ in range(rounds):
                mod.call(node, ["concat", "one", "two"])
            result["seconds"] = time.perf_counter() - t0
            if mode == "on":
                result["stats"] = socket.stats()
            mod.stop_server(port)

    events.run(main)
    return result


def measure(mode, workload, rounds=None, under=()):
    """One fresh subprocess; returns its result dict."""
    rounds = WORKLOADS[workload] if rounds is None else rounds
    env = _env()
    if under:
        env["PYTHONHASHSEED"] = "0"         # same dict layouts in every run: exact counts
    out = subprocess.run([*under, sys.executable, __file__, "--child", mode, workload, str(rounds)],
                         env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} {workload} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall_clock(reps, modes=MODES):
    """Interleaved runs; median seconds per mode and workload, and the overhead of the second
    mode over the first."""
    times = {(m, w): [] for m in modes for w in WORKLOADS}
    for rep in range(reps):
        order = [(m, w) for w in WORKLOADS for m in modes]
        if rep % 2:
            order.reverse()
        for m, w in order:
            times[(m, w)].append(measure(m, w)["seconds"])
    rows = []
    for w, rounds in WORKLOADS.items():
        off, on = statistics.median(times[(modes[0], w)]), statistics.median(times[(modes[1], w)])
        rows.append((w, rounds, rounds / off, rounds / on, (on / off - 1) * 100,
                     times[(modes[0], w)], times[(modes[1], w)]))
    return rows


def instructions(mode, workload, rounds):
    """Total user-space instructions of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as d:
        out_file = os.path.join(d, "cg.out")
        measure(mode, workload, rounds, under=("valgrind", "--tool=callgrind",
                                               f"--callgrind-out-file={out_file}"))
        with open(out_file) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("no instruction total in the callgrind output")


def callgrind(workloads=("echo", "rpcq", "rpc", "urpc"), modes=MODES):
    """Instructions per round trip (difference of two round counts) in the two ``modes``."""
    rows = []
    for w in workloads:
        small, large = (200, 1200)
        per = {}
        for m in modes:
            per[m] = (instructions(m, w, large) - instructions(m, w, small)) / (large - small)
        base, other = per[modes[0]], per[modes[1]]
        rows.append((w, base, other, (other / base - 1) * 100))
    return rows


# ------------------------------------------------------------------------------ pytest entry

def test_restricted_overhead_is_small():
    """A quick interleaved run (3 repetitions of echo and rpcq): the median overhead stays small.

    Wall-clock noise on a shared 2-core machine is about +-20 % per run, so this only guards
    against a gross regression (> 25 %); the <= 5 % figure comes from --callgrind.
    """
    for w in ("echo", "rpcq"):
        off, on = [], []
        for rep in range(3):
            pair = ("off", "on") if rep % 2 == 0 else ("on", "off")
            for m in pair:
                (off if m == "off" else on).append(measure(m, w, WORKLOADS[w] // 4)["seconds"])
        assert statistics.median(on) <= statistics.median(off) * 1.25, (w, off, on)


def main(argv):
    sys.path[:0] = [os.path.join(ROOT, "python"), ROOT]      # run as a script: find splay
    if argv[:1] == ["--child"]:
        mode, workload, rounds = argv[1], argv[2], int(argv[3])
        print(json.dumps(child(mode, workload, rounds)))
        return 0
    modes = MODES
    if "--modes" in argv:
        i = argv.index("--modes")
        modes, argv = argv[i + 1:i + 3], argv[:i] + argv[i + 3:]
    if argv[:1] == ["--callgrind"]:
        print(f"| workload | instructions per round trip, {modes[0]} | {modes[1]} | overhead |")
        print("|---|---|---|---|")
        for w, off, on, pct in callgrind(argv[1:] or ("echo", "rpcq", "rpc", "urpc"), modes):
            print(f"| {w} | {off:,.0f} | {on:,.0f} | {pct:+.1f} % |")
        return 0
    reps = int(argv[argv.index("--reps") + 1]) if "--reps" in argv else 5
    print(f"| workload | round trips | {modes[0]} (rt/s) | {modes[1]} (rt/s) | overhead (median) | "
          f"runs {modes[0]} / {modes[1]} (s) |")
    print("|---|---|---|---|---|---|")
    for w, rounds, off, on, pct, toff, ton in wall_clock(reps, modes):
        runs = " ".join(f"{t:.3f}" for t in toff) + " / " + " ".join(f"{t:.3f}" for t in ton)
        print(f"| {w} | {rounds:,} | {off:,.0f} | {on:,.0f} | {pct:+.1f} % | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

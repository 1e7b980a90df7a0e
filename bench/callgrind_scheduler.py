"""Instructions per operation of the scheduler workloads, counted by callgrind (repeatable on a
noisy machine, unlike wall-clock time). For each implementation and workload it runs the workload
at a small scale and at scale 0 under ``valgrind --tool=callgrind`` and reports the difference
divided by the number of operations.

    python bench/callgrind_scheduler.py            # all workloads, all implementations
    python bench/callgrind_scheduler.py pingpong   # one workload

(Kernel time is not counted: callgrind sees user-space instructions only.)

Both runs of a workload build the same inputs (the timers workload's random delays, ~1.4k
instructions per delay in Python), so the difference counts the operations only.
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# workload -> (scale used, operations per unit of scale)
WORKLOADS = {"spawn": 5000, "pingpong": 10000, "sleep0": 10000, "timers": 2000}
IMPLS = ["splay", "gevent", "uvloop", "asyncio"]

CHILD = r'''
import sys, random
sys.path[:0] = [{root!r} + "/python", {root!r}]
impl, workload, n, n_inputs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import asyncio, gevent, gevent.event, uvloop
from splay import events
rng = random.Random(3)
delays = [rng.uniform(0.001, 0.005) for _ in range(n_inputs)][:n] if workload == "timers" else []

def splay_run():
    if workload == "spawn":
        def main():
            for t in [events.thread(lambda: None) for _ in range(n)]:
                t.join()
        events.run(main)
    elif workload == "pingpong":
        def ping():
            for i in range(n):
                events.fire("ping", i); events.wait("pong")
        def pong():
            for i in range(n):
                events.wait("ping"); events.fire("pong")
        events.run([pong, ping])
    elif workload == "sleep0":
        def w():
            for _ in range(n // 100):
                events.sleep(0)
        events.run([w] * 100)
    elif workload == "timers":
        events.run(lambda: [events.thread(lambda d=d: events.sleep(d)) for d in delays])

def gevent_run():
    if workload == "spawn":
        gevent.joinall([gevent.spawn(lambda: None) for _ in range(n)])
    elif workload == "pingpong":
        a, b = gevent.event.Event(), gevent.event.Event()
        def ping():
            for i in range(n):
                a.set(); b.wait(); b.clear()
        def pong():
            for i in range(n):
                a.wait(); a.clear(); b.set()
        gevent.joinall([gevent.spawn(pong), gevent.spawn(ping)])
    elif workload == "sleep0":
        def w():
            for _ in range(n // 100):
                gevent.sleep(0)
        gevent.joinall([gevent.spawn(w) for _ in range(100)])
    elif workload == "timers":
        gevent.joinall([gevent.spawn(gevent.sleep, d) for d in delays])

async def async_main():
    if workload == "spawn":
        async def noop():
            pass
        await asyncio.gather(*[asyncio.ensure_future(noop()) for _ in range(n)])
    elif workload == "pingpong":
        a, b = asyncio.Event(), asyncio.Event()
        async def ping():
            for i in range(n):
                a.set(); await b.wait(); b.clear()
        async def pong():
            for i in range(n):
                await a.wait(); a.clear(); b.set()
        await asyncio.gather(pong(), ping())
    elif workload == "sleep0":
        async def w():
            for _ in range(n // 100):
                await asyncio.sleep(0)
        await asyncio.gather(*[w() for _ in range(100)])
    elif workload == "timers":
        await asyncio.gather(*[asyncio.sleep(d) for d in delays])

if impl == "splay":
    splay_run()
elif impl == "gevent":
    gevent_run()
elif impl == "uvloop":
    uvloop.run(async_main())
else:
    asyncio.run(async_main())
'''


def count(impl, workload, n, n_inputs):
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "child.py")
        with open(script, "w") as f:
            f.write(CHILD.format(root=ROOT))
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out",
                              sys.executable, script, impl, workload, str(n), str(n_inputs)],
                             capture_output=True, text=True, check=True)
        m = re.search(r"Collected : (\d+)", out.stderr)
        return int(m.group(1))


def main(argv):
    workloads = argv or list(WORKLOADS)
    print("| workload | " + " | ".join(IMPLS) + " | splay vs gevent | splay vs uvloop |")
    print("|---" * (len(IMPLS) + 3) + "|")
    for w in workloads:
        n = WORKLOADS[w]
        per_op = {}
        for impl in IMPLS:
            per_op[impl] = (count(impl, w, n, n) - count(impl, w, 0, n)) / n
        cells = " | ".join(f"{per_op[i] / 1000:.1f}k" for i in IMPLS)
        print(f"| {w} (instructions/op) | {cells} | x{per_op['gevent'] / per_op['splay']:.2f} "
              f"| x{per_op['uvloop'] / per_op['splay']:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The RPC-heavy application of bench/test_workers.py: every node serves rpcq (or ``rpc``, a TCP
connection per call, with ``mode=rpc``) and runs CALLERS
threads that call random other nodes' ``ping`` in a loop, from the wall-clock time ``start=T``
for ``seconds=D``; then each node prints ``calls C pid P cpu S``: the calls it completed in that
window, its process and the CPU seconds that process used in the window (all its nodes together).

Arguments (key=value): start=T (epoch seconds), seconds=D, callers=C (default 4),
mode=rpcq|rpc (default rpcq).
"""
import os, random, sys, time
from splay.base import *
from splay import rpc, rpcq

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
START, SECONDS = float(opts["start"]), float(opts["seconds"])
CALLERS = int(opts.get("callers", 4))
family = {"rpcq": rpcq, "rpc": rpc}[opts.get("mode", "rpcq")]
done = [0]

def ping(x):
    return x

def caller(nodes, rng):
    while time.time() < START + SECONDS:
        if family.call(rng.choice(nodes), ["ping", 1], 10) == 1 and START <= time.time() < START + SECONDS:
            done[0] += 1

def main():
    family.server(job.me.port)
    others = [n for n in job.nodes() if n.port != job.me.port or n.ip != job.me.ip]
    events.sleep(max(0.0, START - time.time() - 0.5))     # every node's server is up by then
    rng = random.Random(job.position)
    for _ in range(CALLERS):
        events.thread(lambda: caller(others, rng))
    events.sleep(START - time.time())
    cpu0 = time.process_time()
    events.sleep(START + SECONDS - time.time())
    cpu = time.process_time() - cpu0
    events.sleep(0.5)                                     # the callers have stopped counting
    print(f"calls {done[0]} pid {os.getpid()} cpu {cpu:.3f}")
    events.sleep(1.0)                                     # the others' last calls are answered
    events.exit()

events.run(main)

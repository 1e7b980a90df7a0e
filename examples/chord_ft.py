"""Fault-tolerant Chord: successor lists and lookups that route around dead nodes
(Stoica et al., "Chord", SIGCOMM 2001, section 5.3; examples/chord.py is the minimal protocol).

Each node keeps its next R successors. stabilize() takes the first successor that answers, adopts
its list, and notifies it; a node that fails to answer is dropped from the list and the fingers;
lookups go to the closest preceding node that answers. The ring survives R-1 adjacent crashes.

Run it:    splay run examples/chord_ft.py -n 32 --time-limit 120 --log chord.log
           then crash nodes: kill -9 PID (each node's pid is in chord.log: "node 5 started, pid N")
Look at:   node 0 prints, every few seconds, the ring it walks (its size) and five lookups checked
           against the ring; after a kill, the size drops and the lookups stay right.
           Options, as key=value after the file: period=S (default 0.5), successors=R (default 4),
           wave=S (time between join waves, default 3 periods), demo=0 (node 0 stays quiet:
           the tests check from outside, see examples/checkers.py).
"""
import hashlib, os, random, sys
from splay.base import *
from splay import rpc

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
PERIOD, R, M = float(opts.get("period", 0.5)), int(opts.get("successors", 4)), 48
WAVE = float(opts.get("wave", PERIOD * 3))        # seconds between join waves (as in chord.py)
TIMEOUT = max(2.0, PERIOD * 10)                   # a node silent this long is taken as dead
pid = os.getpid()                                 # lets a test crash this node

def key(text):                                    # an M-bit id: SHA1, truncated
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:M // 8], "big")

me = {"ip": job.me.ip, "port": job.me.port, "id": key(f"{job.me.ip}:{job.me.port}")}
predecessor, successors = None, [me]              # successors[0] is the successor
finger, next_finger = [me] * M, 0                 # finger[i] = successor(id + 2^i)

def between(i, a, b):                  # i in the open arc (a, b); (a, a) is the ring but a
    return misc.between_c(i, a, b) or (a == b != i)

def successor():
    return successors[0]

def neighbours():                      # read by the predecessor's stabilize()
    return predecessor, successors

def forget(n):                         # n did not answer: drop it everywhere
    global successors
    successors = [s for s in successors if s["id"] != n["id"]] or [me]
    for i, f in enumerate(finger):
        if f["id"] == n["id"]:
            finger[i] = me

def find_successor(id, hops=0):        # (successor of id, RPC hops); routes around dead nodes
    while True:
        succ = successors[0]
        if between(id, me["id"], succ["id"]) or id == succ["id"]:
            return succ, hops
        n = closest_preceding_node(id)
        ok, found = rpc.acall(n, ["find_successor", id, hops + 1], TIMEOUT)
        if ok and len(found) == 2:
            return found[0], found[1]
        forget(n)

def closest_preceding_node(id):
    for n in reversed(successors[:1] + finger):
        if between(n["id"], me["id"], id):
            return n
    return successors[0]

def join(n0):
    global predecessor, successors
    found = rpc.call(n0, ["find_successor", me["id"]], TIMEOUT)
    if found:
        predecessor, successors = None, [found[0]]
    return found

def stabilize():
    global successors
    for succ in list(successors):                 # the first successor that answers
        ok, state = rpc.acall(succ, "neighbours", TIMEOUT)
        if ok:
            break
        forget(succ)
    else:
        return
    (pred, succ_list), x = state, None
    if pred and between(pred["id"], me["id"], succ["id"]):
        x = rpc.call(pred, "neighbours", TIMEOUT)         # a closer successor, if it answers
    if x:
        succ, succ_list = pred, x[1]
    ahead = [n for n in succ_list if n["id"] != me["id"]]
    successors = ([succ] + [n for n in ahead if n["id"] != succ["id"]])[:R]
    rpc.call(succ, ["notify", me], TIMEOUT)

def notify(n):
    global predecessor
    if predecessor is None or between(n["id"], predecessor["id"], me["id"]):
        predecessor = n

def fix_fingers():                     # one lookup per period; the next fingers it covers follow
    global next_finger
    start = lambda i: (me["id"] + 2 ** i) % 2 ** M
    node, _ = find_successor(start(next_finger))
    finger[next_finger] = node
    while next_finger + 1 < M and not between(node["id"], me["id"], start(next_finger + 1)):
        next_finger += 1
        finger[next_finger] = node
    next_finger = (next_finger + 1) % M

def check_predecessor():
    global predecessor
    if predecessor and rpc.ping(predecessor, timeout=TIMEOUT) is None:
        predecessor = None

def maintain():                        # the paper's periodic routines, one after the other
    stabilize()
    fix_fingers()
    check_predecessor()

def stop():                            # lets a test end the node
    events.thread(events.exit)

def report():                          # node 0: the ring it walks and five lookups
    ring, n = [me], successors[0]
    while n and n["id"] != me["id"] and len(ring) <= len(job.nodes()):
        ring.append(n)
        n = rpc.call(n, "successor", TIMEOUT)
    ids = sorted(n["id"] for n in ring)
    right = 0
    for k in random.sample(range(2 ** M), 5):
        owner, hops = find_successor(k)
        right += owner["id"] == next((i for i in ids if i >= k), ids[0])
    print(f"ring of {len(ring)} nodes; lookups matching that ring: {right}/5")

def main():
    rpc.server(job.me.port)
    if job.position > 0:                          # node 0 founds the ring; node i joins in
        events.sleep(WAVE * (job.position.bit_length() - 1 + random.random()))  # wave log2(i)
        while not join(job.nodes()[0]):
            events.sleep(PERIOD)
    events.periodic(PERIOD, maintain)
    if job.position == 0 and opts.get("demo", "1") != "0":
        events.periodic(PERIOD * 5, report)

events.run(main)

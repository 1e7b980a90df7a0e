"""Chord, the minimal protocol of the paper (Stoica et al., SIGCOMM 2001, figure 6).

Run it:    splay run examples/chord.py -n 32 --time-limit 60          (this is `make demo`)
           splay run examples/chord.py -n 2000 --in-process period=4  (many nodes, one process)
Look at:   node 0 waits until the ring is whole, prints it (node ids in ring order) and five lookups
           with their hop counts, then stops every node. Options (key=value after the file):
           period=S (stabilize, fix_fingers, check_predecessor; default 0.5), wave=S (time between
           join waves; default 3 periods), demo=0 (node 0 stays quiet; tests check from outside).
Metrics:   each node reports "joined", "successor_correct" (its successor is the one of the complete
           ring of job.nodes()) and the "lookup_hops" of its finger lookups: the plots of
           `splay run examples/chord.py -n 64 --report chord.html` show the ring forming.
"""
import bisect, hashlib, random, sys
from splay.base import *
from splay import metrics, rpc

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
PERIOD, M = float(opts.get("period", 0.5)), 48                 # M: identifier bits
WAVE = float(opts.get("wave", PERIOD * 3))                   # seconds between join waves

def key(text):                                               # an M-bit id: SHA1, truncated
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:M // 8], "big")

me = {"ip": job.me.ip, "port": job.me.port, "id": key(f"{job.me.ip}:{job.me.port}")}
predecessor, successor = None, me
finger, next_finger = [me] * M, 0                            # finger[i] = successor(id + 2^i)

def between(i, a, b):                  # i in the open arc (a, b); (a, a) is the ring but a
    return misc.between_c(i, a, b) or (a == b != i)

def ring(nodes):                       # the ids of the nodes, in ring order
    return sorted(key(f"{n.ip}:{n.port}") for n in nodes)

def true_successor():                 # the successor of me in the ring of every node of the job
    ids = job.derive(ring)            # one ring per process and membership, not one per node
    return ids[bisect.bisect_right(ids, me["id"]) % len(ids)]

def find_successor(id, hops=0):        # (successor of id, RPC hops it took)
    if between(id, me["id"], successor["id"]) or id == successor["id"]:
        return successor, hops
    return rpc.call(closest_preceding_node(id), ["find_successor", id, hops + 1])

def closest_preceding_node(id):
    for n in reversed([successor] + finger):
        if between(n["id"], me["id"], id):
            return n
    return successor

def join(n0):
    global predecessor, successor
    found = rpc.call(n0, ["find_successor", me["id"]])
    if found:
        predecessor, successor = None, found[0]
    return found

def stabilize():
    global successor
    x = rpc.call(successor, "predecessor")                   # reads the remote variable
    while x and between(x["id"], me["id"], successor["id"]):  # walk back to the closest
        successor, x = x, rpc.call(x, "predecessor")
    rpc.call(successor, ["notify", me])

def notify(n):
    global predecessor
    if predecessor is None or between(n["id"], predecessor["id"], me["id"]):
        predecessor = n

def fix_fingers():                     # one lookup per period; the next fingers it covers follow
    global next_finger
    start = lambda i: (me["id"] + 2 ** i) % 2 ** M
    found = find_successor(start(next_finger))
    if found:
        metrics.histogram("lookup_hops", buckets=range(M + 1)).observe(found[1])
        finger[next_finger] = node = found[0]
        while next_finger + 1 < M and not between(node["id"], me["id"], start(next_finger + 1)):
            next_finger += 1                                 # start in (me, node]: same node
            finger[next_finger] = node
        next_finger = (next_finger + 1) % M

def check_predecessor():
    global predecessor
    if predecessor and rpc.ping(predecessor, timeout=PERIOD * 2) is None:
        predecessor = None

def maintain():                        # the paper's periodic routines, one after the other
    for routine in (stabilize, fix_fingers, check_predecessor):
        routine()
    metrics.gauge("successor_correct").set(int(successor["id"] == final_successor))

def stop():                            # node 0 ends the demo with it; the reply leaves first
    events.thread(events.exit)

def main():
    global final_successor
    final_successor = true_successor()
    rpc.server(job.me.port)
    if job.position > 0:               # node 0 founds the ring; node i joins in wave log2(i):
        wave = job.position.bit_length() - 1                 # each wave doubles the ring, so
        events.sleep(WAVE * (wave + random.random()))        # few arcs get two newcomers at once
        while not join(job.nodes()[0]):
            events.sleep(PERIOD)
    metrics.gauge("joined").set(1)
    events.periodic(PERIOD, maintain)
    if job.position == 0 and opts.get("demo", "1") != "0":
        from chord_demo import chord_demo                    # examples/chord_demo.py: prints the
        chord_demo(job.nodes(), PERIOD)                      # ring and lookups, stops all

events.run(main)

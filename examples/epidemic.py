"""Epidemic (gossip) broadcast: push rumours, then pull what is missing (Demers et al. 1987).

A node that gets a message for the first time delivers it and pushes it to FANOUT random peers
(infect and die). Pushes alone reach almost everyone; to reach every node, each node also pulls
once per period: it sends a random peer the ids it has and gets back the messages it lacks
(anti-entropy). Peers are job.nodes(): all nodes, or K random ones with --random-list K.

Run it:    splay run examples/epidemic.py -n 50 --time-limit 60
           splay run examples/epidemic.py -n 500 --in-process --random-list 20 --time-limit 60
Look at:   node 0 broadcasts five messages, then prints for each how many nodes delivered it and
           in how many hops at most, and stops every node. Options, as key=value after the file:
           period=S (default 1), fanout=F (default 4), demo=0 (node 0 stays quiet; the tests
           broadcast themselves and check every node's delivered list, see examples/checkers.py).
"""
import random, sys
from splay.base import *
from splay import rpc

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
PERIOD, FANOUT = float(opts.get("period", 1)), int(opts.get("fanout", 4))
me = (job.me.ip, job.me.port)
messages, delivered, hops = {}, [], {}            # id -> payload; ids in delivery order; id -> hops

def peers():
    return [n for n in job.nodes() if (n.ip, n.port) != me]

def receive(id, payload, hop):         # a push: deliver a new message and pass it on
    if id in messages:
        return False
    messages[id], hops[id] = payload, hop
    delivered.append(id)
    others = peers()
    for peer in random.sample(others, min(FANOUT, len(others))):
        events.thread(lambda peer=peer: rpc.call(peer, ["receive", id, payload, hop + 1], PERIOD * 5))
    return True

def broadcast(id, payload):            # start a rumour from this node
    return receive(id, payload, 0)

def missing(ids):                      # a pull: the messages the caller does not have
    have = set(ids)
    return [[id, messages[id], hops[id]] for id in delivered if id not in have]

def pull():                            # anti-entropy, once per period, with one random peer
    others = peers()
    if others:
        for id, payload, hop in rpc.call(random.choice(others), ["missing", delivered], PERIOD * 5) or []:
            if id not in messages:
                messages[id], hops[id] = payload, hop + 1
                delivered.append(id)

def stop():                            # lets node 0 (or a test) end the node
    events.thread(events.exit)

def demo():                            # node 0: five broadcasts, then who got them
    nodes = job.nodes()
    while any(rpc.ping(n, PERIOD) is None for n in nodes):
        events.sleep(PERIOD)                      # until every node is up
    print(f"all {len(nodes)} nodes up: broadcasting five messages", flush=True)
    for i in range(5):
        broadcast(f"m{i}", f"message {i} from node 0")
    events.sleep(PERIOD * 5)
    states = [rpc.call(n, "hops", PERIOD * 5) or {} for n in nodes]
    for i in range(5):
        got = [s[f"m{i}"] for s in states if f"m{i}" in s]
        print(f"m{i}: delivered by {len(got)}/{len(nodes)} nodes, at most {max(got)} hops")
    for n in nodes:
        if (n.ip, n.port) != me:
            rpc.call(n, "stop", PERIOD * 5)
    events.exit()

def main():
    rpc.server(job.me.port)
    events.periodic(PERIOD, pull)
    if job.position == 0 and opts.get("demo", "1") != "0":
        demo()

events.run(main)

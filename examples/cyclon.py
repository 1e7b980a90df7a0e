"""Cyclon peer sampling (Voulgaris, Gavidia, van Steen, J. Network Syst. Manage. 2005).

Each node holds a view of C peers with ages. Every period it ages its view, takes the oldest peer
Q out of it, and swaps with Q a random L-entry part of the view (its own entry, age 0, first):
each side keeps what it receives, skipping itself and peers it already has, into free slots and
then in place of the entries it sent. Views start skewed on purpose (every node knows only the
first C nodes of the job list) and become random: in-degrees close to C, no self, no duplicates.

Run it:    splay run examples/cyclon.py -n 100 --in-process --time-limit 60
Look at:   node 0 prints every 5 periods the in-degrees of all nodes (min, max, standard
           deviation): the spread starts wide and shrinks to about the square root of C.
           Options, as key=value after the file: period=S (default 1), view=C (default 8),
           shuffle=L (default 4), demo=0 (node 0 stays quiet; tests check from outside).
"""
import random, statistics, sys
from splay.base import *
from splay import rpc

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
PERIOD, C, L = float(opts.get("period", 1)), int(opts.get("view", 8)), int(opts.get("shuffle", 4))
me = (job.me.ip, job.me.port)
view = {}                                         # (ip, port) -> age; a dict: no duplicates

def view_nodes():                                 # read by the demo and by the tests
    return [list(p) for p in view]

def merge(received, sent):             # keep received entries: free slots, then the sent ones
    for ip, port, age in received:
        p = (ip, port)
        if p == me or p in view:
            continue
        while len(view) >= C and sent:
            view.pop(sent.pop(), None)
        if len(view) < C:
            view[p] = age

def entries(peers):
    return [[ip, port, view[(ip, port)]] for ip, port in peers]

def exchange(offer):                   # the passive side: answer with L random entries
    sent = random.sample(list(view), min(L, len(view)))
    reply = entries(sent)
    merge(offer, sent)
    return reply

def shuffle():                         # the active side, once per period
    if not view:
        return
    for p in view:
        view[p] += 1
    q = max(view, key=view.get)                   # the oldest peer leaves the view
    del view[q]
    sent = random.sample(list(view), min(L - 1, len(view)))
    reply = rpc.call(q, ["exchange", [[*me, 0]] + entries(sent)], PERIOD * 5)
    if reply is not None:                         # no answer: q stays out (probably dead)
        merge(reply, sent)

def in_degree_report(nodes):           # node 0: how evenly the views point at the nodes
    count = {(n.ip, n.port): 0 for n in nodes}
    for v in [rpc.call(n, "view_nodes", PERIOD * 5) or [] for n in nodes]:
        for ip, port in v:
            count[(ip, port)] = count.get((ip, port), 0) + 1
    degrees = list(count.values())
    print(f"in-degree min {min(degrees)} max {max(degrees)} "
          f"stdev {statistics.pstdev(degrees):.2f} (view size {C})")

def stop():                            # lets a test end the node
    events.thread(events.exit)

def main():
    rpc.server(job.me.port)
    for n in job.nodes():                         # skewed start: the first C other nodes
        if len(view) >= C:
            break
        if (n.ip, n.port) != me:
            view[(n.ip, n.port)] = 0
    if job.position == 0 and opts.get("demo", "1") != "0":
        events.periodic(PERIOD * 5, lambda: in_degree_report(job.nodes()))
    # each node shuffles at its own phase (unsynchronised, as real nodes are)
    events.periodic(PERIOD, shuffle, first=PERIOD * (1 + random.random()))

events.run(main)

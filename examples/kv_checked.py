"""A primary-backup key-value store whose clients record every operation, for `splay check`.

Node 0 is the primary: it applies writes and compare-and-sets, and forwards each change to the
backup (node 1) after a replication delay. The other nodes are clients: each performs random
reads, writes and compare-and-sets on a few keys and records them with splay.history. Reads go
to the primary -- unless the store is run with stale=1, when clients read from the backup, which
lags behind: the checker then finds a client that reads a value older than one it wrote.

Run it:    splay run examples/kv_checked.py -n 5
           splay check kv history.jsonl                 # -> kv: VALID
           splay run examples/kv_checked.py -n 5 -- stale=1
           splay check kv history.jsonl --html kv.html  # -> kv: INVALID, with a counterexample
Look at:   node 0 prints the store at the end; `splay run` writes the clients' operations to
           history.jsonl beside its log. Options, as key=value after the file: ops=N per client
           (default 40), keys=K (default 3), delay=S replication delay (default 0.05), stale=1.
"""
import random, sys
from splay.base import *
from splay import history, rpc
import splay

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
OPS, KEYS = int(opts.get("ops", 40)), int(opts.get("keys", 3))
DELAY, STALE = float(opts.get("delay", 0.05)), opts.get("stale", "0") == "1"
store = {}

def get(key):
    return store.get(key)

def replicate(key, value):             # the backup applies the primary's change
    store[key] = value

def changed(key):                      # the primary forwards a change after the delay
    value = store.get(key)
    def forward():
        events.sleep(DELAY)
        rpc.call(job.nodes()[1], ["replicate", key, value], 5)
    events.thread(forward)

def put(key, value):
    store[key] = value
    changed(key)
    return True

def cas(key, old, new):                # compare-and-set: False when the value is not `old`
    if store.get(key) != old:
        return False
    store[key] = new
    changed(key)
    return True

def client():
    primary, backup = job.nodes()[0], job.nodes()[1]
    seen = {}                          # key -> the last value this client wrote or read
    for i in range(OPS):
        key, kind = f"k{random.randrange(KEYS)}", random.choice(("read", "write", "cas"))
        if kind == "read":
            with history.operation("read", [key, None]) as op:
                seen[key] = rpc.call(backup if STALE else primary, ["get", key], 5)
                op.ok([key, seen[key]])
        elif kind == "write":
            with history.operation("write", [key, i]) as op:
                rpc.call(primary, ["put", key, i], 5)
                op.ok()
            seen[key] = i
        else:
            old, new = seen.get(key), i
            with history.operation("cas", [key, [old, new]]) as op:
                if rpc.call(primary, ["cas", key, old, new], 5):
                    op.ok()
                    seen[key] = new
                else:
                    op.fail("the value was not the expected one")
        events.sleep(random.random() * DELAY)

def main():
    rpc.server(job.me)
    events.sleep(0.3)                  # every server is up
    if job.position >= 2:
        client()
        rpc.call(job.nodes()[0], ["client_done"], 5)
        events.exit()
    else:
        while job.position == 0 and done[0] < len(job.nodes()) - 2:
            events.wait("client_done")
        if job.position == 0:
            log.print("store:", dict(sorted(store.items())))
            events.sleep(DELAY * 2)
            for node in job.nodes()[1:]:
                events.thread(lambda node=node: rpc.call(node, ["stop"], 2))
            events.sleep(0.1)
            events.exit()
        else:
            events.wait("stop")
            events.exit()

done = [0]

def client_done():
    done[0] += 1
    events.fire("client_done")

def stop():
    events.thread(lambda: (events.sleep(0.05), events.fire("stop")))
    return True

events.run(main)

"""What node 0 of examples/chord.py shows (``demo=1``, the default): kept out of the protocol file
so that the protocol stays the paper's figure. It uses only the public API (no files, no
environment), so it runs where the node runs: under ``splay run``, ``--sandbox`` and deployed
(``splay submit`` ships it with chord.py, as a module beside it that chord.py imports).
The tests use :func:`chord_walk` too (through examples/checkers.py).
"""
import random
import time

from splay import events, rpc

M = 48    # identifier bits of the Chord examples


def chord_walk(start, limit):
    """The ring seen from ``start`` along the ``successor`` pointers (nodes as the nodes hold
    them), or [] while the walk does not come back to ``start`` within ``limit`` steps."""
    first = rpc.call(start, "me")
    ring, n = [first], rpc.call(start, "successor")
    while isinstance(n, dict) and first and n["id"] != first["id"] and len(ring) <= limit:
        ring.append(n)
        n = rpc.call(n, "successor")
    return ring if isinstance(n, dict) and first and n["id"] == first["id"] else []


def chord_demo(nodes, period):
    """The end of ``make demo``, run by node 0 of examples/chord.py: wait until the ring holds
    every node (saying how many have joined, at most once a second), let the fingers settle,
    print the ring and five lookups with their hop counts, then stop every other node and this
    one."""
    reported, last = -1, 0.0
    # A walk costs one RPC per node of the ring: one per (virtual) second at most, and one per
    # 20,000 nodes-seconds at scale (every 5 s at 100,000 nodes), so that the wait adds a few
    # percent to the protocol's own RPCs (about ten per node per period).
    while (joined := len(chord_walk(nodes[0], len(nodes)))) != len(nodes):
        if joined != reported and time.monotonic() - last >= 1.0:   # progress, not silence
            print(f"ring forming: {joined} of {len(nodes)} nodes joined", flush=True)
            reported, last = joined, time.monotonic()
        events.sleep(max(period, 1.0, len(nodes) / 20000))
    print(f"ring whole: {len(nodes)} nodes; letting the fingers settle", flush=True)
    events.sleep(period * 8)
    ring = chord_walk(nodes[0], len(nodes))
    print("ring of", len(ring), "nodes:", " -> ".join(f"{n['id']:012x}" for n in ring))
    for key in random.sample(range(2 ** M), 5):
        owner, hops = rpc.call(nodes[0], ["find_successor", key])
        print(f"lookup {key:012x}: node {owner['id']:012x} (port {owner['port']}), {hops} hops")
    for n in nodes[1:]:
        rpc.call(n, "stop")
    events.exit()

#!/usr/bin/env python3
"""A Maelstrom grow-only counter as a state-based CRDT (plain Python: runs under Maelstrom too).
Each node counts its own adds; nodes gossip their vectors of counts and merge them by maximum;
a read answers the sum. Reads may lag while gossip travels; the final reads agree.

    splay run --maelstrom g-counter --bin examples/maelstrom/g_counter.py -n 5
"""
import json
import sys
import threading
import time

lock = threading.Lock()
node_id, peers, counts = None, [], {}


def send(dest, body):
    with lock:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def reply(request, body):
    body["in_reply_to"] = request["body"].get("msg_id")
    send(request["src"], body)


def gossip():
    while True:
        time.sleep(0.2)
        with lock:
            state = dict(counts)
        for peer in peers:
            send(peer, {"type": "merge", "counts": state})


def main():
    global node_id, peers
    for line in sys.stdin:
        request = json.loads(line)
        body = request["body"]
        kind = body["type"]
        if kind == "init":
            node_id = body["node_id"]
            peers = [n for n in body["node_ids"] if n != node_id]
            reply(request, {"type": "init_ok"})
            threading.Thread(target=gossip, daemon=True).start()
        elif kind == "add":
            with lock:
                counts[node_id] = counts.get(node_id, 0) + body["delta"]
            reply(request, {"type": "add_ok"})
        elif kind == "read":
            with lock:
                total = sum(counts.values())
            reply(request, {"type": "read_ok", "value": total})
        elif kind == "merge":
            with lock:
                for node, count in body["counts"].items():
                    counts[node] = max(counts.get(node, 0), count)
        elif "msg_id" in body:
            reply(request, {"type": "error", "code": 10, "text": f"unsupported: {kind}"})


if __name__ == "__main__":
    main()

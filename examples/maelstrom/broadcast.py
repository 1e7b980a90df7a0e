#!/usr/bin/env python3
"""A Maelstrom broadcast node that survives partitions (plain Python, no pysplay: it runs under
Maelstrom itself too). Every node gossips everything it knows to its neighbours several times a
second (anti-entropy), so messages cross a partition as soon as it heals.

    splay run --maelstrom broadcast --bin examples/maelstrom/broadcast.py -n 25 \\
              --partition '0-11|12-24@5-15' --workload-time 20
"""
import json
import sys
import threading
import time

lock = threading.Lock()
node_id, neighbours, messages = None, [], set()


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
            known = sorted(messages)
        for peer in neighbours:
            send(peer, {"type": "gossip", "messages": known})


def main():
    global node_id, neighbours
    for line in sys.stdin:
        request = json.loads(line)
        body = request["body"]
        kind = body["type"]
        if kind == "init":
            node_id = body["node_id"]
            neighbours = [n for n in body["node_ids"] if n != node_id]
            reply(request, {"type": "init_ok"})
            threading.Thread(target=gossip, daemon=True).start()
        elif kind == "topology":
            neighbours = body["topology"].get(node_id, neighbours)
            reply(request, {"type": "topology_ok"})
        elif kind == "broadcast":
            with lock:
                messages.add(body["message"])
            reply(request, {"type": "broadcast_ok"})
        elif kind == "read":
            with lock:
                known = sorted(messages)
            reply(request, {"type": "read_ok", "messages": known})
        elif kind == "gossip":
            with lock:
                messages.update(body["messages"])
        elif "msg_id" in body:
            reply(request, {"type": "error", "code": 10, "text": f"unsupported: {kind}"})


if __name__ == "__main__":
    main()

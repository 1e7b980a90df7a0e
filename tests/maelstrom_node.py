#!/usr/bin/env python3
"""A tiny Maelstrom node program for the tests (plain Python: JSON lines on stdin/stdout).

    maelstrom_node.py [--lonely] [--same-ids] [--garbage] [--mute]

Serves echo, generate, broadcast/read/topology (gossiping to every node unless --lonely), and
lin-kv read/write/cas by forwarding each to the ``lin-kv`` service and relaying its answer.
--same-ids hands out one id to everyone (caught by the unique-ids checker); --garbage writes a
line that is not a message before each reply; --mute never answers init.
"""
import itertools
import json
import sys
import threading
import time

flags = set(sys.argv[1:])
lock = threading.Lock()
me, everyone, messages = None, [], set()
counter = itertools.count(1)
waiting = {}                      # msg_id sent to lin-kv -> the client's request


def send(dest, body):
    with lock:
        if "--garbage" in flags:
            sys.stdout.write("this is not a message\n")
        sys.stdout.write(json.dumps({"src": me, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def reply(request, body):
    body["in_reply_to"] = request["body"].get("msg_id")
    send(request["src"], body)


def gossip():
    while True:
        time.sleep(0.1)
        with lock:
            known = sorted(messages)
        for peer in everyone:
            if peer != me:
                send(peer, {"type": "gossip", "messages": known})


for line in sys.stdin:
    request = json.loads(line)
    body = request["body"]
    kind = body["type"]
    if kind == "init":
        if "--mute" in flags:
            continue
        me, everyone = body["node_id"], body["node_ids"]
        reply(request, {"type": "init_ok"})
        if "--lonely" not in flags:
            threading.Thread(target=gossip, daemon=True).start()
    elif kind == "echo":
        reply(request, {"type": "echo_ok", "echo": body["echo"]})
    elif kind == "generate":
        reply(request, {"type": "generate_ok",
                        "id": "same" if "--same-ids" in flags else f"{me}-{next(counter)}"})
    elif kind == "topology":
        reply(request, {"type": "topology_ok"})
    elif kind == "broadcast":
        with lock:
            messages.add(body["message"])
        reply(request, {"type": "broadcast_ok"})
    elif kind == "read" and request["src"].startswith("c") and "key" not in body:
        with lock:
            known = sorted(messages)
        reply(request, {"type": "read_ok", "messages": known})
    elif kind == "gossip":
        with lock:
            messages.update(body["messages"])
    elif kind in ("read", "write", "cas") and request["src"].startswith("c"):
        msg_id = next(counter)
        waiting[msg_id] = request
        send("lin-kv", dict(body, msg_id=msg_id))
    elif body.get("in_reply_to") in waiting:
        client = waiting.pop(body["in_reply_to"])
        reply(client, {k: v for k, v in body.items() if k != "in_reply_to"})

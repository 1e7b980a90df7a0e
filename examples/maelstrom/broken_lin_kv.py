#!/usr/bin/env python3
"""A deliberately broken Maelstrom lin-kv node: n0 is the leader and applies every write and
compare-and-set (the others forward them and wait for its answer), then replicates the new
value to the followers a little later -- but followers answer reads from their own copy. A
client that writes through one node and reads through another can read an old value: not
linearizable, and `splay check` shows the operations that prove it.

    splay run --maelstrom lin-kv --bin examples/maelstrom/broken_lin_kv.py -n 3 --rate 30
"""
import json
import sys
import threading
import time

lock = threading.Lock()
node_id, node_ids, store = None, [], {}
pending, next_id = {}, [0]        # forwarded requests: our msg_id -> the client's request


def send(dest, body):
    with lock:
        sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
        sys.stdout.flush()


def reply(request, body):
    body["in_reply_to"] = request["body"].get("msg_id")
    send(request["src"], body)


def apply(body):
    """The leader applies a write or cas; returns the reply body."""
    key = str(body["key"])
    if body["type"] == "write":
        store[key] = body["value"]
    elif key not in store:
        return {"type": "error", "code": 20, "text": "key does not exist"}
    elif store[key] != body["from"]:
        return {"type": "error", "code": 22, "text": f"expected {body['from']}, had {store[key]}"}
    else:
        store[key] = body["to"]
    value = store[key]

    def replicate():
        time.sleep(0.1)                              # the lag that breaks linearizability
        for peer in node_ids[1:]:
            send(peer, {"type": "replicate", "key": key, "value": value})
    threading.Thread(target=replicate, daemon=True).start()
    return {"type": body["type"] + "_ok"}


def main():
    global node_id, node_ids
    for line in sys.stdin:
        request = json.loads(line)
        body = request["body"]
        kind = body["type"]
        if kind == "init":
            node_id, node_ids = body["node_id"], body["node_ids"]
            reply(request, {"type": "init_ok"})
        elif kind == "read":
            key = str(body["key"])
            if key in store:
                reply(request, {"type": "read_ok", "value": store[key]})
            else:
                reply(request, {"type": "error", "code": 20, "text": "key does not exist"})
        elif kind in ("write", "cas") and node_id == node_ids[0]:
            reply(request, apply(body))
        elif kind in ("write", "cas"):                  # a follower forwards to the leader
            next_id[0] += 1
            pending[next_id[0]] = request
            send(node_ids[0], dict(body, msg_id=next_id[0], type="fwd_" + kind))
        elif kind.startswith("fwd_"):                   # the leader serves a forwarded one
            answer = apply(dict(body, type=kind[4:]))
            reply(request, answer)
        elif kind == "replicate":
            store[body["key"]] = body["value"]
        elif "in_reply_to" in body and body["in_reply_to"] in pending:
            client = pending.pop(body["in_reply_to"])
            answer = {k: v for k, v in body.items() if k != "in_reply_to"}
            reply(client, answer)
        elif "msg_id" in body:
            reply(request, {"type": "error", "code": 10, "text": f"unsupported: {kind}"})


if __name__ == "__main__":
    main()

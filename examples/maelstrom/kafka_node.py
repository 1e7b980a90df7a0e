"""Maelstrom's kafka workload served by a pysplay application (splay.maelstrom.Node): node n0
keeps every log and its committed offsets; the other nodes forward each request to it and relay
the answer. One copy gives every key one order and unique offsets (it does not survive n0's
loss: a replicated log would).

    splay run --maelstrom kafka --app examples/maelstrom/kafka_node.py -n 5 --rate 50
"""
from splay.maelstrom import Node, RPCError

node = Node()
LEADER = "n0"
logs = {}                   # key -> messages, a message's offset is its index
committed = {}              # key -> the highest committed offset


def apply(body):
    """The reply body of one request, on the leader."""
    kind = body["type"]
    if kind == "send":
        log = logs.setdefault(body["key"], [])
        log.append(body["msg"])
        return {"type": "send_ok", "offset": len(log) - 1}
    if kind == "poll":
        return {"type": "poll_ok",
                "msgs": {key: [[offset, msg] for offset, msg in
                               enumerate(logs.get(key, [])[start:], start)]
                         for key, start in body["offsets"].items()}}
    if kind == "commit_offsets":
        for key, offset in body["offsets"].items():
            committed[key] = max(offset, committed.get(key, -1))
        return {"type": "commit_offsets_ok"}
    return {"type": "list_committed_offsets_ok",
            "offsets": {key: committed[key] for key in body["keys"] if key in committed}}


def serve(message):
    body = {k: v for k, v in message["body"].items() if k not in ("msg_id", "in_reply_to")}
    if node.id == LEADER:
        node.reply(message, apply(body))
        return
    try:
        answer = node.rpc(LEADER, body, timeout=1.0)
    except TimeoutError:
        return                          # the client's request times out: an unknown outcome
    except RPCError as e:
        answer = {"type": "error", "code": e.code, "text": e.text}
    node.reply(message, {k: v for k, v in answer.items() if k != "in_reply_to"})


for kind in ("send", "poll", "commit_offsets", "list_committed_offsets"):
    node.handler(kind)(serve)

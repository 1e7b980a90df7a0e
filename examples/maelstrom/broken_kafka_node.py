"""A deliberately broken kafka node (splay.maelstrom.Node): every node keeps its own logs and
numbers offsets on its own, so two nodes hand out one offset of a key to different messages and
a poll through one node misses what was sent through another. The kafka checker reports the
duplicate offsets (and the messages that disagree).

    splay run --maelstrom kafka --app examples/maelstrom/broken_kafka_node.py -n 3 --rate 30
"""
from splay.maelstrom import Node

node = Node()
logs, committed = {}, {}


@node.handler("send")
def send(message):
    body = message["body"]
    log = logs.setdefault(body["key"], [])
    log.append(body["msg"])
    node.reply(message, {"type": "send_ok", "offset": len(log) - 1})


@node.handler("poll")
def poll(message):
    node.reply(message, {"type": "poll_ok", "msgs": {
        key: [[offset, msg] for offset, msg in enumerate(logs.get(key, [])[start:], start)]
        for key, start in message["body"]["offsets"].items()}})


@node.handler("commit_offsets")
def commit_offsets(message):
    committed.update(message["body"]["offsets"])
    node.reply(message, {"type": "commit_offsets_ok"})


@node.handler("list_committed_offsets")
def list_committed_offsets(message):
    node.reply(message, {"type": "list_committed_offsets_ok", "offsets": {
        key: committed[key] for key in message["body"]["keys"] if key in committed}})

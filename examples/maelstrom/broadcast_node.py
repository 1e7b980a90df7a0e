"""Maelstrom's broadcast served by a pysplay application (splay.maelstrom.Node: no subprocess),
for large runs: each node gossips to its topology neighbours what they have not yet
acknowledged: at once when it learns something new, and again every second for what is still
unacknowledged, so messages cross a partition once it heals.

    splay run --maelstrom broadcast --app examples/maelstrom/broadcast_node.py -n 200 \\
              --in-process --partition '0-99|100-199@5-10' --workload-time 15
"""
from splay import events
from splay.maelstrom import Node

node = Node()
messages = set()
neighbours = []
acked = {}                        # neighbour -> the messages it confirmed having


@node.handler("topology")
def topology(message):
    neighbours[:] = message["body"]["topology"].get(node.id, [])
    for peer in neighbours:
        acked.setdefault(peer, set())
    node.reply(message, {"type": "topology_ok"})
    events.thread(gossip)


def learn(new):
    new = set(new) - messages
    if new:
        messages.update(new)
        for peer in neighbours:
            events.thread(lambda peer=peer: push(peer))


@node.handler("broadcast")
def broadcast(message):
    learn([message["body"]["message"]])
    node.reply(message, {"type": "broadcast_ok"})


@node.handler("read")
def read(message):
    node.reply(message, {"type": "read_ok", "messages": sorted(messages)})


@node.handler("gossip")
def receive_gossip(message):
    node.reply(message, {"type": "gossip_ok", "have": message["body"]["messages"]})
    learn(message["body"]["messages"])


def push(peer):
    missing = sorted(messages - acked[peer])
    if missing:
        try:
            reply = node.rpc(peer, {"type": "gossip", "messages": missing}, timeout=1.0)
        except TimeoutError:
            return
        acked[peer].update(reply["have"])


def gossip():
    while True:
        events.sleep(1.0)
        for peer in neighbours:
            events.thread(lambda peer=peer: push(peer))

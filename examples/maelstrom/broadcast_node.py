"""Maelstrom's broadcast served by a pysplay application (splay.maelstrom.Node: no subprocess),
for large runs. Each topology link has one sender thread that sends the neighbour, in one
message, every message it has not acknowledged yet -- as soon as there is news, and again every
second while some stay unacknowledged -- with one request in flight per link. Messages cross a
partition once it heals, and a burst of news costs one message per link, not one per message
(sending a gossip per new message to every neighbour collapses under load at 1,000 nodes).

    splay run --maelstrom broadcast --app examples/maelstrom/broadcast_node.py -n 200 \\
              --in-process --partition '0-99|100-199@5-10' --workload-time 15
"""
from splay import events
from splay.maelstrom import Node

node = Node()
messages = set()
acked = {}                        # neighbour -> the messages it confirmed having
RETRY = 1.0                       # seconds between two tries of an unacknowledged gossip


def news():
    return f"broadcast news {node.id}"


@node.handler("topology")
def topology(message):
    for peer in message["body"]["topology"].get(node.id, []):
        if peer not in acked:
            acked[peer] = set()
            events.thread(lambda peer=peer: link(peer))
    node.reply(message, {"type": "topology_ok"})


def learn(new):
    new = set(new) - messages
    if new:
        messages.update(new)
        events.fire(news())


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


def link(peer):
    """The sender of one link: what ``peer`` lacks, one request at a time."""
    while True:
        missing = sorted(messages - acked[peer])
        if not missing:
            events.wait(news(), RETRY)
            continue
        try:
            reply = node.rpc(peer, {"type": "gossip", "messages": missing}, timeout=RETRY)
        except TimeoutError:
            continue                  # partitioned or slow: try again with what is missing then
        acked[peer].update(reply["have"])

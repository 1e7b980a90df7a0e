"""A pysplay application serving Maelstrom's echo and broadcast with splay.maelstrom.Node (no
subprocess): used by tests/test_maelstrom.py through 'splay run --maelstrom ... --app'."""
from splay import events
from splay.maelstrom import Node

node = Node()
seen = set()


@node.handler("echo")
def echo(message):
    node.reply(message, {"type": "echo_ok", "echo": message["body"]["echo"]})


@node.handler("topology")
def topology(message):
    node.reply(message, {"type": "topology_ok"})


@node.handler("broadcast")
def broadcast(message):
    value = message["body"]["message"]
    if value not in seen:
        seen.add(value)
        for peer in node.ids:
            if peer != node.id:
                events.thread(lambda peer=peer: send_until_acknowledged(peer, value))
    node.reply(message, {"type": "broadcast_ok"})    # to a client, or to the peer's rpc


def send_until_acknowledged(peer, value):
    for _ in range(50):
        try:
            node.rpc(peer, {"type": "broadcast", "message": value}, timeout=0.5)
            return
        except TimeoutError:
            events.sleep(0.1)


@node.handler("read")
def read(message):
    node.reply(message, {"type": "read_ok", "messages": sorted(seen)})

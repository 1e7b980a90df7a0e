"""Maelstrom's txn-list-append served by a pysplay application (splay.maelstrom.Node): node n0
runs every transaction whole, one after the other, on its own lists (a handler that does not
wait runs without interruption); the other nodes forward the transactions to it. Serializable
(strictly: one copy, in real-time order), and the list-append checker finds no anomaly.

    splay run --maelstrom txn-list-append --app examples/maelstrom/txn_node.py -n 5 --rate 50
"""
from splay.maelstrom import Node, RPCError

node = Node()
LEADER = "n0"
lists = {}                  # key -> the list of appended values


def run(txn):
    """Run one transaction (a list of [f, key, value]); the completed micro-operations."""
    done = []
    for f, key, value in txn:
        if f == "r":
            done.append(["r", key, list(lists.get(key, []))])
        else:
            lists.setdefault(key, []).append(value)
            done.append(["append", key, value])
    return done


@node.handler("txn")
def txn(message):
    if node.id == LEADER:
        node.reply(message, {"type": "txn_ok", "txn": run(message["body"]["txn"])})
        return
    try:
        answer = node.rpc(LEADER, {"type": "txn", "txn": message["body"]["txn"]}, timeout=1.0)
    except TimeoutError:
        return                          # the client times out: an unknown outcome
    except RPCError as e:
        answer = {"type": "error", "code": e.code, "text": e.text}
    node.reply(message, {k: v for k, v in answer.items() if k != "in_reply_to"})

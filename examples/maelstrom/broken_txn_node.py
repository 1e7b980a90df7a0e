"""A deliberately broken txn-list-append node (splay.maelstrom.Node): it runs a transaction one
micro-operation at a time against Maelstrom's lin-kv service -- a read reads the key's list, an
append is a compare-and-set of the list with the value added -- with no isolation between
transactions. Each key stays linearizable, but concurrent transactions interleave: one reads
``x`` before another appends to it while that one reads ``y`` before the first appends to it.
The list-append checker reports the dependency cycle (G2, and G1c when reads see a transaction
half done) with the transactions that form it.

    splay run --maelstrom txn-list-append --app examples/maelstrom/broken_txn_node.py -n 3 \\
              --rate 60 --keys 2
"""
from splay.maelstrom import Node, RPCError

node = Node()
SERVICE = "lin-kv"


def read(key):
    try:
        return node.rpc(SERVICE, {"type": "read", "key": key}, timeout=1.0)["value"]
    except RPCError as e:
        if e.code == 20:                # key-does-not-exist: the empty list
            return []
        raise


def append(key, value):
    while True:                         # compare-and-set until no other append came between
        old = read(key)
        try:
            node.rpc(SERVICE, {"type": "cas", "key": key, "from": old, "to": old + [value],
                               "create_if_not_exists": True}, timeout=1.0)
            return
        except RPCError as e:
            if e.code not in (20, 22):
                raise


@node.handler("txn")
def txn(message):
    done = []
    try:
        for f, key, value in message["body"]["txn"]:
            if f == "r":
                done.append(["r", key, read(key)])
            else:
                append(key, value)
                done.append(["append", key, value])
    except (TimeoutError, RPCError):
        return                          # the client times out: an unknown outcome
    node.reply(message, {"type": "txn_ok", "txn": done})

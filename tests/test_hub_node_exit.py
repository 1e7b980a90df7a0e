"""``Hub.request_exit(node)``: one node of a many-node process ends (``events.exit()`` in an
``--in-process`` or ``--sim`` node) -- its threads and only its threads (unwound newest first,
as always), found through the node's own list of live threads (walking every thread of the process made the end
of 100,000 simulated Chord nodes quadratic: an hour of stopping after the ring had formed)."""
import functools

from splay import events
from splayc import hub, rpcstats


class Node:
    def __init__(self, name):
        self.name = name


def test_a_node_that_exits_ends_all_its_threads_and_no_other_node_s():
    nodes = [Node(i) for i in range(3)]
    ended = []

    def node_main(i):
        for k in range(3):
            events.thread(functools.partial(_sleep_then_note, ended, (i, k)))   # inherits the node
        events.thread(lambda: None)                # one that is already gone at the exit
        events.sleep(100)

    def main():
        for i, n in enumerate(nodes):
            hub.spawn_in_node(n, node_main, i)
        events.sleep(1)
        hub.hub().request_exit(nodes[1])
        events.sleep(0)
        seen.update(ended=list(ended), alive=sorted(n.name for n in _nodes_with_threads()))
        events.exit()

    seen = {}
    events.run(main)
    assert seen == {"ended": [(1, 2), (1, 1), (1, 0)], "alive": [0, 2]}


def test_a_thread_spawned_for_another_node_belongs_to_that_node():
    a, b = Node("a"), Node("b")
    ended = []

    def in_a():
        hub.spawn_in_node(b, _sleep_then_note, ended, "made by a, of b")   # from a's list to b's
        events.thread(functools.partial(_sleep_then_note, ended, "of a"))
        events.sleep(100)

    def main():
        hub.spawn_in_node(a, in_a)
        hub.spawn_in_node(None, _sleep_then_note, ended, "of no node")      # not on any node's list
        events.sleep(1)
        seen["a"] = [t.node.name for t in _threads_of(a)]
        seen["b"] = [t.node.name for t in _threads_of(b)]
        hub.hub().request_exit(b)
        events.sleep(0)
        seen["after b"] = list(ended)
        hub.hub().request_exit(a)
        events.sleep(0)
        seen["after a"] = list(ended)
        seen["left"] = _nodes_with_threads()
        events.exit()

    seen = {}
    events.run(main)
    assert seen == {"a": ["a", "a"], "b": ["b"], "after b": ["made by a, of b"],
                    "after a": ["made by a, of b", "of a"], "left": []}


def test_threads_that_end_leave_their_node_s_list():
    n = Node("n")

    def main():
        for _ in range(1000):
            hub.spawn_in_node(n, lambda: None)
        seen["before"] = len(_threads_of(n))
        events.sleep(0.01)
        seen["after"] = len(_threads_of(n))
        events.exit()

    seen = {}
    events.run(main)
    assert seen == {"before": 1000, "after": 0}


def _sleep_then_note(ended, tag):
    try:
        events.sleep(100)
    finally:
        ended.append(tag)


def _threads_of(node):
    return hub.hub().threads_of(node)


def _nodes_with_threads():
    return [n for n in rpcstats.threads_by_node(hub.hub()) if n is not None]

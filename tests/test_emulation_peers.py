"""A large topology applied to every node costs O(N): one shared peer table, links made on use.

``splay.emulation.peers`` maps positions to addresses for all the nodes of a process at once,
and an ``Emulation`` makes the Links of a peer when its node first talks to that peer
(``NetPolicy.link_pair``), so 100,000 nodes of a uniform topology hold no per-peer state until
they talk.
"""
import pytest

from splay import events, socket
from splay.emulation import LinkModel, apply, apply_job
from splay.emulation.apply import PeerLinks, local_peers
from splay.emulation.peers import ConsecutivePeers, PeerTable, peer_table
from splay.job import Job
from splay.sim import network
from splayc import hub


class Node:
    """A node object of its own (an ``--in-process`` node holds its net_policy the same way)."""
    net_policy = None


def test_consecutive_peers_continue_on_the_next_address_with_the_same_ports():
    table = ConsecutivePeers("127.0.0.1", 65530, 14)
    addresses = [table.address(i) for i in range(14)]
    assert addresses[5:8] == [("127.0.0.1", 65535), ("127.0.0.2", 65530), ("127.0.0.2", 65531)]
    assert addresses[-1] == ("127.0.0.3", 65531)
    assert [table.position(a) for a in addresses] == list(range(14))
    for outside in [("127.0.0.3", 65532), ("127.0.0.1", 65529), ("10.0.0.1", 65530),
                    ("127.0.0.0", 65535), ("example.org", 65530), ("::1", 65530),
                    ("127.0.0.1", "65530")]:
        assert table.position(outside) is None, outside
    with pytest.raises(IndexError, match="not one of the 14 nodes"):
        table.address(14)
    with pytest.raises(ValueError, match="between 1 and 65535"):
        ConsecutivePeers("127.0.0.1", 0, 3)


def test_first_ip_is_the_address_of_node_0_seen_from_any_node():
    table = ConsecutivePeers("127.0.0.1", 65530, 14)
    for position in range(14):
        assert ConsecutivePeers.first_ip(table.address(position), position, 65530) == "127.0.0.1"
    # local_peers (a node's view of splay run's layout) finds the same table from any node.
    job = Job(me=table.address(13), position=13, nodes=[])
    assert local_peers(job, 14, first_port=65530).address(0) == ("127.0.0.1", 65530)


def test_a_peer_table_is_built_once_for_the_same_tuple_and_afresh_for_a_list():
    nodes = tuple([("127.0.0.1", 20000 + i) for i in range(5)] + [{"ip": "10.0.0.1", "port": 1}])
    table = peer_table(nodes)
    assert isinstance(table, PeerTable) and peer_table(nodes) is table and len(table) == 6
    assert table.position(("10.0.0.1", 1)) == 5 and table.position(("10.0.0.1", 2)) is None
    assert peer_table(table) is table
    growing = list(nodes)
    assert len(peer_table(growing)) == 6
    growing.append(("10.0.0.2", 1))                 # a list may change: never a stale table
    assert peer_table(growing).position(("10.0.0.2", 1)) == 6


def test_100000_nodes_of_a_uniform_topology_share_one_table_and_hold_no_link(tmp_path):
    model_file = tmp_path / "uniform.model"
    model_file.write_text("uniform delay_ms=20 kbps=1000 loss=0.1\n")
    n, first = 100_000, 20_000
    settings = {"topology": str(model_file), "topology_nodes": n, "topology_first_port": first}
    table = ConsecutivePeers("127.0.0.1", first, n)
    emulations = []
    for position in range(0, n, 4):            # 25,000 nodes, past the first address too
        ip, port = table.address(position)
        job = Job(me=(ip, port), position=position, nodes=(), settings=settings)
        emulations.append(apply_job(job, node=Node()))
    assert len({id(e.peers) for e in emulations}) == 1          # one table for the process
    assert len({id(e.model) for e in emulations}) == 1          # one model
    assert all(len(e.links) == 0 and e.policy.links == {} for e in emulations)
    assert len(emulations[0].model._cache) == 0                 # no pair read from the model yet
    last = emulations[-1]
    assert last.peers.address(last.me)[0] == "127.0.0.3"         # 45,536 ports an address
    out, back = last.links[3]                                   # made when first used
    assert (out.delay, out.loss) == (0.02, pytest.approx(0.1)) and back.delay == 0.02
    assert len(last.links) == 1 and list(last.policy.links) == [("127.0.0.1", 20003)]
    with pytest.raises(KeyError, match="not a peer of node"):
        last.links[n]


def test_a_node_holds_the_links_of_the_peers_it_talks_to():
    model = LinkModel.uniform(10, nodes=50)
    nodes = [("127.0.0.1", 30000 + i) for i in range(50)]
    node = Node()
    emu = apply(model, 0, nodes, node=node)
    assert isinstance(emu.links, PeerLinks) and len(emu.links) == 0
    took = {}

    def body():
        receiver = socket.udp()
        assert receiver.setsockname(*nodes[7]) is True, receiver.error
        sender = socket.udp()
        start = events.time()
        sender.sendto(b"x", *nodes[7])
        assert receiver.receive() == b"x"
        took["delay"] = events.time() - start
        sender.sendto(b"y", "127.0.0.1", 29999)      # not a job node: no link made
        sender.close(), receiver.close()

    with network.simulated(seed=1):
        events.run(lambda: hub.spawn_in_node(node, body).join())
    assert took["delay"] == pytest.approx(0.01)
    assert sorted(emu.links) == [7] and list(node.net_policy.links) == [nodes[7]]
    cut = emu.cut([0], [7])                          # a cut reaches the links made so far
    assert emu.links[7][0].cut
    emu.heal(cut)
    assert not emu.links[7][0].cut
    emu.remove()
    assert node.net_policy.links == {} and node.net_policy.link_source is None


def test_a_node_past_its_address_ports_without_a_first_port_is_a_clear_error():
    job = Job(me=("127.0.0.2", 20003), position=50_000, nodes=())
    with pytest.raises(ValueError, match="topology_first_port"):
        local_peers(job, 60_000)

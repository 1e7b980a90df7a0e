"""``restricted_socket``'s ``udp_drop_ratio`` in a simulation: the drops come from the run's seed.

Each node sends numbered datagrams to the next one through a socket restricted with
``udp_drop_ratio`` 0.5; the receiver logs which numbers arrived. The same seed gives the same
log byte for byte; another seed drops other datagrams.
"""
import re
import textwrap

from splay.sim import seeding

from support_sim import splay_run

DROPPING = """
    from splay import events, restricted_socket, socket
    from splay.base import job

    SENT = 40

    def main():
        restricted_socket.init({"udp_drop_ratio": 0.5})
        u = socket.udp()
        assert u.setsockname(job.me.ip, job.me.port) is True, u.error
        u.settimeout(5)
        events.sleep(1)                          # every node is bound before anyone sends
        peer = job.nodes()[(job.position + 1) % len(job.nodes())]
        for i in range(SENT):
            u.sendto(b"%d" % i, peer.ip, peer.port)
        got = []
        while True:
            data = u.receive()
            if data is None:
                break
            got.append(int(data))
        print("received", len(got), "of", SENT, ":", *got)
        u.close()
        events.exit()

    events.run(main)
"""


def _received(log):
    return {node: [int(x) for x in rest.split()]
            for node, rest in re.findall(r"\[node (\d+)\] received \d+ of 40 : ([\d ]*)", log)}


def test_the_udp_drop_ratio_draws_repeat_with_the_seed(tmp_path):
    app = tmp_path / "dropping.py"
    app.write_text(textwrap.dedent(DROPPING))
    args = ["-n", "4", "--seed", "3"]
    rc1, first, err1 = splay_run(tmp_path, app, *args, log="first.log")
    rc2, second, err2 = splay_run(tmp_path, app, *args, log="second.log")
    assert rc1 == rc2 == 0, (err1, err2)
    received = _received(first)
    assert sorted(received) == ["0", "1", "2", "3"]
    assert all(5 <= len(got) <= 35 for got in received.values()), received   # about half dropped
    assert len({tuple(got) for got in received.values()}) == 4          # each node its own draws
    assert first.replace("first.log", "second.log") == second
    rc3, other, err3 = splay_run(tmp_path, app, "-n", "4", "--seed", "4", log="other.log")
    assert rc3 == 0, err3
    assert _received(other) != received


def test_the_drop_seed_is_apart_from_the_nodes_random_stream():
    seeding.set_run_seed(3)
    try:
        assert seeding.drop_seed(0) == seeding.drop_seed(0) != seeding.drop_seed(1)
        assert seeding.drop_seed(0) != seeding.node_seed(3, 0)
        assert seeding.drop_seed() is None          # a process of many nodes: no position of its own
    finally:
        seeding.set_run_seed(None)
    assert seeding.drop_seed(0) is None             # unseeded run: OS entropy, as before

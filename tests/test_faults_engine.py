"""The fault engine on a fake clock, the node clock, the slow duty cycle, frozen in-process nodes
and the datagram faults of a link."""
import pytest

from splay import events
from splay.emulation import LinkModel, apply
from splay.faults import parse_faults
from splay.faults.clock import NodeClock
from splay.faults.engine import FaultEngine
from splay.faults.inside import Inside
from splay.faults import slow
from splayc import hub
from splayc.shaping import Link


class Recorder:
    """A ``control`` that records what the engine asks."""

    def __init__(self):
        self.calls = []

    def freeze(self, i):
        self.calls.append(("freeze", i))

    def thaw(self, i):
        self.calls.append(("thaw", i))

    def kill(self, i, comes_back=False):
        self.calls.append(("kill", i))

    def restart(self, i):
        self.calls.append(("restart", i))


def _engine(text, count, **kw):
    now = [0.0]
    reports = []
    engine = FaultEngine(parse_faults(text), count, 0.0, report=lambda a, at: reports.append(
        (a.describe(), at)), clock=lambda: now[0], **kw)
    return engine, now, reports


def test_overlapping_pauses_keep_a_node_frozen_until_the_last_ends():
    control = Recorder()
    engine, now, reports = _engine("pause 1 from 1s to 3s\npause 0-1 from 2s to 4s\n", 2,
                                   control=control)
    assert engine.step() == 1.0 and control.calls == []
    now[0] = 1.0
    assert engine.step() == 2.0 and control.calls == [("freeze", 1)]
    now[0] = 3.0
    engine.step()
    assert control.calls == [("freeze", 1), ("freeze", 0)]      # node 1 still held by the 2nd
    now[0] = 4.0
    assert engine.step() is None and engine.finished
    assert control.calls[-2:] == [("thaw", 0), ("thaw", 1)]
    assert [text for text, _ in reports] == [
        "pause 1 from 1s to 3s: begins", "pause 0-1 from 2s to 4s: begins",
        "pause 1 from 1s to 3s: ends", "pause 0-1 from 2s to 4s: ends"]


def test_kill_for_a_while_restarts_and_a_killed_node_holds_the_run():
    control = Recorder()
    engine, now, _ = _engine("kill 0 at 1s for 2s\npause 0 from 0s to 10s\n", 1, control=control)
    engine.step()
    assert control.calls == [("freeze", 0)]
    now[0] = 1.0
    engine.step()
    assert control.calls[-1] == ("kill", 0) and engine.awaits_restart()
    now[0] = 2.0
    engine.step()
    assert control.calls[-1] == ("kill", 0)                      # a dead process is not stopped
    now[0] = 3.0
    engine.step()
    # the new process is still under the pause: frozen again at once
    assert control.calls[-2:] == [("restart", 0), ("freeze", 0)] and not engine.awaits_restart()


def test_a_slow_node_runs_a_quarter_of_each_period():
    control = Recorder()
    engine, now, _ = _engine("slow 0 x4 from 1s to 2s\n", 1, control=control)
    now[0] = 1.0
    assert engine.step() == pytest.approx(1.0 + slow.PERIOD / 4)
    assert control.calls == []                                   # running part first
    now[0] = 1.0 + slow.PERIOD / 4 + 1e-6
    assert engine.step() == pytest.approx(1.0 + slow.PERIOD)
    assert control.calls == [("freeze", 0)]
    now[0] = 1.0 + slow.PERIOD + 1e-6
    engine.step()
    assert control.calls[-1] == ("thaw", 0)
    assert [slow.running(4, 0, t / 100) for t in range(0, 10)] == [True] * 3 + [False] * 7


def test_clocks_and_links_inside():
    model = LinkModel.uniform(0, nodes=3)
    clocks = {0: NodeClock(), 1: NodeClock()}
    class Node:                     # the emulation's own node: the process keeps no socket policy
        net_policy = None
    emulation = apply(model, 2, [("127.0.0.1", 40000 + i) for i in range(3)], node=Node())
    inside = Inside(model, lambda i: emulation if i == 2 else None, clocks.get)
    engine, now, _ = _engine("skew 0 -2s from 1s to 2s\ndrift 1 2 from 0s to 1s\n"
                             "partition 0|1|2 from 0s to 1s\ndelay 2 50ms from 0s\n"
                             "loss 2 50% from 0s\nloss 2 50% from 0s\nreorder 2 10% from 0s\n", 3,
                             inside=inside)
    engine.step()
    assert not model.reachable(0, 1) and not model.reachable(1, 2)
    assert emulation.links[0][0].cut                              # the cut holds over the faults
    now[0] = 1.0
    engine.step()
    assert model.reachable(0, 1) and model.partitions == ()
    out, back = emulation.links[0]
    assert (out.delay, out.loss, out.reorder) == (0.05, 0.75, pytest.approx(0.1))
    assert not back.active                                        # what it receives is untouched
    assert clocks[0].seen(10.0) == 8.0
    assert clocks[1].rate == 1.0 and clocks[1].offset == pytest.approx(1.0)   # 1 s at rate 2
    emulation.remove()


def test_a_frozen_node_runs_nothing_and_resumes_with_its_state():
    class Node:
        pass
    a, b = Node(), Node()
    counts = {a: 0, b: 0}
    seen = {}

    def worker(node):
        while True:
            counts[node] += 1
            events.sleep(0.01)

    def control():
        events.sleep(0.1)
        hub.freeze_node(a)
        assert hub.frozen(a)
        frozen_at = counts[a]
        hub.spawn_in_node(a, lambda: counts.__setitem__(a, counts[a] + 1000))   # new: held too
        events.sleep(0.3)
        seen["while frozen"] = counts[a] - frozen_at
        seen["other node"] = counts[b]
        hub.thaw_node(a)
        events.sleep(0.1)
        seen["after"] = counts[a] - frozen_at
        hub.freeze_node(a)                   # killed while frozen: it still ends
        events.sleep(0.05)
        hub.hub().request_exit(a)
        hub.hub().request_exit(b)
        hub.thaw_node(a)

    hub.spawn_in_node(a, worker, a)
    hub.spawn_in_node(b, worker, b)
    events.run(control)
    assert seen["while frozen"] == 0 and seen["other node"] > 10
    assert seen["after"] >= 1000 + 3


def test_link_datagram_faults_are_probabilities():
    link = Link()
    link.set(0.0, float("inf"), 0.0)
    assert not link.active
    link.set_faults(duplicate=0.5)
    assert link.active and link.duplicate == 0.5 and "duplicate 0.5" in repr(link)
    for bad in ((1.5, 0.0), (0.0, -0.1)):
        with pytest.raises(ValueError, match="probabilities in"):
            link.set_faults(*bad)
    link.set_faults()
    assert not link.active

"""Partitions on a schedule: the spec parser, the schedule, and ``splay run --partition``."""
import os
import pathlib
import subprocess
import sys

import pytest

from splay.emulation import LinkModel, PartitionSchedule, PartitionSpec, parse_partition

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, a, b, start, end", [
    ("0,1|2,3@5-10", (0, 1), (2, 3), 5.0, 10.0),
    ("0-4|5-9@30", (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), 30.0, None),
    ("4@2.5-8", (4,), None, 2.5, 8.0),
    (" 1 , 3-4 | 0 @ 0 - 1.5 ", (1, 3, 4), (0,), 0.0, 1.5),
    ("2|3@1-", (2,), (3,), 1.0, None),
])
def test_partition_specs_parse(text, a, b, start, end):
    spec = parse_partition(text)
    assert (spec.group_a, spec.group_b, spec.start, spec.end) == (a, b, start, end)
    assert PartitionSpec.from_dict(spec.as_dict()).as_dict() == spec.as_dict()


@pytest.mark.parametrize("text, message", [
    ("0,1|2,3", "expected GROUP[|GROUP]@START[-END]"),
    ("@5", "expected GROUP"),
    ("a|2@5", "'a' is not a node position"),
    ("3-1|5@0", "bad range '3-1'"),
    ("0,1|1,2@0", "nodes [1] are on both sides"),
    ("0|1@x", "start 'x' is not a number"),
    ("0|1@5-3", "must start at 0 s or later and end after it starts"),
    ("0|1@-2-3", "is not a number"),
    ("0|1@1-inf", "not a finite number"),
])
def test_bad_partition_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError) as error:
        parse_partition(text)
    assert message in str(error.value) and repr(text) in str(error.value)


def test_the_schedule_cuts_and_heals_on_its_clock():
    model = LinkModel.uniform(0, nodes=4)
    now = [100.0]
    cuts = []

    def cut(a, b):
        partition = model.cut(a, b)
        cuts.append(("cut", a, b))
        return partition

    def heal(partition):
        model.heal(partition)
        cuts.append(("heal",))
    schedule = PartitionSchedule([parse_partition("0,1|2,3@1-2"), parse_partition("3@1.5")],
                                 epoch=100.0, cut=cut, heal=heal, clock=lambda: now[0])
    assert schedule.step() == 1.0 and cuts == []
    now[0] = 101.0
    assert schedule.step() == 1.5
    assert not model.reachable(0, 2) and model.reachable(0, 1)
    now[0] = 101.7
    assert schedule.step() == 2.0
    assert not model.reachable(3, 2)
    now[0] = 102.0
    assert schedule.step() is None
    assert model.reachable(0, 2) and not model.reachable(0, 3)
    assert cuts == [("cut", [0, 1], [2, 3]), ("cut", [3], None), ("heal",)]


def test_a_schedule_started_late_applies_what_is_due_at_once():
    model = LinkModel.uniform(0, nodes=2)
    schedule = PartitionSchedule([parse_partition("0|1@1-100")], epoch=0.0,
                                 cut=model.cut, heal=model.heal, clock=lambda: 50.0)
    schedule.start()
    assert not model.reachable(0, 1)
    schedule.stop()


# Node 0 tries a connection to node 1 and to node 2 every 0.2 s and prints what worked, with the
# time since the run's start (the partition's epoch).
REACH_APP = """
import time
from splay.base import *

def main():
    srv = socket.bind(job.me)
    def serve():
        while True:
            c = srv.accept()
            if c is None:
                break
            c.close()
    events.thread(serve)
    if job.position == 0:
        epoch = job.settings["partition_epoch"]
        events.sleep(0.6)                       # the others are listening by then
        while time.time() - epoch < 4.0:
            reached = []
            for peer in (1, 2):
                s = socket.connect(job.nodes()[peer])
                reached.append(s is not None)
                if s is not None:
                    s.close()
            print("reach %.3f %d %d" % (time.time() - epoch, reached[0], reached[1]), flush=True)
            events.sleep(0.2)
    else:
        events.sleep(4.5)
    events.exit()

events.run(main)
"""


@pytest.mark.parametrize("in_process", [False, True])
def test_splay_run_partition_cuts_and_heals_on_schedule(tmp_path, in_process):
    from splay.deploy.testbed import free_port_range
    (tmp_path / "app.py").write_text(REACH_APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    args = ["run", "app.py", "-n", "3", "--first-port", str(free_port_range(3)),
            "--partition", "0,1|2@1.5-3"]
    if in_process:
        args.append("--in-process")
    out = subprocess.run([sys.executable, "-m", "splay.cli", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split("reach ")[1].split() for line in out.stdout.splitlines() if "reach " in line]
    seen = [(float(t), a == "1", b == "1") for t, a, b in rows]
    assert all(to_1 for _, to_1, _ in seen)                        # inside a group: never cut
    assert all(to_2 for t, _, to_2 in seen if t < 1.3 or t > 3.2)   # before and after the cut
    assert not any(to_2 for t, _, to_2 in seen if 1.6 < t < 2.9)   # during it
    assert any(1.6 < t < 2.9 for t, _, _ in seen) and any(t > 3.2 for t, _, _ in seen)


@pytest.mark.parametrize("spec, message", [
    ("0|5@1-2", "names node 5, but there are 3 nodes"),
    ("0-2@1", "leaves no node on the other side"),
    ("0|1", "expected GROUP[|GROUP]@START[-END]"),
])
def test_splay_run_refuses_a_bad_partition(tmp_path, spec, message):
    (tmp_path / "app.py").write_text("print('ran')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "-n", "3",
                          "--partition", spec], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr and "ran" not in out.stdout

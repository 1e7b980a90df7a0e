"""``splay run --faults FILE``: each fault's effect seen by the nodes, in both modes.

Two runs per mode. The first: a paused RPC server answers nothing and resumes with its state, a
partition cuts two nodes, a skewed and a drifting node read their clock off by the fault while
``events.sleep(1)`` lasts 1 s, a killed node is restarted. The second: datagrams delayed, lost,
duplicated (each arrives twice) and reordered, and a slowed node doing less work per second.
Every applied fault is a line of the log and a ``fault`` event of metrics.json.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Times are real seconds since the run's start (the timeline's epoch). Each node ends by itself.
SCENARIO_APP = """
import time
from splay.base import *
from splay import rpc
from splay.faults.clock import real_time

EPOCH = job.settings["faults"]["epoch"]

def since():
    return real_time() - EPOCH

ticks = 0

def tick():
    global ticks
    ticks += 1
    return ticks

def main():
    me = job.position
    nodes = job.nodes()
    if me == 0:                                   # paused from 2.5s to 3.5s
        rpc.server(job.me)
        events.sleep(max(0.5, 5.5 - since()))
    elif me == 1:                                 # calls node 0; reaches node 2 (partitioned)
        events.sleep(0.4)
        while since() < 4.7:
            answer = rpc.call(nodes[0], "tick", 0.25)
            s = socket.connect(nodes[2])
            if s is not None:
                s.close()
            print("call %.3f %s reach %d" % (since(), answer, s is not None), flush=True)
            events.sleep(0.1)
    elif me == 2:
        srv = socket.bind(job.me)
        def serve():
            while True:
                c = srv.accept()
                if c is None:
                    break
                c.close()
        events.thread(serve)
        events.sleep(max(0.5, 5.1 - since()))
    elif me in (3, 4):                            # 3: skew +500ms; 4: drift 1.5 from 2.5s to 3.5s
        events.sleep(max(0.0, 3.9 - since()))
        real = real_time()
        offsets = [misc.time() - real, events.time() - real, time.time() - real,
                   socket.gettime() - real]
        started = time.monotonic()
        events.sleep(1)
        print("clock %s slept %.3f" % (" ".join("%.3f" % o for o in offsets),
                                        time.monotonic() - started), flush=True)
    else:                                         # 5: killed at 2.5s, restarted at 3.5s
        print("start %.3f" % since(), flush=True)
        events.sleep(max(0.5, 5.0 - since()))
    events.exit()

events.run(main)
"""

# Late enough (2.5 s) that the nodes run before, even on a loaded machine.
SCENARIO_FAULTS = """\
pause 0 at 2.5s for 1s
partition 1|2 from 2.5s to 3.5s
skew 3 +500ms from 0s
drift 4 1.5 from 2.5s to 3.5s
kill 5 at 2.5s
restart 5 at 3.5s
"""

MESSAGES_APP = """
import time
from splay.base import *
from splay.faults.clock import real_time

COUNT = 60

def main():
    me = job.position
    nodes = job.nodes()
    if me < 4:                                    # senders: delay, loss, duplicate, reorder
        u = socket.udp()
        events.sleep(0.5)
        for k in range(COUNT):
            u.sendto("%d %d %.6f" % (me, k, real_time()), nodes[4])
            events.sleep(0.005)
        events.sleep(1.0)
    elif me == 4:                                 # receiver
        u = socket.udp()
        u.setsockname(job.me)
        u.settimeout(2.5)
        got = {0: [], 1: [], 2: [], 3: []}
        lag = []
        while True:
            r = u.receivefrom()
            if r is None:
                break
            sender, k, sent = r[0].decode().split()
            got[int(sender)].append(int(k))
            if sender == "0":
                lag.append(real_time() - float(sent))
        print("received %s" % " ".join(str(len(got[s])) for s in range(4)), flush=True)
        print("delay %.3f" % min(lag), flush=True)
        print("reordered %d" % (got[3] != sorted(got[3])), flush=True)
        print("twice %d" % all(got[2].count(k) == 2 for k in range(COUNT)), flush=True)
    else:                                         # 5: slowed x4; 6: not
        started, work, cpu = time.monotonic(), 0, time.process_time()
        while time.monotonic() - started < 2.0:
            for _ in range(2000):
                work += 1
            events.yield_()
        print("work %d cpu %.3f" % (work, (time.process_time() - cpu) / (time.monotonic() - started)),
              flush=True)
    events.exit()

events.run(main)
"""

MESSAGES_FAULTS = """\
delay 0 200ms from 0s
loss 1 50% from 0s
duplicate 2 100% from 0s
reorder 3 100% from 0s
slow 5 x4 from 0s
"""


# Each scenario in every mode: one process per node, every node in one process, two workers.
MODES = pytest.mark.parametrize("in_process", [False, True, "workers"],
                                ids=["processes", "in-process", "workers"])


def _run(tmp_path, app, faults, nodes, in_process):
    from splay.deploy.testbed import free_port_range
    (tmp_path / "app.py").write_text(app)
    (tmp_path / "faults.txt").write_text(faults)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    args = ["run", "app.py", "-n", str(nodes), "--first-port", str(free_port_range(nodes)),
            "--faults", "faults.txt", "--log", "run.log"]
    if in_process:
        args.append("--in-process")
    if in_process == "workers":
        args += ["--workers", "2"]
    out = subprocess.run([sys.executable, "-m", "splay.cli", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, (tmp_path / "run.log").read_text(), json.loads((tmp_path / "metrics.json").read_text())


def _lines(stdout, node, word):
    return [line.split(f"{word} ", 1)[1].split() for line in stdout.splitlines()
            if line.startswith(f"[node {node}] {word} ")]


@MODES
def test_pause_partition_skew_drift_kill_and_restart(tmp_path, in_process):
    stdout, log, data = _run(tmp_path, SCENARIO_APP, SCENARIO_FAULTS, 6, in_process)
    calls = [(float(t), answer, reach == "1") for t, answer, _, reach in _lines(stdout, 1, "call")]
    # paused: no answer while node 0 is stopped; then it answers with its state (no restart)
    assert all(a != "None" for t, a, _ in calls if t < 2.4), calls
    assert all(a == "None" for t, a, _ in calls if 2.8 < t < 3.25), calls
    before = [int(a) for t, a, _ in calls if t < 2.4]
    after = [int(a) for t, a, _ in calls if t > 4.1 and a != "None"]
    assert before and after and min(after) > max(before), calls
    # the partition between 1 and 2
    assert all(r for t, _, r in calls if t < 2.4 or t > 3.9), calls
    assert not any(r for t, _, r in calls if 2.65 < t < 3.35), calls
    # skew +500ms, and drift 1.5 for 1 s (+500 ms gained), in every clock the app reads
    for node in (3, 4):
        ((*offsets, _, slept),) = _lines(stdout, node, "clock")
        assert all(abs(float(o) - 0.5) < 0.06 for o in offsets), (node, offsets)
        assert 0.98 < float(slept) < 1.6, slept
    # killed at 2.5s, started afresh at 3.5s
    starts = [float(t) for (t,) in _lines(stdout, 5, "start")]
    assert len(starts) == 2 and starts[0] < 2.5 and 3.45 < starts[1] < 4.3, starts
    for text in ("pause 0 at 2.5s for 1s: begins", "pause 0 at 2.5s for 1s: ends",
                 "partition 1|2 from 2.5s to 3.5s: begins", "skew 3 +500ms from 0s: begins",
                 "kill 5 at 2.5s: begins", "restart 5 at 3.5s: begins"):
        assert re.search(rf"fault: {re.escape(text)} at \d+\.\d{{3}} \(scheduled", log), text
    faults = [e for e in data["events"] if e["kind"] == "fault"]
    assert [e["detail"] for e in faults].count("pause 0 at 2.5s for 1s: begins") == 1
    assert {e["node"] for e in faults if e["detail"].startswith("kill 5")} == {5}
    pause = next(e["t"] for e in faults if e["detail"] == "pause 0 at 2.5s for 1s: begins")
    assert 2.0 < pause < 4.5


@MODES
def test_message_faults_and_slow_nodes(tmp_path, in_process):
    stdout, log, _ = _run(tmp_path, MESSAGES_APP, MESSAGES_FAULTS, 7, in_process)
    ((*received,),) = _lines(stdout, 4, "received")
    delay, lost, twice, reordered = received
    assert int(delay) == 60 and int(reordered) == 60
    assert 10 <= int(lost) <= 50                                     # 50% of 60 lost
    assert int(twice) == 120                                         # each datagram twice
    assert _lines(stdout, 4, "twice") == [["1"]] and _lines(stdout, 4, "reordered") == [["1"]]
    assert float(_lines(stdout, 4, "delay")[0][0]) >= 0.195
    ((slow_work, _, slow_cpu),) = _lines(stdout, 5, "work")
    ((work, _, _),) = _lines(stdout, 6, "work")
    if in_process:
        assert int(slow_work) < 0.5 * int(work), (slow_work, work)   # frozen 3/4 of the time
    else:
        assert float(slow_cpu) < 0.4, slow_cpu                       # a quarter of a CPU at most
    assert "fault: slow 5 x4 from 0s: begins" in log


def test_a_bad_timeline_stops_the_run_before_it_starts(tmp_path):
    (tmp_path / "app.py").write_text("print('ran')\n")
    (tmp_path / "faults.txt").write_text("pause 1 at 1s for 1s\nskew 1 500ms from 0s\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    for args, message in ((["-n", "2"], "--faults: faults.txt:2:8: expected the skew with its sign"),
                          (["-n", "1"], "names node 1, but the run has 1 node(s)")):
        if args == ["-n", "1"]:
            (tmp_path / "faults.txt").write_text("pause 1 at 1s for 1s\n")
        out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", *args,
                              "--faults", "faults.txt"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr and "ran" not in out.stdout, out.stderr


def test_kills_in_the_file_are_refused_beside_a_churn_trace(tmp_path):
    (tmp_path / "app.py").write_text("print('ran')\n")
    (tmp_path / "trace.txt").write_text("0 5\n0 5\n")
    (tmp_path / "faults.txt").write_text("pause 0 at 1s for 1s\nkill 1 at 2s\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "--churn", "trace.txt",
                          "--faults", "faults.txt"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ran" not in out.stdout
    assert ("--faults: faults.txt:2:1: 'kill 1 at 2s': with --churn the trace starts and stops "
            "the nodes") in out.stderr

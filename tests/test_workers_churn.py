"""``splay run --in-process --workers K --churn TRACE``: the trace acts on the worker of each node.

The same trace is replayed in one process and over two workers, at the same time (on other
ports), and the two runs are compared: the same actions at the same scheduled times, and
``job.nodes()`` of a node of each worker listing the same nodes at the same points of the trace.
What the nodes saw is read from their own lines (wall-clock stamps) at instants well inside the
trace's steady stretches, so the load of the machine does not decide the outcome.
(``--faults`` over workers is checked by tests/test_faults_run.py, which runs its scenarios in
every mode.)
"""
import datetime
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time

import pytest

from splay.churn import Schedule
from test_churn_replay import CRASHES          # node 1 fails as it starts; the others wait
from splay.deploy.testbed import free_port_range
from splay.launch import options, workers

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 90        # seconds: only a hung run ever waits this long
LAG = 0.5            # a generous bound on how late an action may be issued (the load is not ours)

# "up POSITION PID BORN" when its module runs (BORN: new in every fresh namespace), then each
# change of job.nodes() as "view POSITION WALL PORTS", until the wall time of its first argument.
APP = """
    import os, sys, time
    import splay
    from splay import events

    job = splay.job
    print("up", job.position, os.getpid(), f"{time.time():.6f}")

    def main():
        last = None
        while time.time() < float(sys.argv[1]):
            view = sorted(n.port for n in job.nodes())
            if view != last:
                print("view", job.position, f"{time.time():.6f}", ",".join(map(str, view)))
                last = view
            events.sleep(0.02)

    events.run(main)
"""

# Replayed twice as fast: on the replay clock nodes 0 and 3 are up from 0 to 3 (their down ends
# the run: no wall-clock end that a slow start on a loaded machine could overtake), node 1 from
# 0.1 to 0.6 and from 1.6 to 2.1, node 2 from 0.3 to 1.1.
TRACE = "0 6\n0.2 1.2 3.2 4.2\n0.6 2.2\n0 6\n"
# Replay instants in the middle of steady stretches, with the nodes up then.
PROBES = {0.45: {0, 1, 2, 3}, 0.85: {0, 2, 3}, 1.35: {0, 3}, 1.85: {0, 1, 3}, 2.5: {0, 3}}

ACTION = re.compile(r"\[splay\] churn: node (\d+) (up|down) at ([\d.]+) \(scheduled ([\d.]+)")


def start_run(tmp_path, name, *args, app=APP, trace=TRACE):
    """Start ``splay run`` of ``app`` under ``trace`` in ``tmp_path/name``; the Popen and its
    directory and first port."""
    where = tmp_path / name
    where.mkdir()
    (where / "app.py").write_text(textwrap.dedent(app))
    (where / "trace.txt").write_text(trace)
    first = free_port_range(8)
    cmd = [sys.executable, "-m", "splay.cli", "run", "app.py", "--churn", "trace.txt",
           "--churn-speed", "2", "--in-process", "--first-port", str(first), "--log", "run.log",
           "--quiet", *args, "--", f"{time.time() + 3600:.3f}"]
    proc = subprocess.Popen(cmd, cwd=where, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, where, first


def finish(proc):
    try:
        out, err = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    return proc.returncode, out, err


def log_text(where):
    return [line.split(" ", 2)[2] for line in (where / "run.log").read_text().splitlines()]


def replay_t0(lines, where):
    """The wall time of t = 0: the first action's wall stamp minus its replay time."""
    for raw in (where / "run.log").read_text().splitlines():
        m = ACTION.search(raw)
        if m:
            stamp = datetime.datetime.strptime(raw[:26], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            return stamp - float(m.group(3))
    raise AssertionError(lines)


def views(lines, position, first):
    """``[(wall, {nodes}), ...]``: what ``job.nodes()`` of node ``position`` listed, and when."""
    out = []
    for text in lines:
        m = re.match(rf"^\[node {position}\] view {position} ([\d.]+) ?(.*)$", text)
        if m:
            out.append((float(m.group(1)), {int(p) - first for p in m.group(2).split(",") if p}))
    return out


def in_force(seen, wall):
    current = None
    for t, nodes in seen:
        if t <= wall:
            current = nodes
    return current


def test_a_churn_trace_over_two_workers_acts_as_in_one_process(tmp_path):
    runs = {mode: start_run(tmp_path, mode, *args)
            for mode, args in (("one", []), ("workers", ["--workers", "2"]))}
    results = {}
    for mode, (proc, where, first) in runs.items():
        rc, _, err = finish(proc)
        assert rc == 0, err
        lines = log_text(where)
        acts = [(int(m.group(1)), m.group(2), float(m.group(3)), float(m.group(4)))
                for m in map(ACTION.search, lines) if m]
        results[mode] = lines, acts, replay_t0(lines, where), first
    one, two = results["one"], results["workers"]
    # The same actions at the same scheduled times, each on time.
    expected = sorted((round(t / 2, 3), node, change) for t, node, change in Schedule.from_intervals(
        [[(0, 6)], [(0.2, 1.2), (3.2, 4.2)], [(0.6, 2.2)], [(0, 6)]]).events())
    for lines, acts, _, _ in (one, two):
        assert sorted((s, n, c) for n, c, _, s in acts) == expected
        assert all(0 <= at - scheduled <= LAG for _, _, at, scheduled in acts), acts
        assert "churn: 5 start(s) and 5 stop(s) of 4 node(s)" in "\n".join(lines)
    assert "(in 2 worker processes)" in "\n".join(two[0])
    # Over workers: nodes 0 and 2 in one process, 1 and 3 in the other; node 1 came back afresh.
    ups = {}
    for text in two[0]:
        m = re.match(r"^\[node (\d+)\] up \d+ (\d+) ([\d.]+)$", text)
        if m:
            ups.setdefault(int(m.group(1)), []).append((int(m.group(2)), m.group(3)))
    assert ups[0][0][0] == ups[2][0][0] != ups[1][0][0] == ups[3][0][0]
    assert len(ups[1]) == 2 and ups[1][0][1] != ups[1][1][1]
    # job.nodes() of node 0 (worker 0) and node 3 (worker 1) follows the trace as in one process.
    for lines, _, t0, first in (one, two):
        for position in (0, 3):
            seen = views(lines, position, first)
            got = {probe: in_force(seen, t0 + probe) for probe in PROBES}
            assert got == PROBES, (position, got, seen)


def test_a_node_that_fails_under_churn_is_reported_and_comes_back_at_its_next_up(tmp_path):
    proc, where, _ = start_run(tmp_path, "crash", "--workers", "2", app=CRASHES,
                               trace="0 3.2\n0.2 1.2 1.8 3\n")
    rc, _, err = finish(proc)
    text = "\n".join(log_text(where))
    assert rc == 1
    assert text.count("[node 1] failed: its module raised RuntimeError") == 2, text
    assert "2 failed (node 1, 1)" in text
    assert "lost" not in text                          # the worker itself did not die
    assert "schedule accuracy: 4 action(s) (3 start(s), 1 stop(s))" in text


def test_each_worker_replays_only_its_own_nodes():
    schedule = Schedule([[0], [0.2, 1.2], [0.6], [0, 2]])
    share = workers.share_of(schedule, [1, 3])
    assert share.nodes == 4
    assert [(t, i, c) for t, i, c in share.events()] == [(0, 3, "up"), (0.2, 1, "up"),
                                                        (1.2, 1, "down"), (2, 3, "down")]


def test_faults_are_refused_when_the_nodes_spill_over_several_addresses(tmp_path):
    (tmp_path / "x.faults").write_text("pause 0 at 1s for 1s\n")
    low = workers.ephemeral_low()
    with pytest.raises(options.UsageError, match="--faults number the nodes on one address"):
        options.parse([str(ROOT / "tests" / "workers_app.py"), "-n", "4", "--in-process", "--workers",
                       "2", "--first-port", str(low - 2), "--faults", str(tmp_path / "x.faults")])


def test_a_worker_reads_its_start_from_the_launcher_or_gives_up_at_end_of_file():
    from splay.launch.workers_host import read_start
    for written, expected in ((b"go 1500000000\n", 1.5), (b"", None)):
        r, w = os.pipe()
        os.write(w, written)
        os.close(w)
        assert read_start(r) == expected
        os.close(r)
    r, w = os.pipe()
    os.write(w, b"hello\n")
    os.close(w)
    with pytest.raises(ValueError, match="expected 'go NANOSECONDS' from the launcher, got b'hello"):
        read_start(r)
    os.close(r)

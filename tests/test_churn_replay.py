"""``splay run APP.py --churn TRACE``: real launcher, real node processes, real churn.

Each test runs ``python -m splay.cli run ...`` on a small application and reads the merged log.
Timing: the launcher notes each action with the time it *issued* it and the time the trace
scheduled it, on its own monotonic clock; those are checked against the issue's 100 ms bound. What
the nodes themselves saw (their start and stop, printed with wall-clock stamps) is checked only
for order (never before the schedule) and liveness (generous bounds), since a Python interpreter
starting on a loaded 2-core machine takes an unpredictable time.
"""
import datetime
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from splay.churn import Schedule
from splay.launch import options
from splay.launch.churn_replay import Accuracy, Timeline

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 60       # seconds: only a hung run ever waits this long
BOUND = 0.100       # the bound on start/stop times vs the schedule, in seconds
FIRST_PORT = 24000

# Prints "up POSITION PID BORN" when its module runs (BORN: a module-level stamp, new in every
# fresh namespace), then every change of job.nodes() as "view POSITION WALL PORTS", and
# "down POSITION WALL" when it ends -- stopped (SIGTERM in a process, its threads killed in one
# process) or at the wall-clock time given as its first argument.
APP = """
    import os, sys, time
    import splay
    from splay import events

    BORN = time.time()
    job = splay.job
    print("up", job.position, os.getpid(), f"{BORN:.6f}")

    def main():
        try:
            last = None
            while time.time() < float(sys.argv[1]):
                view = sorted(n.port for n in job.nodes())
                if view != last:
                    print("view", job.position, f"{time.time():.6f}", ",".join(map(str, view)))
                    last = view
                events.sleep(0.05)
        finally:
            print("down", job.position, f"{time.time():.6f}")

    events.run(main)
"""

# Node 1 fails as soon as it starts; the others wait to be stopped.
CRASHES = """
    import splay
    from splay import events
    if splay.job.position == 1:
        raise RuntimeError("boom at start")
    def main():
        while True:
            events.sleep(1)
    events.run(main)
"""

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) (.*)$")
ACTION = re.compile(r"^\[splay\] churn: node (\d+) (up|down) at ([\d.]+) \(scheduled ([\d.]+)"
                    r"(?:, trace time ([\d.]+))?\)(.*)$")


def fifty_node_trace():
    """50 nodes over 6.25 s, with changes every 0.25 s: every node joins (5 at a time over the
    first 2.25 s), 18 leave for good, 12 leave and come back (one of them for good), 16 leave
    together at the end, 4 stay up to the end."""
    times = []
    for i in range(50):
        up = 0.25 * (i // 5)
        if i in (0, 1, 2, 49):
            times.append([up])                                   # stays up
        elif i <= 20:
            times.append([up, up + 1.0 + 0.25 * (i % 3)])        # leaves for good
        elif i <= 32:
            back = 4.0 + 0.25 * ((i - 21) // 3)                  # 4.0 ... 4.75
            times.append([up, up + 0.75, back] + ([] if i == 21 else [6.0]))
        else:
            times.append([up, 6.25])                             # leaves with the others
    return Schedule(times)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(tmp_path, *args, app=APP):
    """Run ``splay run`` on ``app``; returns (completed process, parsed log)."""
    write(tmp_path, "app.py", app)
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "splay.cli", "run", "app.py", "--log", str(log), "--quiet",
           "--first-port", str(FIRST_PORT), *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS)
    return done, parse_log(log) if log.exists() else []


def parse_log(path):
    """``[(wall_time, text), ...]`` of the merged log."""
    lines = []
    for raw in path.read_text().splitlines():
        m = LOG_LINE.match(raw)
        assert m, f"log line without a timestamp: {raw!r}"
        stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        lines.append((stamp, m.group(2)))
    return lines


def replay_start(log):
    """Wall time of the replay's t = 0 (the note written when the clock starts)."""
    starts = [t for t, text in log if text.startswith("[splay] churn: replaying") and "t = 0 now" in text]
    assert len(starts) == 1, log
    return starts[0]


def actions(log):
    """The launcher's churn notes: ``[(node, change, at, scheduled, trace_time, rest), ...]``."""
    out = []
    for _, text in log:
        m = ACTION.match(text)
        if m:
            trace_t = float(m.group(5)) if m.group(5) else float(m.group(4))
            out.append((int(m.group(1)), m.group(2), float(m.group(3)), float(m.group(4)), trace_t, m.group(6)))
    return out


def node_lines(log, word):
    """``{position: [fields after the position, ...]}`` of node lines ``word POSITION ...``."""
    out = {}
    for t, text in log:
        m = re.match(r"^\[node (\d+)\] " + word + r" (\d+) (.*)$", text)
        if m:
            assert m.group(1) == m.group(2)
            out.setdefault(int(m.group(1)), []).append(m.group(3).split())
    return out


def view_in_force(log, position, wall):
    """The last job.nodes() node ``position`` printed at or before ``wall``: a set of node indices."""
    current = None
    for t, text in log:
        m = re.match(rf"^\[node {position}\] view {position} ([\d.]+) ?(.*)$", text)
        if m and float(m.group(1)) <= wall:
            current = {int(p) - FIRST_PORT for p in m.group(2).split(",") if p}
    return current


def check_actions_follow_schedule(log, schedule, speed=1.0):
    """Every event of the schedule was acted on once, in order, within BOUND after its time."""
    done = actions(log)
    expected = [(node, change, round(t / speed, 3), t) for t, node, change in schedule.events()]
    assert [(a[0], a[1], a[3], a[4]) for a in done] == [(n, c, pytest.approx(s, abs=1e-3), pytest.approx(tt, abs=1e-3))
                                                        for n, c, s, tt in expected]
    lags = [at - scheduled for _, _, at, scheduled, _, _ in done]
    assert all(lag >= -0.001 for lag in lags), f"an action came before its time: {min(lags)}"
    assert max(lags) <= BOUND, f"lags behind the schedule: {sorted(lags)[-5:]}"
    return lags


def test_fifty_node_trace_is_replayed_on_schedule(tmp_path):
    schedule = fifty_node_trace()
    schedule.write(tmp_path / "trace.txt")
    end_wall = __import__("time").time() + 16.0     # when the nodes that stay up end by themselves
    done, log = run(tmp_path, "--churn", "trace.txt", "--grace", "2", "--", f"{end_wall:.3f}")
    assert done.returncode == 0, done.stderr
    t0 = replay_start(log)

    # The launcher's actions: each event once, never early, within 100 ms.
    lags = check_actions_follow_schedule(log, schedule)
    summary = [text for _, text in log if "churn: schedule accuracy" in text]
    assert len(summary) == 1 and f"{len(lags)} action(s)" in summary[0]
    m = re.search(r"max ([\d.]+) ms, median ([\d.]+) ms", summary[0])
    assert float(m.group(1)) == pytest.approx(max(lags) * 1000, abs=1.5)
    starts = [a for a in actions(log) if a[1] == "up"]
    assert len(starts) == 50 + 12 and all(a[5].startswith(", pid ") for a in starts)

    # What the nodes lived: each up interval of the trace is one process, started no earlier than
    # its time, and (when the trace ends it) stopped no earlier than its down time.
    ups, downs = node_lines(log, "up"), node_lines(log, "down")
    for node in range(schedule.nodes):
        intervals = schedule.intervals(node)
        assert len(ups[node]) == len(intervals) == len(downs[node]), node
        pids = [int(fields[0]) for fields in ups[node]]
        assert len(set(pids)) == len(pids), f"node {node} came back in the same process"
        for (up, down), up_line, down_line in zip(intervals, ups[node], downs[node]):
            started, ended = float(up_line[1]) - t0, float(down_line[0]) - t0
            assert up - 0.02 <= started <= up + 10, (node, up, started)
            if down is not None:
                assert down - 0.02 <= ended <= down + 10, (node, down, ended)
    assert "churn: node 21 up at" in "\n".join(text for _, text in log)

    # job.nodes(): after the last change, the nodes that stay up see exactly each other.
    last = schedule.end_time
    alive = set(schedule.alive_at(last))
    assert alive == {0, 1, 2, 21, 49}
    settled = t0 + last + 1.0
    assert settled < end_wall - 0.5, "the machine was too slow to leave time to observe the end"
    for observer in alive:
        assert view_in_force(log, observer, settled) == alive, observer
    # ... and while the trace ran, node 0 saw nodes leave: node 3 (down at 1 s) is not in its
    # view at 2 s.
    assert 3 not in view_in_force(log, 0, t0 + 2.0)

    # The end: the summary and the merged log's order.
    stops = sum(1 for _, _, change in schedule.events() if change == "down")
    assert f"churn: 62 start(s) and {stops} stop(s) of 50 node(s) from trace.txt" in "\n".join(t for _, t in log)
    stamps = [t for t, _ in log]
    assert stamps == sorted(stamps)


def test_in_process_replay_gives_fresh_namespaces(tmp_path):
    # Twice as fast: on the replay clock node 1 is up 0.1-0.6 and 1.6-2.1, node 2 0.3-1.1.
    trace = write(tmp_path, "trace.txt", """
        # node 0 stays up; node 1 leaves and comes back; node 2 joins late and leaves
        0
        0.2 1.2 3.2 4.2
        0.6 2.2
    """)
    end_wall = __import__("time").time() + 6.0
    done, log = run(tmp_path, "--churn", str(trace), "--churn-speed", "2", "--in-process", "--",
                    f"{end_wall:.3f}")
    assert done.returncode == 0, done.stderr
    schedule = Schedule([[0], [0.2, 1.2, 3.2, 4.2], [0.6, 2.2]])
    lags = check_actions_follow_schedule(log, schedule, speed=2.0)
    assert len(lags) == 7
    assert all(a[5] in (", a fresh namespace", ": its threads killed") for a in actions(log))
    t0 = replay_start(log)
    ups, downs = node_lines(log, "up"), node_lines(log, "down")
    # One process for all, but node 1 came back with a fresh module namespace (a new BORN).
    assert len({fields[0] for node in ups.values() for fields in node}) == 1
    assert len(ups[1]) == 2 and ups[1][0][1] != ups[1][1][1]
    # A stop kills the node's threads: their finally blocks run, not before the scheduled time.
    assert len(downs[1]) == 2 and len(downs[2]) == 1
    assert float(downs[1][0][0]) - t0 >= 0.6 - 0.02 and float(downs[2][0][0]) - t0 >= 1.1 - 0.02
    # job.nodes() follows: node 0 alone at 1.5, with node 1 again at 2.05, alone at the end.
    assert view_in_force(log, 0, t0 + 1.5) == {0}
    assert view_in_force(log, 0, t0 + 2.05) == {0, 1}
    assert view_in_force(log, 0, t0 + 3.1) == {0}
    assert "churn: 4 start(s) and 3 stop(s) of 3 node(s)" in "\n".join(t for _, t in log)


@pytest.mark.parametrize("mode, failure", [
    ([], "[node 1] exited with status 1; last"),
    (["--in-process"], "[node 1] failed: its module raised RuntimeError; last"),
])
def test_a_node_that_crashes_while_up_is_reported_and_restarts_at_its_next_up_time(tmp_path, mode, failure):
    write(tmp_path, "trace.txt", "0 3.2\n0.1 0.6 0.9 3\n")
    done, log = run(tmp_path, "--churn", "trace.txt", *mode, app=CRASHES)
    assert done.returncode == 1
    text = "\n".join(t for _, t in log)
    # Reported each time, with its traceback; started again at 0.9 afresh.
    assert text.count(failure) == 2
    assert text.count("RuntimeError: boom at start") >= 2
    node1 = [a for a in actions(log) if a[0] == 1]
    assert [(a[1], a[3]) for a in node1] == [("up", 0.1), ("down", 0.6), ("up", 0.9), ("down", 3.0)]
    assert node1[1][5] == node1[3][5] == ": it had already ended"
    # Node 0, stopped by the trace, is no failure; the summary names node 1 twice.
    if not mode:
        assert re.search(r"\[splay\] node 0 stopped: (killed by signal SIGTERM|exited with status 143)", text)
    assert "2 failed (node 1, 1)" in text
    assert "schedule accuracy: 4 action(s) (3 start(s), 1 stop(s))" in text


def test_time_limit_ends_a_replay_before_the_trace_ends(tmp_path):
    write(tmp_path, "trace.txt", "0\n0.1 30 31\n")
    end_wall = __import__("time").time() + 120
    done, log = run(tmp_path, "--churn", "trace.txt", "--time-limit", "1", "--", f"{end_wall:.3f}")
    assert done.returncode == 0, done.stderr
    text = "\n".join(t for _, t in log)
    assert "time limit of 1 s reached: stopping all nodes" in text
    assert "(the run was stopped before the trace's end)" in text
    assert [(a[0], a[1]) for a in actions(log)] == [(0, "up"), (1, "up")]


def test_bad_trace_exits_2_with_file_line_and_column(tmp_path):
    write(tmp_path, "bad.txt", "0 5\n0 4 3\n")
    done, log = run(tmp_path, "--churn", "bad.txt")
    assert done.returncode == 2
    assert ("splay run: error: bad churn trace: bad.txt:2:5: time 3 is not after the previous time 4"
            in done.stderr)
    assert log == []      # nothing ran, no log was written


@pytest.mark.parametrize("args, message", [
    (["--churn", "trace.txt", "-n", "3"],
     "-n 3 disagrees with the churn trace 'trace.txt', which has 2 node line(s)"),
    (["--churn", "missing.txt"], "cannot read the churn trace 'missing.txt': No such file or directory"),
    (["--churn", "empty.txt"], "the churn trace 'empty.txt' has no node line"),
    (["--churn", "words.txt"], "bad churn trace: words.txt:1:3: 'soon' is not a time in seconds"),
    (["--churn", "trace.txt", "--churn-speed", "0"], "--churn-speed must be a positive factor, got 0"),
    (["--churn-speed", "2"], "--churn-speed scales the times of a churn trace: add --churn TRACE"),
    (["--churn", "trace.txt", "--stagger", "1"], "--stagger has no meaning with --churn"),
])
def test_bad_churn_options_are_refused_with_what_to_change(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "app.py", APP)
    write(tmp_path, "trace.txt", "0\n1 2\n")
    write(tmp_path, "empty.txt", "# only a comment\n\n")
    write(tmp_path, "words.txt", "0 soon\n")
    with pytest.raises(options.UsageError) as e:
        options.parse(["app.py", *args])
    assert message in str(e.value)


def test_churn_sets_the_number_of_nodes_and_the_speed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "app.py", APP)
    write(tmp_path, "trace.txt", "0\n1 2\n3\n")
    opts = options.parse(["app.py", "--churn", "trace.txt"])
    assert (opts.nodes, opts.churn_speed, opts.schedule.nodes) == (3, 1.0, 3)
    assert options.parse(["app.py", "--churn", "trace.txt", "-n", "3", "--churn-speed", "4"]).churn_speed == 4
    assert options.parse(["app.py"]).nodes == 1 and options.parse(["app.py"]).schedule is None


def test_timeline_and_accuracy():
    timeline = Timeline(Schedule([[0, 2], [1, 2, 3]]), speed=2)
    assert timeline.next_time() == 0
    assert timeline.due(0.6) == [(0.0, 0, "up", 0.0), (0.5, 1, "up", 1.0)]
    # At one instant downs come first.
    assert timeline.due(1.0) == [(1.0, 0, "down", 2.0), (1.0, 1, "down", 2.0)]
    assert timeline.due(1.2) == [] and timeline.next_time() == 1.5 and not timeline.finished
    assert timeline.due(9) == [(1.5, 1, "up", 3.0)] and timeline.finished and timeline.next_time() is None
    with pytest.raises(ValueError, match="positive factor"):
        Timeline(Schedule([[0]]), speed=0)
    accuracy = Accuracy()
    assert "no start or stop" in accuracy.summary()
    for change, lag in [("up", 0.001), ("up", 0.003), ("down", 0.002)]:
        accuracy.record(change, lag)
    assert accuracy.summary() == ("schedule accuracy: 3 action(s) (2 start(s), 1 stop(s)): lag behind the "
                                  "schedule max 3.0 ms, median 2.0 ms")

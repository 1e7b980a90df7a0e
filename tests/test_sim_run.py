"""``splay run APP -n N --sim``: real launcher, real host process, virtual time.

Every test starts ``python -m splay.cli run ... --sim`` on a small application written into
tmp_path and reads the merged log it leaves; the runs end by themselves in virtual time.
"""
import random
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from splay.launch import options
from splay.sim import seeding
from splay.sim.run import VirtualLogClock

from support_sim import ENV, LIVENESS, splay_run


# Timers, a lock, events, logs and per-node random draws; reads the partition state of its
# link model (--topology/--partition) at each step, so that the cut shows in the log.
BUSY = """
    import random
    from splay import events, log, misc
    from splay.base import job

    l_o = log.new(1, "[busy]")
    lock = events.lock()
    shared = []

    def reachable(peer):
        node = events.current_node()
        emulation = getattr(node, "emulation", None)
        return None if emulation is None else emulation.model.reachable(job.position, peer)

    def worker(k):
        for step in range(4):
            events.sleep(random.expovariate(1 / 5.0))
            with lock:
                shared.append((k, step))
                events.sleep(0.5)
            if random.random() < 0.3:
                events.fire("tick", job.position, step)
            l_o.info(f"worker {k} step {step} at {misc.time():.6f} pick {misc.random_pick(range(100))} "
                     f"reach0 {reachable(0)}")

    def listener():
        while True:
            ok, *args = events.wait("tick", 7)
            print("heard", args if ok else "nothing", "at", round(misc.time(), 6))
            if not ok:
                return

    def main():
        print("up at", misc.time(), "first draw", random.random())
        events.thread(listener)
        for k in range(3):
            events.thread(lambda k=k: worker(k))

    events.run(main)
"""

PERIODIC_DAY = """
    from splay import events, misc
    from splay.base import job

    def main():
        count = [0]
        def tick():
            count[0] += 1
        p = events.periodic(60, tick)
        events.sleep(24 * 3600 + 1)
        events.kill(p)
        print("ticks", count[0], "at", misc.time())

    events.run(main)
"""


def write_app(tmp_path, body, name="app.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def node_lines(log_text):
    """The ``(timestamp, node, text)`` of every node line of a merged log."""
    return re.findall(r"^(\S+ \S+) \[node (\d+)\] (.*)$", log_text, re.M)


def write_trace(tmp_path, lines):
    path = tmp_path / "churn.trace"
    path.write_text("".join(" ".join(str(t) for t in times) + "\n" for times in lines))
    return path


def test_two_runs_with_the_same_seed_give_the_same_log_byte_for_byte(tmp_path):
    app = write_app(tmp_path, BUSY)
    topology = tmp_path / "lossy.model"
    topology.write_text("uniform delay_ms=20 kbps=1000 loss=0.1\n")
    trace = write_trace(tmp_path, [[0], [0, 30], [5, 40, 60], [0]])
    args = ["--seed", "7", "--churn", str(trace), "--topology", str(topology),
            "--partition", "0|1-3@10-25"]
    rc1, first, _ = splay_run(tmp_path, app, *args, log="first.log")
    rc2, second, _ = splay_run(tmp_path, app, *args, log="second.log")
    assert rc1 == rc2 == 0
    assert len(node_lines(first)) > 40
    assert first.replace("first.log", "second.log") == second
    rc3, other, _ = splay_run(tmp_path, app, *[a if a != "7" else "8" for a in args], log="other.log")
    assert rc3 == 0 and node_lines(other) != node_lines(first)


def test_the_merged_log_is_stamped_with_virtual_time(tmp_path):
    app = write_app(tmp_path, BUSY)
    rc, log, _ = splay_run(tmp_path, app, "-n", "2", "--seed", "3")
    assert rc == 0
    stamps = [stamp for stamp, _, _ in node_lines(log)]
    assert stamps[0].startswith("1970-01-01 00:00:00.000000")
    assert stamps == sorted(stamps)
    # A line printing misc.time() is stamped with that same virtual instant.
    for stamp, _, text in node_lines(log):
        m = re.search(r" at ([0-9.]+)", text)
        if m and "worker" in text:
            assert stamp == VirtualLogClock.format(float(m.group(1)))
    assert "pid" not in log and "open-file limit" not in log and "job ref sim-3" in log
    assert "[splay] simulation ended at virtual time" in log


def test_each_node_draws_from_the_stream_of_its_seed_and_position(tmp_path):
    app = write_app(tmp_path, BUSY)
    rc, log, _ = splay_run(tmp_path, app, "-n", "3", "--seed", "11")
    assert rc == 0
    first = {int(node): float(text.split()[-1]) for _, node, text in node_lines(log)
             if text.startswith("up at")}
    assert first == {i: random.Random(seeding.node_seed(11, i)).random() for i in range(3)}


def test_a_day_of_virtual_time_ends_with_every_tick(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    rc, log, stderr = splay_run(tmp_path, app, "-n", "10")
    assert rc == 0
    lines = node_lines(log)
    assert len(lines) == 10
    assert all(text == "ticks 1440 at 86401.0" for _, _, text in lines)
    assert all(stamp == "1970-01-02 00:00:01.000000" for stamp, _, _ in lines)


def test_until_stops_the_run_at_that_virtual_time(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    rc, log, _ = splay_run(tmp_path, app, "-n", "3", "--until", "3600")
    assert rc == 0
    assert node_lines(log) == []
    assert "[splay] simulation stopped at virtual time 3600 s (--until)" in log
    assert "1970-01-01 01:00:00.000000 [splay] simulation stopped" in log


def test_churn_acts_on_the_virtual_timeline(tmp_path):
    app = write_app(tmp_path, BUSY)
    trace = write_trace(tmp_path, [[0], [100, 130]])
    rc, log, _ = splay_run(tmp_path, app, "--churn", str(trace))
    assert rc == 0
    ups = {node: stamp for stamp, node, text in node_lines(log) if text.startswith("up at")}
    assert ups == {"0": "1970-01-01 00:00:00.000000", "1": "1970-01-01 00:01:40.000000"}
    assert any("node 1" in line and "down" in line for line in log.splitlines()
               if "[splay] churn" in line and "00:02:10" in line)


def test_churn_starting_nodes_a_fraction_of_a_millisecond_apart_keeps_going(tmp_path):
    # 600 joins within 0.3 virtual seconds: the replay's wait for an action could end a hair
    # before its time, and a sleep shorter than the virtual clock's step does not move it, so the
    # replay spun forever at the first such action (2,000 joins never finished).
    app = write_app(tmp_path, """
        from splay import events
        from splay.base import job
        events.run(lambda: print("up", job.position))
    """)
    trace = write_trace(tmp_path, [[f"{i / 2000:.6f}"] for i in range(600)])
    rc, log, _ = splay_run(tmp_path, app, "--churn", str(trace), "--until", "1")
    assert rc == 0
    assert sorted(int(text.split()[1]) for _, _, text in node_lines(log) if text.startswith("up ")) \
        == list(range(600))


def test_a_partition_cuts_and_heals_on_the_virtual_timeline(tmp_path):
    app = write_app(tmp_path, BUSY)
    rc, log, _ = splay_run(tmp_path, app, "-n", "2", "--seed", "1", "--partition", "0|1@6-12")
    assert rc == 0
    seen = [(float(re.search(r" at ([0-9.]+)", text).group(1)), text.endswith("reach0 False"))
            for _, node, text in node_lines(log) if node == "1" and "worker" in text]
    assert seen and any(cut for _, cut in seen) and any(not cut for _, cut in seen)
    assert all(cut == (6 <= t < 12) for t, cut in seen)


def test_a_failing_node_gives_status_1_and_its_traceback(tmp_path):
    app = write_app(tmp_path, """
        from splay import events
        from splay.base import job
        if job.position == 1:
            raise KeyError("boom")
        events.run(lambda: print("fine"))
    """)
    rc, log, stderr = splay_run(tmp_path, app, "-n", "3")
    assert rc == 1
    assert "[node 1] failed: its module raised KeyError" in stderr
    assert sorted(node for _, node, text in node_lines(log) if text == "fine") == ["0", "2"]


def test_a_real_blocking_call_is_refused_with_the_alternative(tmp_path):
    app = write_app(tmp_path, """
        import time
        from splay import events
        def main():
            events.sleep(2)
            time.sleep(1)
        events.run(main)
    """)
    rc, log, _ = splay_run(tmp_path, app, "-n", "1")
    assert rc == 0
    assert ("SimulationError: time.sleep() would block the whole simulation (every node shares one "
            "process and a virtual clock): use events.sleep() instead") in log
    assert "1970-01-01 00:00:02.000000 [node 0]" in log


def test_a_stuck_simulation_ends_with_who_waits_for_what(tmp_path):
    app = write_app(tmp_path, """
        from splay import events
        from splay.base import job
        def main():
            events.sleep(job.position)
            events.wait("nobody fires this")
        events.run(main)
    """)
    rc, log, _ = splay_run(tmp_path, app, "-n", "2")
    assert rc == 0
    assert "simulation stuck: 2 thread(s) blocked with nothing left to wake them" in log
    assert log.count('app.py:6 in main: events.wait("nobody fires this")') == 2
    assert "[splay] simulation ended at virtual time 1 s" in log


def test_progress_and_speed_are_shown_on_stderr(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    command = [sys.executable, "-m", "splay.cli", "run", str(app), "--sim", "-n", "2",
               "--no-metrics", "--log", str(tmp_path / "run.log")]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=LIVENESS)
    assert done.returncode == 0
    assert re.search(r"\[splay\] simulation ended at virtual time 86401 s in [0-9.]+ s of real "
                     r"time: \d+ events, [0-9.]+[kM]? events/s, x[0-9.]+ real time", done.stderr)


@pytest.mark.parametrize("extra, message", [
    (["--sandbox"], "--sandbox cannot apply with --sim: every simulated node lives in one process"),
    (["--node-dirs", "d"], "--node-dirs cannot apply with --sim"),
    (["--stagger", "1"], "--stagger cannot apply with --sim: every simulated node starts at virtual time 0"),
    (["--until", "0"], "--until must be a positive number of virtual seconds"),
])
def test_options_that_cannot_apply_to_a_simulation_are_refused(tmp_path, extra, message):
    app = write_app(tmp_path, PERIODIC_DAY)
    with pytest.raises(options.UsageError, match=re.escape(message)):
        options.parse([str(app), "--sim", "-n", "2", *extra])


def test_faults_act_on_the_virtual_timeline(tmp_path):
    app = write_app(tmp_path, """
        from splay import events, misc
        def main():
            print("start", misc.time())
            for i in range(6):
                events.sleep(4)
                print("tick", i, round(misc.time(), 3))
        events.run(main)
    """)
    faults = tmp_path / "faults.txt"
    faults.write_text("pause 1 at 10s for 5s\nkill 0 at 14s\nrestart 0 at 30s\nskew 2 +500ms from 5s\n")
    rc, log, _ = splay_run(tmp_path, app, "-n", "3", "--faults", str(faults))
    assert rc == 0
    lines = [(stamp[11:19], node, text) for stamp, node, text in node_lines(log)]
    assert ("00:00:15", "1", "tick 2 15.0") in lines          # paused from 10 s to 15 s
    assert ("00:00:12", "0", "tick 2 12.0") in lines and not any(
        node == "0" and text == "tick 3 16.0" for _, node, text in lines)     # killed at 14 s
    assert ("00:00:30", "0", "start 30.0") in lines            # restarted afresh at 30 s
    assert ("00:00:08", "2", "tick 1 8.5") in lines            # its clock 500 ms ahead from 5 s
    assert "00:00:10.000000 [splay] fault: pause 1 at 10s for 5s: begins at 10.000 (scheduled 10.000)" in log
    rc, again, _ = splay_run(tmp_path, app, "-n", "3", "--faults", str(faults), log="again.log")
    assert again == log.replace("run.log", "again.log")


def test_until_without_sim_is_refused(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    with pytest.raises(options.UsageError, match="--until is a virtual time: it needs --sim"):
        options.parse([str(app), "-n", "2", "--until", "10"])


def test_a_churn_trace_for_fewer_nodes_than_n_is_refused(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    trace = write_trace(tmp_path, [[0], [5]])
    rc, log, stderr = splay_run(tmp_path, app, "-n", "5", "--churn", str(trace))
    assert rc == 2
    assert "-n 5 disagrees with the churn trace" in stderr and "2 node line(s)" in stderr


def test_a_topology_or_partition_naming_an_unknown_node_is_refused(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    matrix = tmp_path / "three.matrix"
    matrix.write_text("a b c\na - 10 10\nb 10 - 10\nc 10 10 -\n")
    with pytest.raises(options.UsageError, match="describes 3 nodes, fewer than -n 5"):
        options.parse([str(app), "--sim", "-n", "5", "--topology", str(matrix)])
    with pytest.raises(options.UsageError, match="names node 7, but there are 5 nodes"):
        options.parse([str(app), "--sim", "-n", "5", "--partition", "0-1|7@1-2"])
    rc, _, stderr = splay_run(tmp_path, app, "-n", "5", "--topology", str(matrix))
    assert rc == 2 and "fewer than -n 5" in stderr


def test_a_simulation_is_an_in_process_run_seeded_with_0_by_default(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    opts = options.parse([str(app), "--sim", "-n", "2"])
    assert opts.in_process and opts.seed == 0 and opts.job_ref == "sim-0"


def test_metrics_and_the_html_report_of_a_simulation(tmp_path):
    app = write_app(tmp_path, PERIODIC_DAY)
    report = tmp_path / "report.html"
    command = [sys.executable, "-m", "splay.cli", "run", str(app), "--sim", "-n", "3", "--quiet",
               "--log", str(tmp_path / "run.log"), "--report", str(report)]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=LIVENESS)
    assert done.returncode == 0, done.stderr
    import json
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["run"]["id"] == "sim-0" and "--sim" in data["run"]["command"]
    assert [n["state"] for n in data["nodes"]] == ["ended"] * 3
    # The samples are stamped in real seconds from the run's start (the host's sampler thread
    # keeps the machine's clock), like those of an --in-process run.
    assert data["samples"] and all(0 <= s["t"] < 60 for s in data["samples"])
    assert report.stat().st_size > 0 and "sim-0" in report.read_text()


def test_more_nodes_than_ports_continue_on_the_next_loopback_address(tmp_path):
    from splay.sim.run import node_addresses
    assert node_addresses(6, 65530) is None
    addresses = node_addresses(8, 65530)
    assert [(a.ip, a.port) for a in addresses[5:]] == [
        ("127.0.0.1", 65535), ("127.0.0.2", 65530), ("127.0.0.2", 65531)]
    app = write_app(tmp_path, """
        from splay import events
        from splay.base import job
        events.run(lambda: print("me", job.me.ip, job.me.port))
    """)
    rc, log, _ = splay_run(tmp_path, app, "-n", "8", "--first-port", "65530")
    assert rc == 0
    assert sorted(text for _, node, text in node_lines(log) if node in ("6", "7")) == [
        "me 127.0.0.2 65530", "me 127.0.0.2 65531"]
    with pytest.raises(options.UsageError, match="past 65535"):
        options.parse([str(app), "-n", "8", "--first-port", "65530"])


def test_random_node_lists_are_the_same_run_after_run(tmp_path):
    app = write_app(tmp_path, """
        from splay import events
        from splay.base import job
        events.run(lambda: print("list", sorted(n.port for n in job.nodes())))
    """)
    runs = [splay_run(tmp_path, app, "-n", "12", "--random-list", "3", "--seed", str(seed))[1]
            for seed in (4, 4, 5)]
    lists = [sorted(text for _, _, text in node_lines(log)) for log in runs]
    assert lists[0] == lists[1] != lists[2]
    assert all(len(text.split(",")) == 3 for text in lists[0])


def test_sigterm_stops_an_endless_simulation_with_status_143(tmp_path):
    app = write_app(tmp_path, """
        from splay import events
        events.run(lambda: events.periodic(1, lambda: None))      # runs for ever in virtual time
    """)
    command = [sys.executable, "-m", "splay.cli", "run", str(app), "--sim", "-n", "2",
               "--no-metrics", "--log", str(tmp_path / "run.log")]
    proc = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # The first progress line: the simulation runs (virtual time goes on without end).
        line = proc.stderr.readline()
        assert line.startswith("[splay] sim: virtual time"), line
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=LIVENESS) == 143
    finally:
        proc.kill()
    assert "SIGTERM: stopping all nodes" in rest
    assert "(the run was stopped)" in (tmp_path / "run.log").read_text()

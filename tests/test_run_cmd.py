"""``splay run APP.py -n N``: real launcher, real node processes, real signals.

Every test starts ``python -m splay.cli run ...`` on a small application written into tmp_path and
waits for events (output lines, process exit), never for a fixed time.
"""
import datetime
import json
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading

import psutil
import pytest

from splay.job import Job
from splay.launch import options
from splay.launch.processes import NodeProcess, NodesFile
from splay.launch.run_cmd import JobPlan

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 60   # seconds: generous, only a hung test ever waits this long

# Prints its job as one JSON line, then waits for the file named by its first argument (so every
# node is alive while the others read their lists) and ends.
SHOW_JOB = """
    import json, os, sys, time
    import splay
    j = splay.job
    print("job " + json.dumps({"position": j.position, "me": list(j.me), "list_type": j.list_type,
                               "nodes": [list(n) for n in j.nodes()], "name": j.name, "ref": j.ref,
                               "argv": sys.argv[1:]}))
    print("stderr of", j.position, file=sys.stderr)
    sys.stdout.write("no newline at the end")
    sys.stdout.flush()
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.02)
"""

# Never ends by itself; with "child" it first starts a grandchild process that never ends either.
FOREVER = """
    import subprocess, sys, time, splay
    if "child" in sys.argv:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("ready", splay.job.position, flush=True)
    while True:
        time.sleep(1)
"""


def write_app(tmp_path, body, name="app.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def splay_run(tmp_path, *args):
    """Run ``splay run ARGS`` to its end in ``tmp_path``; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "splay.cli", "run", *map(str, args)], cwd=tmp_path,
                          env=ENV, capture_output=True, text=True, timeout=LIVENESS)


class Launcher:
    """A ``splay run`` in the background, its output lines read as they come."""

    def __init__(self, tmp_path, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "splay.cli", "run", *map(str, args)],
                                     cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.stdout, self.stderr = [], []
        for stream, store in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, store), daemon=True).start()

        self.closed_streams = 0

    def _pump(self, stream, store):
        for line in stream:
            store.append(line)
            self.lines.put(line)
        self.lines.put(None)    # end of this stream

    def wait_for(self, pattern, count):
        """Wait until ``count`` lines (stdout or stderr) matched ``pattern``; returns them."""
        found = []
        while len(found) < count:
            try:
                line = self.lines.get(timeout=LIVENESS)
            except queue.Empty:
                line = None
                self.closed_streams = 2
            if line is None:
                self.closed_streams += 1
                if self.closed_streams < 2:
                    continue
                raise AssertionError(f"saw {len(found)}/{count} lines like {pattern!r}; "
                                     f"stdout: {self.stdout!r} stderr: {self.stderr!r}")
            if re.search(pattern, line):
                found.append(line)
        return found

    def descendants(self):
        return psutil.Process(self.proc.pid).children(recursive=True)

    def wait(self):
        return self.proc.wait(timeout=LIVENESS)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launchers():
    started = []
    yield lambda *a: started.append(Launcher(*a)) or started[-1]
    for launcher in started:
        launcher.kill()


def assert_all_gone(procs):
    """Every process in ``procs`` ends (zombies waiting for init count as ended)."""
    _, alive = psutil.wait_procs(procs, timeout=LIVENESS)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphans left: {[(p.pid, p.cmdline()) for p in alive]}"


def read_log(path):
    """The merged log as ``[(timestamp, text)]``."""
    entries = []
    for line in pathlib.Path(path).read_text().splitlines():
        stamp, text = line[:26], line[27:]
        entries.append((datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f"), text))
    return entries


def run_show_job(tmp_path, launchers, n, *args):
    """Run SHOW_JOB on ``n`` nodes; returns (jobs by position, launcher, exit status)."""
    app = write_app(tmp_path, SHOW_JOB)
    go = tmp_path / "go"
    launcher = launchers(tmp_path, app, "-n", n, *args, go, "extra")
    lines = launcher.wait_for(r"^\[node \d+\] job ", n)
    go.touch()
    status = launcher.wait()
    jobs = {}
    for line in lines:
        index, text = re.match(r"^\[node (\d+)\] job (.*)$", line).groups()
        jobs[int(index)] = json.loads(text)
    return jobs, launcher, status


def test_every_node_runs_with_its_job(tmp_path, launchers):
    jobs, launcher, status = run_show_job(tmp_path, launchers, 5, "--first-port", 31000)
    assert status == 0, launcher.stderr
    everyone = [["127.0.0.1", 31000 + i] for i in range(5)]
    assert sorted(jobs) == [0, 1, 2, 3, 4]
    for i, job in jobs.items():
        assert job["position"] == i and job["me"] == ["127.0.0.1", 31000 + i]
        assert job["list_type"] == "head" and job["nodes"] == everyone
        assert job["nodes"][job["position"]] == job["me"]
        assert job["name"] == "app" and job["argv"] == [str(tmp_path / "go"), "extra"]
    assert len({job["ref"] for job in jobs.values()}) == 1
    out = "".join(launcher.stdout)
    for i in range(5):
        assert f"[node {i}] stderr of {i}\n" in out          # stderr is prefixed and shown too
        assert f"[node {i}] no newline at the end\n" in out  # an unfinished last line is kept


def test_merged_log_is_complete_and_time_ordered(tmp_path, launchers):
    _, launcher, status = run_show_job(tmp_path, launchers, 4, "--log", "merged.log")
    assert status == 0
    entries = read_log(tmp_path / "merged.log")
    stamps = [t for t, _ in entries]
    assert stamps == sorted(stamps)
    texts = [text for _, text in entries]
    shown = [line.rstrip("\n") for line in launcher.stdout]
    assert [t for t in texts if t.startswith("[node ")] == shown   # every line, in the same order
    for i in range(4):
        assert f"[node {i}] stderr of {i}" in texts
        assert f"[splay] node {i} started, pid" in "\n".join(texts)
    assert not (tmp_path / "splay-run.log").exists()


def test_log_dir(tmp_path):
    app = write_app(tmp_path, "print('hello')\n")
    (tmp_path / "logs").mkdir()
    out = splay_run(tmp_path, app, "-n", 2, "--log-dir", "logs")
    assert out.returncode == 0, out.stderr
    texts = [t for _, t in read_log(tmp_path / "logs" / "splay-run.log")]
    assert "[node 0] hello" in texts and "[node 1] hello" in texts


def test_list_size_and_random_lists(tmp_path, launchers):
    jobs, _, status = run_show_job(tmp_path, launchers, 6, "--list-size", 2)
    assert status == 0
    for job in jobs.values():
        assert job["list_type"] == "head" and job["nodes"] == [["127.0.0.1", 20000], ["127.0.0.1", 20001]]

    (tmp_path / "go").unlink()
    jobs, _, status = run_show_job(tmp_path, launchers, 6, "--random", "--list-size", 3)
    assert status == 0
    for job in jobs.values():
        assert job["list_type"] == "random" and len(job["nodes"]) == 3
        assert job["me"] not in job["nodes"]
        assert len({tuple(n) for n in job["nodes"]}) == 3


def test_random_list_alias(tmp_path, launchers):
    jobs, _, status = run_show_job(tmp_path, launchers, 4, "--random-list", 2)
    assert status == 0
    assert all(j["list_type"] == "random" and len(j["nodes"]) == 2 and j["me"] not in j["nodes"]
               for j in jobs.values())


def test_crashed_node_is_reported_with_status_and_tail(tmp_path):
    app = write_app(tmp_path, """
        import splay
        if splay.job.position == 2:
            for i in range(30):
                print(f"line {i:02d}")
            raise RuntimeError("boom")
        print("fine")
    """)
    out = splay_run(tmp_path, app, "-n", 4)
    assert out.returncode == 1
    assert "[node 2] exited with status 1; last 20 line(s) of its output:" in out.stderr
    assert "[node 2] | line 14\n" in out.stderr and "[node 2] | line 13\n" not in out.stderr
    assert "[node 2] | RuntimeError: boom\n" in out.stderr
    assert "1 failed (node 2)" in out.stderr
    assert out.stdout.count("fine") == 3
    assert "[node 2] line 00\n" in out.stdout       # everything was shown as it came


def test_node_killed_by_a_signal_is_reported(tmp_path):
    app = write_app(tmp_path, """
        import os, signal, splay
        if splay.job.position == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = splay_run(tmp_path, app, "-n", 2)
    assert out.returncode == 1
    assert "[node 1] killed by signal SIGKILL without output" in out.stderr


def test_quiet_shows_nothing_but_logs_everything(tmp_path):
    app = write_app(tmp_path, "import splay\nprint('at', splay.job.position)\n")
    out = splay_run(tmp_path, app, "-n", 3, "--quiet")
    assert out.returncode == 0
    assert out.stdout == "" and out.stderr == ""
    texts = [t for _, t in read_log(tmp_path / "splay-run.log")]
    assert {"[node 0] at 0", "[node 1] at 1", "[node 2] at 2"} <= set(texts)


def test_progress_on_request(tmp_path):
    app = write_app(tmp_path, "pass\n")
    out = splay_run(tmp_path, app, "-n", 3, "--progress")
    assert out.returncode == 0
    assert re.search(r"\[splay\] started 3/3 nodes in [\d.]+ s", out.stderr)
    assert "starting nodes" not in splay_run(tmp_path, app, "-n", 3).stderr   # not a tty


def test_stagger_spaces_the_starts(tmp_path):
    app = write_app(tmp_path, "pass\n")
    out = splay_run(tmp_path, app, "-n", 3, "--stagger", 0.2)
    assert out.returncode == 0
    starts = [t for t, text in read_log(tmp_path / "splay-run.log") if re.match(r"\[splay\] node \d started", text)]
    assert len(starts) == 3
    assert all((b - a).total_seconds() >= 0.19 for a, b in zip(starts, starts[1:]))


def test_time_limit_stops_every_node(tmp_path):
    app = write_app(tmp_path, FOREVER)
    out = splay_run(tmp_path, app, "-n", 3, "--time-limit", 1)
    assert out.returncode == 0, out.stderr
    assert "time limit of 1 s reached: stopping all nodes" in out.stderr
    assert "3/3 node(s) ran" in out.stderr and "3 stopped" in out.stderr


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_every_node_and_its_children(tmp_path, launchers, sig, status):
    app = write_app(tmp_path, FOREVER)
    launcher = launchers(tmp_path, app, "-n", 3, "child")
    launcher.wait_for(r"^\[node \d\] ready", 3)
    procs = launcher.descendants()
    assert len(procs) == 8        # 3 nodes, each with its grandchild, the watchdog, the fork server
    launcher.proc.send_signal(sig)
    assert launcher.wait() == status, "".join(launcher.stderr)
    assert_all_gone(procs)
    assert f"{signal.Signals(sig).name}: stopping all nodes" in "".join(launcher.stderr)


def test_sigkill_of_the_launcher_takes_every_node_and_its_children_down(tmp_path, launchers):
    app = write_app(tmp_path, FOREVER)
    launcher = launchers(tmp_path, app, "-n", 4, "child")
    launcher.wait_for(r"^\[node \d\] ready", 4)
    procs = launcher.descendants()
    assert len(procs) == 10       # 4 nodes, 4 grandchildren, the watchdog, the fork server
    launcher.proc.kill()
    launcher.wait()
    assert_all_gone(procs)


def test_node_ignoring_sigterm_is_killed_after_grace(tmp_path, launchers):
    app = write_app(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """)
    launcher = launchers(tmp_path, app, "-n", 2, "--grace", 0.5)
    launcher.wait_for(r"^\[node \d\] ready", 2)
    procs = launcher.descendants()
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.wait() == 143
    assert "2 node(s) still running after 0.5 s: killing them" in "".join(launcher.stderr)
    assert_all_gone(procs)


def test_second_ctrl_c_kills_at_once(tmp_path, launchers):
    app = write_app(tmp_path, """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
    """)
    launcher = launchers(tmp_path, app, "-n", 2, "--grace", 600)
    launcher.wait_for(r"^\[node \d\] ready", 2)
    procs = launcher.descendants()
    launcher.proc.send_signal(signal.SIGINT)
    launcher.wait_for(r"SIGINT: stopping all nodes", 1)
    launcher.proc.send_signal(signal.SIGINT)
    assert launcher.wait() == 130
    assert "SIGINT again: killing all nodes" in "".join(launcher.stderr)
    assert_all_gone(procs)


def test_nodes_see_churn_through_the_nodes_file(tmp_path):
    app = write_app(tmp_path, """
        import time, splay
        job = splay.job
        if job.position == 0:
            raise SystemExit(0)
        deadline = time.monotonic() + 60
        while job.nodes()[0].port == 20000 and time.monotonic() < deadline:
            time.sleep(0.02)
        print("alive:", [n.port for n in job.nodes()])
    """)
    out = splay_run(tmp_path, app, "-n", 3)
    assert out.returncode == 0, out.stderr
    for k in (1, 2):   # node 0 has left; the other may have left too by the time k looks
        alive = json.loads(re.search(rf"\[node {k}\] alive: (\[.*\])", out.stdout).group(1))
        assert 20000 not in alive and 20000 + k in alive


def test_app_exit_status_counts_as_failure(tmp_path):
    app = write_app(tmp_path, "import sys, splay\nsys.exit(3 if splay.job.position == 0 else 0)\n")
    out = splay_run(tmp_path, app, "-n", 2)
    assert out.returncode == 1
    assert "[node 0] exited with status 3 without output" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["missing.py", "-n", "2"], "application file"),
    (["APP", "-n", "0"], "-n must be at least 1, got 0"),
    (["APP", "-n", "10", "--first-port", "65530"], "need ports up to 65539, past 65535"),
    (["APP", "--first-port", "0"], "--first-port must be from 1 to 65535"),
    (["APP", "--list-size", "-1"], "--list-size must be >= 0"),
    (["APP", "--time-limit", "0"], "--time-limit must be a positive number"),
    (["APP", "--stagger", "-1"], "--stagger must be >= 0"),
    (["APP", "--max-memory", "1000"], "--max-memory is a sandbox limit: add --sandbox"),
    (["APP", "--sandbox", "--sandbox-opt", "x"], "--sandbox-opt expects KEY=VALUE"),
    (["APP", "--python", "no-such-python-here"], "no such executable interpreter"),
    (["APP", "--log-dir", "no/such/dir"], "log directory"),
    (["APP", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["APP", "-n", "many"], "invalid int value: 'many'"),
    ([], "the following arguments are required: app"),
])
def test_bad_input_is_refused_with_status_2(tmp_path, args, message):
    app = write_app(tmp_path, "print('ran')\n")
    out = splay_run(tmp_path, *[str(app) if a == "APP" else a for a in args])
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.startswith("splay run: error:")
    assert "ran" not in out.stdout


def test_help(tmp_path):
    out = splay_run(tmp_path, "--help")
    assert out.returncode == 0 and "--list-size" in out.stdout and "--time-limit" in out.stdout


def test_app_arguments_after_double_dash(tmp_path):
    app = write_app(tmp_path, "import sys\nprint(sys.argv[1:])\n")
    out = splay_run(tmp_path, app, "a", "-n", 1, "--", "-v", "--flag")
    assert out.returncode == 0, out.stderr
    assert "[node 0] ['a', '-v', '--flag']" in out.stdout


def test_sandbox_options_reach_the_job(tmp_path):
    app = write_app(tmp_path, "pass\n")
    opts = options.parse([str(app), "-n", "2", "--sandbox", "--max-memory", "268435456",
                          "--max-cpu", "2.5", "--sandbox-opt", "no_std=true", "--sandbox-opt", "tag=x1"])
    kw = options.sandbox_limits(opts)
    assert kw == {"max_memory": 268435456, "max_cpu": 2.5, "no_std": True, "tag": "x1",
                  "max_files": options.SANDBOX_DEFAULTS["max_files"],
                  "max_disk": options.SANDBOX_DEFAULTS["max_disk"], "bind_ports": [20000, 20001]}
    assert opts.net_settings == {**options.SANDBOX_NET_DEFAULTS, "start_port": 20000,
                                 "end_port": 20001}
    assert opts.node_dirs == os.path.join(os.getcwd(), "splay-run-nodes")
    plan = JobPlan(2, 20000, sandbox=kw, node_dirs=str(tmp_path / "nodes"))
    job = plan.job(1).to_dict()
    assert job["sandbox"] == kw and job["dir"] == str(tmp_path / "nodes" / "node-1")


def test_node_dirs(tmp_path):
    app = write_app(tmp_path, "import os\nprint(os.getcwd())\n")
    out = splay_run(tmp_path, app, "-n", 2, "--node-dirs", "work")
    assert out.returncode == 0, out.stderr
    assert f"[node 1] {tmp_path / 'work' / 'node-1'}" in out.stdout


def test_long_node_lists_go_through_the_nodes_file(tmp_path):
    nodes_file = NodesFile(tmp_path / "nodes.json")
    plan = JobPlan(2500, 20000, nodes_file=nodes_file.path)
    nodes_file.write(plan.nodes)
    job = plan.job(7)
    assert job.to_dict()["nodes"] == []                  # SPLAY_JOB stays small
    assert len(job.to_json()) < 1000
    back = Job.from_json(job.to_json())
    assert len(back.nodes()) == 2500 and back.nodes()[7] == back.me
    assert len(plan.job(3).to_json()) < 1000 and JobPlan(20, 20000).job(3).nodes()[3].port == 20003


def sandbox_available():
    try:
        from splay import sandbox
    except ImportError:
        return False
    return callable(getattr(sandbox, "confine", None))


@pytest.mark.skipif(not sandbox_available(), reason="splay.sandbox.confine is not available")
def test_sandboxed_nodes_live_in_their_directories(tmp_path):
    app = write_app(tmp_path, """
        import os, splay
        print("dir", os.getcwd() == splay.job.dir, flush=True)
        try:
            open("/etc/passwd").read()
            print("outside read: allowed", flush=True)
        except Exception:
            print("outside read: refused", flush=True)
        with open("mine.txt", "w") as f:
            f.write(str(splay.job.position))
    """)
    out = splay_run(tmp_path, app, "-n", 2, "--sandbox", "--node-dirs", "nodes", "--max-memory", 2 << 30)
    assert out.returncode == 0, out.stdout + out.stderr
    for i in range(2):
        assert f"[node {i}] dir True" in out.stdout
        assert f"[node {i}] outside read: refused" in out.stdout
        assert (tmp_path / "nodes" / f"node-{i}" / "mine.txt").read_text() == str(i)


def test_unwritable_log_file_is_refused(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    (tmp_path / "ro").mkdir()
    out = splay_run(tmp_path, app, "--log", "ro")     # a directory, not a file
    assert out.returncode == 2
    assert "cannot write the log file" in out.stderr and "ran" not in out.stdout


# --in-process: every node in one process, over one scheduler.
IN_PROCESS_APP = """
    import sys
    from splay.base import *
    calls = 0                       # one per node: each node runs its own copy of the module

    def main():
        global calls
        for _ in range(3):
            calls += 1
            events.sleep(0.01)
        node = events.current_node()
        print("node", node.index, "job", job.position, job.me.port, len(job.nodes()), "calls", calls)

    if job.position == 2 and "crash" in sys.argv:
        raise RuntimeError("node 2 cannot start")
    events.run(main)
"""


def test_in_process_nodes_have_their_own_job_namespace_and_output(tmp_path):
    app = write_app(tmp_path, IN_PROCESS_APP)
    out = splay_run(tmp_path, app, "-n", 4, "--in-process", "--first-port", 32000)
    assert out.returncode == 0, out.stdout + out.stderr
    for i in range(4):
        assert f"[node {i}] node {i} job {i} {32000 + i} 4 calls 3\n" in out.stdout
    assert "4/4 node(s) ran in one process" in out.stderr
    texts = [t for _, t in read_log(tmp_path / "splay-run.log")]
    assert "[node 3] node 3 job 3 32003 4 calls 3" in texts


def test_in_process_failed_node_is_reported_and_the_others_run(tmp_path):
    app = write_app(tmp_path, IN_PROCESS_APP)
    out = splay_run(tmp_path, app, "-n", 3, "--in-process", "crash")
    assert out.returncode == 1
    assert "[node 2] failed: its module raised RuntimeError; last 4 line(s) of its output:" in out.stderr
    assert "[node 2] | RuntimeError: node 2 cannot start" in out.stderr
    assert "1 failed (node 2)" in out.stderr
    assert "[node 0] node 0 job 0" in out.stdout and "[node 1] node 1 job 1" in out.stdout


def test_in_process_exit_ends_one_node_only(tmp_path, launchers):
    app = write_app(tmp_path, """
        from splay.base import *

        def main():
            while True:
                print("tick", job.position)
                if job.position == 0:
                    events.exit()
                events.sleep(0.02)
        events.run(main)
    """)
    launcher = launchers(tmp_path, app, "-n", 3, "--in-process")
    launcher.wait_for(r"^\[node [12]\] tick", 10)       # nodes 1 and 2 go on after node 0 left
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.wait() == 143
    assert "".join(launcher.stdout).count("[node 0] tick 0\n") == 1
    assert "3/3 node(s) ran in one process; stopped" in "".join(launcher.stderr)


def test_in_process_refuses_separate_directories(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    out = splay_run(tmp_path, app, "--in-process", "--node-dirs", "d")
    assert out.returncode == 2 and "--in-process runs every node in one process" in out.stderr


def test_in_process_host_needs_its_jobs_file(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    out = subprocess.run([sys.executable, "-m", "splay.launch.in_process", str(app)], env=ENV,
                         capture_output=True, text=True, timeout=LIVENESS)
    assert out.returncode == 2 and "SPLAY_JOBS_FILE is not set" in out.stderr and "ran" not in out.stdout


def test_odd_output_is_kept(tmp_path):
    app = write_app(tmp_path, """
        import sys
        sys.stdout.buffer.write(b"bad \\xff\\xfe bytes\\n")
        sys.stdout.buffer.write(b"x" * 100000 + b"\\n")
        sys.stdout.buffer.write(b"crlf line\\r\\n")
    """)
    out = splay_run(tmp_path, app, "--quiet")
    assert out.returncode == 0, out.stderr
    texts = [t for _, t in read_log(tmp_path / "splay-run.log") if t.startswith("[node 0]")]
    assert texts[0] == "[node 0] bad \ufffd\ufffd bytes"
    assert "".join(t[len("[node 0] "):] for t in texts[1:-1]) == "x" * 100000   # cut, nothing lost
    assert texts[-1] == "[node 0] crlf line"


def test_node_process_can_be_stopped_and_started_again(tmp_path):
    # The interface churn replays use: one node, started, stopped, started again.
    app = write_app(tmp_path, FOREVER)
    plan = JobPlan(2, 20000)
    env = dict(ENV, PYTHONUNBUFFERED="1")
    node = NodeProcess(1, lambda: plan.job(1), [sys.executable, "-m", "splay.launch.node", str(app)], env)
    for _ in range(2):
        node.start()
        assert node.state == "running"
        with os.fdopen(os.dup(node.stdout), "rb") as out:
            os.set_blocking(out.fileno(), True)
            assert out.readline() == b"ready 1\n"
        node.stop()
        os.waitid(os.P_PID, node.pid, os.WEXITED | os.WNOWAIT)     # wait for its end
        assert node.poll() and node.reap() == -signal.SIGTERM
        assert node.state == "ended" and not node.failed
        node.close_output()


def test_network_options_limit_every_node_and_are_final(tmp_path):
    app = write_app(tmp_path, "from splay.base import *\nfrom splay import Restricted, restricted_socket\n"
                              "try:\n    restricted_socket.init({'max_sockets': 99})\n"
                              "except Restricted:\n    print('final', socket.limits())\n")
    out = splay_run(tmp_path, app, "-n", 2, "--max-send", "64k", "--max-sockets", "3",
                    "--ports", "41800-41809", "--blacklist", "10.*,evil.net")
    assert out.returncode == 0, out.stderr
    for node in (0, 1):
        assert f"[node {node}] final (65536, None, 3, 41800, 41809, None)" in out.stdout
    bad = splay_run(tmp_path, app, "--ports", "9-2")
    assert bad.returncode == 2 and "--ports" in bad.stderr and "9-2" in bad.stderr
    bad = splay_run(tmp_path, app, "--blacklist", "*")
    assert bad.returncode == 2 and "--blacklist" in bad.stderr and "every host" in bad.stderr

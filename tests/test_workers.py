"""``splay run --in-process --workers K``: real launcher, real worker processes, real sockets.

The nodes run tests/workers_app.py; node i calls node i + 1, which with two workers is always on
the other worker (node i runs on worker i % 2).
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import psutil
import pytest

from examples.checkers import free_port_range
from splay.launch import options, workers

ROOT = pathlib.Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "workers_app.py"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
LIVENESS = 90   # seconds: generous, only a hung test ever waits this long


def splay_run(tmp_path, n, *args, app_args=(), first_port=None):
    """``splay run APP -n n --in-process ARGS -- base=... APP_ARGS``: (completed process, log lines)."""
    first = free_port_range(3 * n) if first_port is None else first_port
    base = first + n if first_port is None else free_port_range(2 * n)
    log = tmp_path / "run.log"
    done = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(APP), "-n", str(n),
                           "--first-port", str(first), "--in-process", "--log", str(log), *args,
                           "--", f"base={base}", *app_args],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS)
    return done, log.read_text().splitlines() if log.exists() else []


def node_lines(lines, index):
    return [line.split(f"[node {index}] ", 1)[1] for line in lines if f"[node {index}] " in line]


def test_nodes_on_different_workers_call_each_other(tmp_path):
    done, lines = splay_run(tmp_path, 4, "--workers", "2", app_args=["mode=calls"])
    assert done.returncode == 0, done.stderr
    pids = {i: int(node_lines(lines, i)[0].split()[-1]) for i in range(4)}
    assert pids[0] == pids[2] != pids[1] == pids[3]          # node i on worker i % 2
    for i in range(4):
        nxt = (i + 1) % 4
        got = node_lines(lines, i)[1:]
        assert got == [f"{proto} {nxt} {pids[nxt]}" for proto in ("rpc", "rpcq", "urpc")] + \
                      [f"raw {nxt} {pids[nxt]} hello"], got
    assert "4/4 node(s) ran in 2 worker processes" in done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())     # every worker's nodes sampled
    assert {sample["node"] for sample in metrics["samples"]} == {0, 1, 2, 3}
    assert [node["state"] for node in metrics["nodes"]] == ["ended"] * 4


def test_merged_log_keeps_the_order_lines_were_written_in(tmp_path):
    # "ask x" is printed before the call that makes the other worker print "asked x": the merged
    # log must show them in that order (read naively, pipe by pipe, ~150 of 400 pairs swap).
    done, lines = splay_run(tmp_path, 4, "--workers", "2", app_args=["mode=order"])
    assert done.returncode == 0, done.stderr
    where = {}
    for k, line in enumerate(lines):
        found = re.search(r"\[node \d+\] (ask|asked) (\S+)$", line)
        if found:
            where[found.groups()] = k
    asks = [key for kind, key in where if kind == "ask"]
    assert len(asks) == 400 and len(where) == 800
    assert [key for key in asks if where[("asked", key)] < where[("ask", key)]] == []
    for i in range(4):                               # each node's own lines in its own order
        assert [t for t in node_lines(lines, i) if t.startswith("ask ")] == \
               [f"ask {i}.{j}" for j in range(100)]
    stamps = [line[:26] for line in lines]
    assert stamps == sorted(stamps)                  # the log's timestamps never go back


def test_a_failing_node_fails_the_run_and_the_others_end(tmp_path):
    done, lines = splay_run(tmp_path, 4, "--workers", "2", app_args=["mode=fail"])
    assert done.returncode == 1
    assert "[node 1] failed: its module raised KeyError" in done.stderr
    assert "1 failed (node 1)" in done.stderr
    assert "lost" not in done.stderr                 # worker 1 ended through its node: no loss
    assert any("worker 1 (2 node(s)) ended: exited with status 1" in line for line in lines)
    assert any("worker 0 (2 node(s)) ended: exited with status 0" in line for line in lines)


def test_a_worker_killed_ends_the_run_naming_the_nodes_lost(tmp_path):
    first = free_port_range(3 * 4)
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "splay.cli", "run", str(APP), "-n", "4",
                             "--first-port", str(first), "--in-process", "--workers", "2",
                             "--log", str(log), "--", f"base={first + 4}", "mode=hang"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        pids = {}
        for line in proc.stdout:                     # "[node i] pid P" of every node
            found = re.match(r"\[node (\d+)\] pid (\d+)", line)
            if found:
                pids[int(found.group(1))] = int(found.group(2))
            if len(pids) == 4:
                break
        assert pids[1] == pids[3] != pids[0]
        os.kill(pids[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert re.search(rf"worker 1 \(pid {pids[1]}\) died: killed by signal SIGKILL.*its 2 node\(s\) "
                     r"are lost \(node 1, node 3\): stopping all nodes", err), err
    assert "2 failed (node 1, 3)" in err


def test_nodes_past_the_ports_of_one_address_go_on_the_next_addresses(tmp_path):
    # From port low - 2, 127.0.0.1 has two ports below the ephemeral range: five nodes use
    # 127.0.0.1 to 127.0.0.3, two of them on each port, and servers opened "on every interface"
    # (rpc.server(port), urpc.server(port)) listen on their node's own address.
    low = workers.ephemeral_low()
    assert [tuple(node) for node in workers.node_addresses(5, low - 2)] == [
        ("127.0.0.1", low - 2), ("127.0.0.1", low - 1), ("127.0.0.2", low - 2),
        ("127.0.0.2", low - 1), ("127.0.0.3", low - 2)]
    done, lines = splay_run(tmp_path, 5, "--workers", "2", app_args=["mode=calls"],
                            first_port=low - 2)
    assert done.returncode == 0, done.stderr
    for i in range(5):
        assert [t.split()[:2] for t in node_lines(lines, i)[1:]] == \
               [[proto, str((i + 1) % 5)] for proto in ("rpc", "rpcq", "urpc", "raw")]


def test_node_addresses_refuse_more_than_the_loopback_network_holds():
    with pytest.raises(ValueError, match="more than 127.0.0.1-127.0.0.254"):
        workers.node_addresses(255 * 10, 20000, per_address=10)


@pytest.mark.parametrize("args,message", [
    (["--in-process", "--workers", "0"], "--workers must be at least 1"),
    (["--in-process", "--workers", "-3"], "--workers must be at least 1"),
    (["--in-process", "--workers", "5"], "--workers 5 is more workers than the 4 node"),
    (["--workers", "2"], "add --in-process or drop --workers"),
    (["--in-process", "--workers", "many"], "expected a number of worker processes, got 'many'"),
])
def test_bad_workers_options_say_what_to_change(args, message):
    with pytest.raises(options.UsageError, match=re.escape(message)):
        options.parse([str(APP), "-n", "4", *args])


def test_workers_defaults(tmp_path):
    assert options.parse([str(APP), "-n", "4", "--in-process"]).workers == 1       # as before
    assert options.parse([str(APP), "-n", "64", "--in-process", "--workers"]).workers == \
        workers.default_workers()
    assert options.parse([str(APP), "-n", "4", "--in-process", "--workers", "3"]).workers == 3
    # Past 65535 from one address is fine with workers: the nodes spill over to 127.0.0.2, ...
    assert options.parse([str(APP), "-n", "50000", "--in-process", "--workers", "4"]).workers == 4
    with pytest.raises(options.UsageError, match="--partition and --faults number the nodes on one address"):
        options.parse([str(APP), "-n", "50000", "--in-process", "--workers", "4",
                       "--partition", "0|1@1-2"])


def test_a_bad_workers_option_exits_with_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(APP), "-n", "2",
                           "--in-process", "--workers", "3"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=LIVENESS)
    assert done.returncode == 2
    assert "--workers 3 is more workers than the 2 node(s)" in done.stderr


def test_ctrl_c_stops_every_worker(tmp_path):
    first = free_port_range(3 * 4)
    proc = subprocess.Popen([sys.executable, "-m", "splay.cli", "run", str(APP), "-n", "4",
                             "--first-port", str(first), "--in-process", "--workers", "2",
                             "--log", str(tmp_path / "run.log"), "--", f"base={first + 4}",
                             "mode=hang"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        seen = {}                                    # node -> its process's pid
        for line in proc.stdout:
            found = re.match(r"\[node (\d+)\] pid (\d+)", line)
            if found:
                seen[found.group(1)] = int(found.group(2))
            if len(seen) == 4:
                break
        pids = set(seen.values())
        assert len(pids) == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "SIGINT: stopping all nodes" in err and "stopped" in err
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

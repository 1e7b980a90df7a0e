"""splay run --maelstrom: Maelstrom programs (subprocesses speaking JSON on stdin/stdout) and
splay.maelstrom.Node applications on pysplay nodes, judged by the workload's checker."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splay.deploy.testbed import free_port_range
from splay.maelstrom import messages, services, workloads

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
NODE = ROOT / "tests" / "maelstrom_node.py"
EXAMPLES = ROOT / "examples" / "maelstrom"
QUICK = ["--workload-time", "1.5", "--recovery", "1", "--op-timeout", "0.5", "--init-timeout",
         "3", "--quiet"]


def maelstrom(tmp_path, workload, *args, n=3):
    cmd = [sys.executable, "-m", "splay.cli", "run", "--maelstrom", workload, "-n", str(n),
           "--log-dir", str(tmp_path), "--first-port", str(free_port_range(n)), *QUICK,
           *map(str, args)]
    return subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)


def history(tmp_path):
    return [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]


def test_echo_program_in_process(tmp_path):
    run = maelstrom(tmp_path, "echo", "--bin", NODE, "--in-process", "--rate", 40)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("echo: VALID")
    records = history(tmp_path)
    assert {r["f"] for r in records} == {"echo"} and len(records) >= 20
    assert (tmp_path / "history.html").exists()


def test_a_program_handing_out_one_id_twice_is_caught(tmp_path):
    run = maelstrom(tmp_path, "unique-ids", "--bin", f"{NODE} --same-ids", "--in-process")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "unique-ids: INVALID" in run.stdout and "duplicate-id" in run.stdout


def test_broadcast_survives_a_partition_one_process_per_node(tmp_path):
    run = maelstrom(tmp_path, "broadcast", "--bin", EXAMPLES / "broadcast.py", "--rate", 20,
                    "--partition", "0-1|2-3@1-2.5", n=4)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("broadcast: VALID")
    assert "final reads: 4" in run.stdout
    log = (tmp_path / "splay-run.log").read_text()
    assert "dropped" in log          # the partition did cut messages


def test_a_broadcast_that_never_gossips_is_caught(tmp_path):
    run = maelstrom(tmp_path, "broadcast", "--bin", f"{NODE} --lonely", "--in-process",
                    "--rate", 20)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "broadcast: INVALID" in run.stdout and "anomaly lost" in run.stdout


def test_g_counter_crdt_example(tmp_path):
    run = maelstrom(tmp_path, "g-counter", "--bin", EXAMPLES / "g_counter.py", "--in-process",
                    "--rate", 30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("g-counter: VALID")


def test_lin_kv_through_the_lin_kv_service_is_linearizable(tmp_path):
    run = maelstrom(tmp_path, "lin-kv", "--bin", NODE, "--in-process", "--rate", 40)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("lin-kv: VALID")
    assert any(r["type"] == "fail" and r["f"] == "cas" for r in history(tmp_path))


def test_the_broken_lin_kv_example_is_caught_with_a_counterexample(tmp_path):
    run = maelstrom(tmp_path, "lin-kv", "--bin", EXAMPLES / "broken_lin_kv.py", "--in-process",
                    "--rate", 60, "--keys", 1, "--workload-time", 3)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "lin-kv: INVALID" in run.stdout
    assert "counterexample:" in run.stdout and "no order lets" in run.stdout
    page = (tmp_path / "history.html").read_text()
    assert "Counterexample" in page and "<svg" in page


def test_a_pysplay_node_application_serves_the_messages_itself(tmp_path):
    app = ROOT / "tests" / "maelstrom_echo_app.py"
    run = maelstrom(tmp_path, "broadcast", "--app", app, "--in-process", "--rate", 20)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("broadcast: VALID")
    run = maelstrom(tmp_path, "echo", "--app", app, "--in-process", "--rate", 20)
    assert run.returncode == 0 and run.stdout.startswith("echo: VALID")


def test_the_kafka_example_keeps_one_log_and_the_broken_one_is_caught(tmp_path):
    run = maelstrom(tmp_path, "kafka", "--app", EXAMPLES / "kafka_node.py", "--in-process",
                    "--rate", 40)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("kafka: VALID")
    fs = {r["f"] for r in history(tmp_path)}
    assert fs == {"send", "poll", "commit_offsets", "list_committed_offsets"}
    run = maelstrom(tmp_path, "kafka", "--app", EXAMPLES / "broken_kafka_node.py", "--in-process",
                    "--rate", 40)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "kafka: INVALID" in run.stdout and "anomaly duplicate-offset" in run.stdout


def test_the_txn_example_is_serializable_and_the_broken_one_shows_a_cycle(tmp_path):
    run = maelstrom(tmp_path, "txn-list-append", "--app", EXAMPLES / "txn_node.py",
                    "--in-process", "--rate", 60, "--keys", 2)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("list-append: VALID")
    run = maelstrom(tmp_path, "txn-list-append", "--app", EXAMPLES / "broken_txn_node.py",
                    "--in-process", "--rate", 60, "--keys", 2, "--workload-time", 3)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "list-append: INVALID" in run.stdout
    assert "counterexample:" in run.stdout and "a cycle of" in run.stdout
    assert "-rw(" in run.stdout or "-wr(" in run.stdout
    page = (tmp_path / "history.html").read_text()
    assert "Counterexample" in page


def test_lines_that_are_not_messages_are_counted_and_the_run_goes_on(tmp_path):
    run = maelstrom(tmp_path, "echo", "--bin", f"{NODE} --garbage", "--in-process")
    assert run.returncode == 0, run.stdout + run.stderr
    log = (tmp_path / "splay-run.log").read_text()
    assert "wrote a line that is not a message" in log


def test_a_program_that_never_answers_init_fails_the_run_clearly(tmp_path):
    run = maelstrom(tmp_path, "echo", "--bin", f"{NODE} --mute", "--in-process")
    assert run.returncode != 0
    log = (tmp_path / "splay-run.log").read_text()
    assert "did not answer init with init_ok" in log


@pytest.mark.parametrize("args, message", [
    (["--maelstrom", "queue", "--bin", "true"], "invalid choice"),
    (["--maelstrom", "echo", "--bin", "./no-such-program"], "no such executable program"),
    (["--maelstrom", "echo"], "one of the arguments --bin --app is required"),
])
def test_bad_command_lines(tmp_path, args, message):
    run = subprocess.run([sys.executable, "-m", "splay.cli", "run", *args], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr


@pytest.mark.parametrize("line, message", [
    (b"{", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"src": "n1", "body": {"type": "x"}}', "'dest'"),
    (b'{"src": "n1", "dest": "n2", "body": {}}', "'type'"),
    (b"x" * (messages.MAX_LINE + 1), "over the limit"),
])
def test_bad_messages_are_refused_with_the_reason(line, message):
    with pytest.raises(messages.BadMessage, match=message):
        messages.parse(line)


def test_the_key_value_service_answers_as_maelstrom_does():
    kv = services.KeyValueService("lin-kv")
    assert kv.handle({"type": "read", "key": 1, "msg_id": 1}) == \
        {"type": "error", "code": 20, "text": "key does not exist", "in_reply_to": 1}
    assert kv.handle({"type": "write", "key": 1, "value": 5})["type"] == "write_ok"
    assert kv.handle({"type": "cas", "key": 1, "from": 4, "to": 6})["code"] == 22
    assert kv.handle({"type": "cas", "key": 1, "from": 5, "to": 6})["type"] == "cas_ok"
    assert kv.handle({"type": "read", "key": 1})["value"] == 6
    assert kv.handle({"type": "cas", "key": [2, 3], "from": None, "to": 1,
                      "create_if_not_exists": True})["type"] == "cas_ok"
    assert kv.handle({"type": "delete", "key": 1})["code"] == 10
    assert kv.handle({"type": "read"})["code"] == 12


def test_topologies():
    ids = [f"n{i}" for i in range(9)]
    grid = workloads.topology("grid", ids)
    assert sorted(grid["n4"]) == ["n1", "n3", "n5", "n7"] and sorted(grid["n0"]) == ["n1", "n3"]
    assert all(a in grid[b] for a in ids for b in grid[a])     # symmetric
    tree = workloads.topology("tree4", ids)
    assert sorted(tree["n0"]) == ["n1", "n2", "n3", "n4"]
    with pytest.raises(ValueError, match="unknown topology shape"):
        workloads.topology("star", ids)

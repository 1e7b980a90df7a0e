"""splay.history: recording operations in nodes, gathering them from `splay run`, and
`splay check` / `splay history` as real commands."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from splay import events, history
from splay.launch.output import HISTORY_MARKER

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)


def splay(*args, cwd):
    return subprocess.run([sys.executable, "-m", "splay.cli", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


def recorded(capsys, body):
    """Run ``body`` in a SPLAY thread; the history records it printed."""
    events.run(body)
    return history.extract(capsys.readouterr().out.splitlines())


def test_invoke_then_ok_fail_info_are_recorded_in_order(capsys):
    def body():
        op = history.invoke("write", ["x", 1])
        op.ok()
        history.fail(history.invoke("cas", ["x", [0, 2]]), "not 0")
        history.info(history.invoke("read", ["x", None]), "timeout")
    records = recorded(capsys, body)
    assert [(r["type"], r["f"]) for r in records] == [
        ("invoke", "write"), ("ok", "write"), ("invoke", "cas"), ("fail", "cas"),
        ("invoke", "read"), ("info", "read")]
    assert records[3]["error"] == "not 0" and records[5]["error"] == "timeout"
    assert len({r["process"] for r in records}) == 1
    assert all(records[i]["time"] <= records[i + 1]["time"] for i in range(len(records) - 1))


def test_each_thread_is_its_own_process(capsys):
    def body():
        def client(i):
            with history.operation("write", i) as op:
                events.sleep(0.01)
                op.ok()
        threads = [events.thread(lambda i=i: client(i)) for i in range(3)]
        for t in threads:
            t.join()
    records = recorded(capsys, body)
    assert len({r["process"] for r in records}) == 3
    from splay.check import check
    assert check("register", records).valid == "valid"


def test_an_exception_in_an_operation_block_records_an_unknown_outcome(capsys):
    def body():
        with pytest.raises(TimeoutError):
            with history.operation("read", ["x", None]):
                raise TimeoutError("no answer")
    records = recorded(capsys, body)
    assert records[-1]["type"] == "info" and "TimeoutError: no answer" in records[-1]["error"]


@pytest.mark.parametrize("call, message", [
    (lambda: history.invoke("", 1), "non-empty string"),
    (lambda: history.invoke(3, 1), "non-empty string"),
    (lambda: history.invoke("write", {1, 2}), "not JSON data"),
])
def test_bad_operations_are_refused_at_the_call(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_thread_cannot_have_two_operations_pending_or_complete_twice(capsys):
    def body():
        op = history.invoke("write", 1)
        with pytest.raises(ValueError, match="pending"):
            history.invoke("read")
        op.ok()
        with pytest.raises(ValueError, match="already completed"):
            op.ok()
        with pytest.raises(ValueError, match="without completing"):
            with history.operation("read"):
                pass
    recorded(capsys, body)


def test_the_launcher_keeps_history_lines_off_the_console():
    assert HISTORY_MARKER == history.MARKER


@pytest.mark.parametrize("mode", [[], ["--in-process"]])
def test_splay_run_gathers_the_history_and_splay_check_judges_it(tmp_path, mode):
    app = ROOT / "examples" / "kv_checked.py"
    run = splay("run", app, "-n", 4, "--log-dir", tmp_path, *mode, "--", "ops=15", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "[history]" not in run.stdout           # kept off the console...
    assert "[history]" in (tmp_path / "splay-run.log").read_text()   # ...but in the log
    path = tmp_path / "history.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 2 * 15 * 2              # two clients, 15 operations, invoke + completion
    assert {r["node"] for r in records} == {2, 3}
    check = splay("check", "kv", path, "--html", tmp_path / "kv.html", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("kv: VALID")
    assert "timeline" in (tmp_path / "kv.html").read_text()


def test_a_store_reading_from_a_lagging_backup_is_caught(tmp_path):
    app = ROOT / "examples" / "kv_checked.py"
    run = splay("run", app, "-n", 4, "--log-dir", tmp_path, "--in-process", "--",
                "ops=40", "keys=1", "delay=0.2", "stale=1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    check = splay("check", "kv", "history.jsonl", "--json", cwd=tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    result = json.loads(check.stdout)
    assert result["valid"] == "invalid"
    example = result["counterexample"]
    assert example["key"] == "k0" and example["blocked"] is not None
    reads = [o for o in example["ops"] if o["f"] == "read"]
    assert reads, example


def test_splay_check_exit_statuses_and_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"process": 0, "type": "ok", "f": "read"}\n')
    result = splay("check", "register", bad, cwd=tmp_path)
    assert result.returncode == 2 and "never invoked" in result.stderr
    result = splay("check", "register", tmp_path / "missing.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = splay("check", "queue", bad, cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    hard = tmp_path / "hard.jsonl"
    from support_histories import kv_history
    hard.write_text("".join(json.dumps(r) + "\n" for r in kv_history(300, 1, 8, 5, info_rate=0.3)))
    result = splay("check", "kv", hard, "--max-steps", 3, cwd=tmp_path)
    assert result.returncode == 3 and result.stdout.startswith("kv: UNKNOWN")


def test_splay_history_extracts_records_from_a_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text('[node 2] hello\n[node 2] [history] {"process": "2.1", "type": "invoke", '
                   '"f": "read", "value": null, "time": 1}\n')
    out = tmp_path / "h.jsonl"
    result = splay("history", log, "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["f"] == "read"
    log.write_text("[node 2] [history] {not json\n")
    result = splay("history", log, cwd=tmp_path)
    assert result.returncode == 2 and "line 1" in result.stderr

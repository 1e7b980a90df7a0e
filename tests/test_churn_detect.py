"""``--churn FILE`` given a churn script instead of a trace: detected and compiled
(`splay.churn.detect`), for ``splay run`` here and ``splay submit`` in test_deploy_churn.py."""
import os
import subprocess
import sys

import pytest

from splay.churn.detect import compile_command, load_churn, looks_like_trace
from splay.churn.errors import ScriptError, TraceError
from splay.deploy.testbed import free_port_range
from test_deploy_support import PYTHONPATH, ROOT

SCRIPT = "# two nodes, one leaves\nat 0s join 2\nat 1s leave 1\nat 2s stop\n"

# Says it is up, then stays up until the trace stops it.
APP = "import time, splay\nprint('up', splay.job.position, flush=True)\ntime.sleep(60)\n"


def write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, is_trace", [
    ("0 5\n1\n", True), ("# comment\n\n  12.5 20\n", True), ("# nothing\n", True),
    ("at 30s join 10\n", False), ("# a script\nfrom 5m to 10m inc 10\n", False),
    ("soon 5\n", False),
])
def test_the_first_word_tells_a_trace_from_a_script(text, is_trace):
    assert looks_like_trace(text) is is_trace


def test_a_script_is_compiled_with_its_summary_and_a_trace_read_as_is(tmp_path):
    loaded = load_churn(write(tmp_path, "small.churn", SCRIPT))
    assert loaded.compiled and loaded.schedule.nodes == 2
    assert loaded.trace_text == "0 2\n0 1\n"
    assert "is a churn script, compiled with seed 0" in loaded.notes[0]
    assert any("at 1s leave 1" in note and "1 up at 1s" in note for note in loaded.notes)
    assert "2 nodes, 4 up/down events" in loaded.notes[-1]
    paper = load_churn(os.path.join(ROOT, "examples", "churn", "paper.churn"))
    assert paper.compiled and paper.schedule.nodes > 10
    trace = load_churn(write(tmp_path, "trace.txt", "0 2\n0 1\n"))
    assert not trace.compiled and trace.notes == [] and trace.schedule.nodes == 2


def test_a_broken_script_names_its_line_and_the_command_that_compiles_it(tmp_path):
    path = write(tmp_path, "typo.churn", "at 0s jion 2\n")
    with pytest.raises(ScriptError) as error:
        load_churn(path)
    assert f"{path}:1:7:" in str(error.value) and "'jion'" in str(error.value)
    assert compile_command(path) in str(error.value)
    assert compile_command(path) == f"splay churn {path} -o {path}.trace"
    with pytest.raises(TraceError, match="'x' is not a time"):
        load_churn(write(tmp_path, "bad.txt", "0 x\n"))


def splay_run(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    return subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "--log", "run.log",
                           "--quiet", "--first-port", str(free_port_range(2)), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_splay_run_churn_compiles_a_script_and_replays_it(tmp_path):
    write(tmp_path, "app.py", APP)
    write(tmp_path, "small.churn", SCRIPT)
    done = splay_run(tmp_path, "--churn", "small.churn")
    assert done.returncode == 0, done.stderr
    assert "splay run: small.churn is a churn script, compiled with seed 0" in done.stderr
    assert "at 1s leave 1" in done.stderr
    log = (tmp_path / "run.log").read_text()
    assert "up 0" in log and "up 1" in log


def test_splay_run_churn_refuses_a_broken_script_with_the_compile_command(tmp_path):
    write(tmp_path, "app.py", APP)
    write(tmp_path, "typo.churn", "at 0s jion 2\n")
    done = splay_run(tmp_path, "--churn", "typo.churn")
    assert done.returncode == 2
    assert "typo.churn:1:7" in done.stderr and "splay churn typo.churn -o typo.churn.trace" in done.stderr

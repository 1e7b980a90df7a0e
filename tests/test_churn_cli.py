"""``splay churn`` run as a real command (``python -m splay.cli churn ...``)."""
import os
import subprocess
import sys
from pathlib import Path

from splay.churn.trace import read_trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "churn"


def splay_churn(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), str(ROOT)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", "splay.cli", "churn", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=60)


def test_compile_the_paper_script_to_a_trace_file(tmp_path):
    output = tmp_path / "paper.trace"
    result = splay_churn(EXAMPLES / "paper.churn", "-o", output)
    assert result.returncode == 0, result.stderr
    schedule = read_trace(output)
    assert schedule.population_at(600) == 20 and schedule.population_at(1200) == 0
    assert "population after each instruction" in result.stdout
    assert "at 30s join 10" in result.stdout and "10 up at 30s" in result.stdout
    assert "20 up at 10m" in result.stdout
    assert "peak population 20" in result.stdout


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    paths = [tmp_path / name for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6)):
        assert splay_churn(EXAMPLES / "paper.churn", "-o", path, "--seed", seed).returncode == 0
    assert paths[0].read_text() == paths[1].read_text()
    assert paths[0].read_text() != paths[2].read_text()


def test_without_output_the_trace_goes_to_stdout_and_the_summary_to_stderr():
    result = splay_churn(EXAMPLES / "paper.churn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[0] == "30"
    assert "population after each instruction" in result.stderr


def test_plot_population_draws_a_chart(tmp_path):
    result = splay_churn(EXAMPLES / "paper.churn", "-o", tmp_path / "t", "--plot-population")
    assert result.returncode == 0
    bars = [line for line in result.stdout.splitlines() if "|" in line]
    assert len(bars) > 10
    assert any(line.rstrip().endswith("#" * 50 + " 20") for line in bars)


def test_bad_script_exits_2_with_file_line_column(tmp_path):
    script = tmp_path / "bad.churn"
    script.write_text("at 30s join 10\nat 1m jion 3\n")
    result = splay_churn(script, "-o", tmp_path / "never")
    assert result.returncode == 2
    assert f"{script}:2:7: expected an action" in result.stderr
    assert not (tmp_path / "never").exists()


def test_from_availability(tmp_path):
    output = tmp_path / "avail.trace"
    result = splay_churn("--from-availability", EXAMPLES / "availability.txt", "-o", output)
    assert result.returncode == 0, result.stderr
    assert "converted 3 nodes" in result.stdout
    assert read_trace(output).times(0) == (0.0, 1200.0, 2700.0)


def test_bad_availability_exits_2(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("a 0 up\na 10 sideways\n")
    result = splay_churn("--from-availability", log, "-o", tmp_path / "t")
    assert result.returncode == 2
    assert f"{log}:2:6:" in result.stderr


def test_check_a_trace(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("0 10\n5\n")
    bad.write_text("0 10\n5 3\n")
    result = splay_churn("--check", good)
    assert result.returncode == 0 and "a valid churn trace" in result.stdout and "2 nodes" in result.stdout
    result = splay_churn("--check", bad)
    assert result.returncode == 2 and f"{bad}:2:3: time 3 is not after" in result.stderr


def test_missing_file_and_missing_arguments_exit_2(tmp_path):
    result = splay_churn(tmp_path / "nope.churn", "-o", tmp_path / "t")
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = splay_churn()
    assert result.returncode == 2 and "exactly one of" in result.stderr
    result = splay_churn("--check", EXAMPLES / "paper.churn", "-o", tmp_path / "t")
    assert result.returncode == 2 and "writes none" in result.stderr

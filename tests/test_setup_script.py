"""`make setup` (scripts/setup.sh and the Makefile's stamp): one progress line per step, tools'
output in build/setup.log which an error points to, and no set-up when no source changed."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout(tmp_path):
    """A copy of what `make setup` looks at: the Makefile, the scripts, the build inputs."""
    for name in ("Makefile", "setup.py", "pyproject.toml", "scripts/setup.sh", "splayc/hub.pyx"):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    return tmp_path


def test_a_failing_step_says_which_and_points_to_the_log(tmp_path):
    repo = checkout(tmp_path)
    result = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, capture_output=True, text=True,
                            env=dict(os.environ, PYTHON=str(tmp_path / "no-python")), timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("setup [1/4] system packages")
    assert lines[1] == "setup [2/4] build requirements (Cython, greenlet) ... FAILED"
    assert "the full output is in build/setup.log" in lines[2]
    assert "no-python: No such file or directory" in result.stderr       # the log's end
    assert "no-python" in (repo / "build" / "setup.log").read_text()


def test_make_setup_runs_only_when_a_source_changed(tmp_path):
    repo = checkout(tmp_path)
    os.makedirs(repo / "build")
    stamp = repo / "build" / ".setup-done"
    stamp.touch()
    newer = os.stat(stamp).st_mtime + 10
    os.utime(stamp, (newer, newer))                # the last set-up came after every source
    dry = lambda: subprocess.run(["make", "-n", "setup"], cwd=repo, capture_output=True,
                                 text=True, timeout=30).stdout
    assert "setup.sh" not in dry()
    later = newer + 10
    os.utime(repo / "splayc" / "hub.pyx", (later, later))       # a source of the core changed
    assert "bash scripts/setup.sh" in dry()

"""The node runner ``python -m splay.launch.node APP.py [args...]``: job from SPLAY_JOB, exit status."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from splay import utils
from splay.job import ENV_VAR

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The app prints what it sees of its job as one JSON line.
SHOW_JOB = """
    import json, os, sys
    import splay
    from splay.job import Job          # importing the module must not hide the job
    j = splay.job
    print(json.dumps(None if j is None else {
        "type": type(j).__name__, "position": j.position, "me": list(j.me),
        "nodes": [list(n) for n in j.nodes()], "list_type": j.list_type, "ref": j.ref,
        "name": j.name, "settings": j.settings, "dir": j.dir,
        "argv": sys.argv, "cwd": os.getcwd(), "main": __name__, "path0": sys.path[0]}))
"""


def write_app(tmp_path, body, name="app.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run_node(app, *args, job=None, env_extra=None, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    env.pop(ENV_VAR, None)
    if job is not None:
        env[ENV_VAR] = job if isinstance(job, str) else job.to_json()
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "splay.launch.node", str(app), *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def test_runs_app_with_its_job(tmp_path):
    app = write_app(tmp_path, SHOW_JOB)
    job = utils.generate_job(2, 4, first_port=31000, ref="ref-1", name="demo", settings={"max_sockets": 8})
    out = run_node(app, "a", "-b", job=job, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["type"] == "Job" and seen["position"] == 2
    assert seen["me"] == ["127.0.0.1", 31002]
    assert seen["nodes"] == [["127.0.0.1", 31000 + i] for i in range(4)]
    assert (seen["list_type"], seen["ref"], seen["name"]) == ("head", "ref-1", "demo")
    assert seen["settings"] == {"max_sockets": 8}
    assert seen["argv"] == [str(app), "a", "-b"]
    assert seen["main"] == "__main__"
    assert seen["path0"] == str(tmp_path)


def test_without_splay_job_the_job_is_none(tmp_path):
    app = write_app(tmp_path, SHOW_JOB)
    out = run_node(app)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "null"


def test_changes_into_the_job_dir(tmp_path):
    app = write_app(tmp_path, SHOW_JOB)
    workdir = tmp_path / "node-0"
    workdir.mkdir()
    out = run_node(app, job=utils.generate_job(0, 1, dir=str(workdir)))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["cwd"] == str(workdir) and seen["dir"] == str(workdir)


def test_uncaught_exception_exits_1_with_the_apps_traceback(tmp_path):
    app = write_app(tmp_path, """
        def fail():
            raise KeyError("lost key")
        print("before")
        fail()
    """)
    out = run_node(app, job=utils.generate_job(0, 1))
    assert out.returncode == 1
    assert out.stdout == "before\n"
    assert out.stderr.startswith("Traceback (most recent call last):")
    assert f'File "{app}", line 5' in out.stderr and "KeyError: 'lost key'" in out.stderr
    assert "runpy" not in out.stderr        # the runner's own frames are left out


def test_sys_exit_status_is_kept(tmp_path):
    app = write_app(tmp_path, "import sys\nsys.exit(7)\n")
    assert run_node(app).returncode == 7


def test_missing_app_file(tmp_path):
    out = run_node(tmp_path / "nope.py")
    assert out.returncode == 2
    assert "application file" in out.stderr and "not found" in out.stderr


def test_no_arguments_prints_usage():
    out = subprocess.run([sys.executable, "-m", "splay.launch.node"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT / "python") + os.pathsep + str(ROOT)))
    assert out.returncode == 2 and "usage: python -m splay.launch.node APP.py" in out.stderr


@pytest.mark.parametrize("text, message", [
    ("{not json", "SPLAY_JOB: job is not valid JSON"),
    ('{"position": 0, "nodes": []}', "missing required key(s) me"),
    ('{"me": {"ip": "127.0.0.1", "port": 1}, "position": 0, "nodes": [], "list_type": "x"}',
     "list_type must be 'head' or 'random'"),
])
def test_malformed_splay_job_is_refused(tmp_path, text, message):
    app = write_app(tmp_path, "print('ran')\n")
    out = run_node(app, job=text)
    assert out.returncode == 2
    assert message in out.stderr and "ran" not in out.stdout


def test_missing_job_dir_is_refused(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    out = run_node(app, job=utils.generate_job(0, 1, dir=str(tmp_path / "missing")))
    assert out.returncode == 2 and "cannot enter the job directory" in out.stderr
    assert "ran" not in out.stdout


def test_sandbox_without_dir_is_refused(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    out = run_node(app, job=utils.generate_job(0, 1, sandbox={}))
    assert out.returncode == 2 and "gives no 'dir'" in out.stderr and "ran" not in out.stdout


def test_sandbox_that_cannot_be_applied_never_runs_the_app(tmp_path):
    app = write_app(tmp_path, "print('ran')\n")
    out = run_node(app, job=utils.generate_job(0, 1, dir=str(tmp_path), sandbox={"no_such_limit": 1}))
    assert out.returncode == 2
    assert "cannot confine the node as its job asks" in out.stderr and "no_such_limit" in out.stderr
    assert "ran" not in out.stdout

"""Not a hostile job: runs the jobs of this folder under ``python -m splay.sandbox.run`` for the tests."""
import os
import subprocess
import sys

# tests/hostile/runner.py -> the checkout root
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTILE = os.path.join(ROOT, "tests", "hostile")
# Generous: jobs start a Python interpreter each, on a busy 2-core machine.
JOB_TIMEOUT = 60


def job_env():
    """The environment of a job process: this one, with pysplay importable and a secret to hide."""
    paths = [os.path.join(ROOT, "python"), ROOT]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "SPLAY_TEST_SECRET": "hunter2"}


def sandbox_command(script, directory, *args, options=()):
    """The command line running ``script`` (a name in tests/hostile or a path) confined to ``directory``."""
    path = script if os.path.isabs(script) else os.path.join(HOSTILE, script)
    return [sys.executable, "-m", "splay.sandbox.run", "--dir", str(directory), *options, path, *map(str, args)]


def run_job(script, directory, *args, options=(), pass_fds=(), timeout=JOB_TIMEOUT):
    """Run a confined job to its end; returns the CompletedProcess (text stdout and stderr).

    subprocess.run kills the job if it outlives ``timeout``, so no test leaves it behind.
    """
    return subprocess.run(sandbox_command(script, directory, *args, options=options), cwd=ROOT,
                          env=job_env(), capture_output=True, text=True, timeout=timeout,
                          pass_fds=pass_fds, stdin=subprocess.DEVNULL)


def splay_run_job(script, workdir, *args, options=(), timeout=JOB_TIMEOUT):
    """Run ``script`` as the one node of ``splay run --sandbox`` started in ``workdir``.

    The node's directory is ``workdir/splay-run-nodes/node-0``; its output lines come prefixed
    with ``[node 0] ``. Returns the CompletedProcess of the launcher.
    """
    path = script if os.path.isabs(script) else os.path.join(HOSTILE, script)
    command = [sys.executable, "-m", "splay.cli", "run", path, "--sandbox", *options]
    if args:
        command += ["--", *map(str, args)]
    return subprocess.run(command, cwd=workdir, env=job_env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)

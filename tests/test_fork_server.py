"""The fork server of ``splay run`` (splay.launch.fork_server): nodes forked from a pre-imported
parent behave as if started as new interpreters -- the launcher's children, in their own session,
with their environment, directory, arguments, output, exit status and parent-death signal."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from splay.launch.fork_server import (TWICE_ENV, ForkServer, ForkServerError, forkable,
                                      set_subreaper)
from splay.launch.processes import node_environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["one fork", "two forks"])
def server(request, monkeypatch):
    # One fork with CLONE_PARENT (the default), and the two-fork path kept for kernels that refuse it.
    if request.param == "two forks":
        monkeypatch.setenv(TWICE_ENV, "1")
    s = ForkServer(sys.executable, node_environment()).start()
    yield s
    s.close()
    set_subreaper(False)


def _module(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def _env(tmp_path, **extra):
    env = node_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    env.update(extra)
    return env


def test_a_forked_node_is_the_launchers_child_in_its_own_session(server, tmp_path):
    name = _module(tmp_path, "probe_ids", """
        import json, os, sys
        print(json.dumps({"ppid": os.getppid(), "sid": os.getsid(0), "pid": os.getpid(),
                          "argv": sys.argv[1:], "cwd": os.getcwd(), "x": os.environ.get("X"),
                          "name": __name__, "ctypes": "ctypes" in sys.modules}))
        print("to stderr", file=sys.stderr)
        """)
    proc = server.spawn(name, ["a", "b c"], _env(tmp_path, X="42"), cwd=str(tmp_path))
    out = proc.stdout.read().decode().splitlines()
    assert proc.wait() == 0
    seen = json.loads(out[0])
    assert seen == {"ppid": os.getpid(), "sid": proc.pid, "pid": proc.pid, "argv": ["a", "b c"],
                    "cwd": str(tmp_path), "x": "42", "name": "__main__", "ctypes": False}
    assert out[1] == "to stderr"                     # stderr is merged into the node's output


def test_a_pysplay_runner_runs_from_the_servers_code_with_the_servers_objects_frozen(server, tmp_path):
    # splay.launch.node is compiled once by the server and run as __main__ from that code object,
    # as `python -m splay.launch.node APP` would run it; the preloaded objects are out of the
    # collector's reach (gc.freeze), so a node's collections do not copy the pages they share.
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import gc, json, sys
        print(json.dumps({"argv": sys.argv, "frozen": gc.get_freeze_count() > 1000}))
        """))
    outputs = []
    for _ in range(2):                               # the second node reuses the prepared code
        proc = server.spawn("splay.launch.node", [str(app), "x"], _env(tmp_path), cwd=str(tmp_path))
        outputs.append(json.loads(proc.stdout.read().decode().splitlines()[-1]))
        assert proc.wait() == 0
    assert outputs[0] == outputs[1] == {"argv": [str(app), "x"], "frozen": True}


@pytest.mark.parametrize("body, status", [
    ("pass", 0),
    ("import sys; sys.exit(3)", 3),
    ("raise ValueError('boom')", 1),
    ("import sys; sys.exit('a message')", 1),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
])
def test_exit_statuses_are_those_of_a_new_interpreter(server, tmp_path, body, status):
    name = _module(tmp_path, "ends", body)
    proc = server.spawn(name, [], _env(tmp_path))
    output = proc.stdout.read().decode()
    assert proc.wait() == status
    if status == 1:
        assert "boom" in output or "a message" in output


def test_a_gated_node_reads_its_stdin_and_a_passed_descriptor_is_named_to_it(server, tmp_path):
    name = _module(tmp_path, "gated", """
        import os, sys
        line = sys.stdin.readline().strip()
        fd = int(os.environ["PROBE_FD"])
        os.write(fd, b"through the descriptor")
        print("read", line)
        """)
    r, w = os.pipe()
    proc = server.spawn(name, [], _env(tmp_path), stdin=True, fd_env={"PROBE_FD": w})
    os.close(w)
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    assert proc.stdout.read().decode().strip() == "read go"
    assert proc.wait() == 0
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"through the descriptor"


def test_nodes_die_with_the_launcher(tmp_path):
    """SIGKILL of the launcher takes its forked nodes down (PR_SET_PDEATHSIG towards it)."""
    _module(tmp_path, "sleeper", "import time; time.sleep(60)")
    launcher = _module(tmp_path, "launcher", f"""
        import sys
        sys.path[:0] = [{os.path.join(ROOT, 'python')!r}, {ROOT!r}, {str(tmp_path)!r}]
        from splay.launch.fork_server import ForkServer
        from splay.launch.processes import node_environment
        env = node_environment()
        env["PYTHONPATH"] = {str(tmp_path)!r} + ":" + env["PYTHONPATH"]
        server = ForkServer(sys.executable, env).start()
        proc = server.spawn("sleeper", [], env)
        print(proc.pid, flush=True)
        sys.stdin.read()
        """)
    outer = subprocess.Popen([sys.executable, str(tmp_path / f"{launcher}.py")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(outer.stdout.readline())
    pidfd = os.pidfd_open(pid)
    outer.kill()
    outer.wait()
    import select
    assert select.select([pidfd], [], [], 30)[0] == [pidfd]     # the node ended
    os.close(pidfd)


def test_only_python_dash_m_commands_are_forked():
    py = sys.executable
    assert forkable([py, "-m", "splay.launch.node", "app.py", "x"], py) == \
        ("splay.launch.node", ["app.py", "x"])
    assert forkable(["/other/python", "-m", "splay.launch.node"], py) is None
    assert forkable([py, "app.py"], py) is None


@pytest.mark.parametrize("python, reason", [
    ("/bin/false", r"the fork server ended \(status 1\)"),       # ends without saying ready
    ("/nonexistent/python3", r"cannot be started with '/nonexistent/python3'"),
])
def test_a_server_that_cannot_start_says_why(python, reason):
    broken = ForkServer(python, node_environment())
    try:
        with pytest.raises(ForkServerError, match=reason):
            broken.start()
    finally:
        broken.close()
        set_subreaper(False)


def test_splay_run_forks_its_nodes_and_the_flag_turns_it_off(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import os, sys
        from splay.base import job
        print("node", job.position, "parent", os.getppid(), "interpreter", "splay" in sys.modules)
        """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    for flags in ([], ["--no-fork-server"]):
        run = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", "4",
                              "--log", str(tmp_path / "run.log"), *flags],
                             env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        lines = sorted(line for line in run.stdout.splitlines() if "] node " in line)
        assert [line.split()[3] for line in lines] == ["0", "1", "2", "3"]
        assert "fork server" not in run.stderr

"""splay.sandbox: what a confined job can still do, the report, the arguments, and each kernel wall.

Confinement is irreversible, so every test confines a child process (``python -m splay.sandbox.run``
or a small ``python -c`` program), never the test process itself.
"""
import json
import os
import py_compile
import subprocess
import sys
import textwrap

import pytest

from hostile.runner import ROOT, job_env, run_job, sandbox_command
from splay.sandbox import kernel as kernel_walls

KERNEL = kernel_walls.detect()
LANDLOCK_ABI = kernel_walls.landlock_abi()
needs_landlock = pytest.mark.skipif(LANDLOCK_ABI < 1, reason="the kernel has no Landlock")
needs_x86_64 = pytest.mark.skipif(not KERNEL["machine_supported"], reason="seccomp filter is x86-64 only")


def write_job(tmp_path, source, name="app.py"):
    """Write a job script beside the job directory (the runner makes it readable)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def report_of(job):
    """The confinement report printed by ``--report``."""
    for line in job.stderr.splitlines():
        if line.startswith("splay.sandbox: {"):
            return json.loads(line.split(": ", 1)[1])
    raise AssertionError(f"no report on stderr: {job.stderr}")


def run_python(code, timeout=60):
    """Run ``code`` in a fresh interpreter with pysplay importable."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=job_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_report_says_what_is_active_here(tmp_path):
    app = write_job(tmp_path, "print('ran')\n")
    job = run_job(str(app), tmp_path / "job", options=("--report", "--max-memory", "1g", "--max-cpu", "30",
                                                       "--max-files", "100", "--max-disk", "10m"))
    assert job.returncode == 0, job.stderr
    assert job.stdout == "ran\n"
    report = report_of(job)
    assert report["directory"] == str((tmp_path / "job").resolve())
    assert report["audit_hook"] is True and report["environment_hidden"] is True
    assert report["rlimits"] == {"core": 0, "memory": 1 << 30, "cpu": 30.0, "files": 100, "disk_per_file": 10 << 20}
    assert report["no_new_privs"] is KERNEL["machine_supported"]
    assert report["seccomp"] is KERNEL["machine_supported"]
    assert report["capabilities_dropped"] is (KERNEL["machine_supported"] and os.getuid() == 0)
    if LANDLOCK_ABI:
        assert report["landlock"]["abi"] == LANDLOCK_ABI
        assert report["landlock"]["rules"] > 0
    else:
        assert report["landlock"] is False and "landlock" in report["reason"]
    # private namespaces need root with CAP_SYS_ADMIN (a container may refuse them): active or explained
    assert report["namespaces"] == ["ipc", "uts"] or report["reason"]["namespaces"]


def test_job_has_its_own_ipc_and_uts_namespaces(tmp_path):
    app = write_job(tmp_path, "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n")
    job = subprocess.Popen(sandbox_command(str(app), tmp_path / "job", options=("--report",)), cwd=ROOT,
                           env=job_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        report = json.loads(job.stderr.readline().split(": ", 1)[1])
        if not report["namespaces"]:
            pytest.skip(f"no private namespaces here: {report['reason']['namespaces']}")
        assert job.stdout.readline() == "ready\n"
        for name in ("ipc", "uts"):
            assert os.readlink(f"/proc/{job.pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
        assert os.readlink(f"/proc/{job.pid}/ns/net") == os.readlink("/proc/self/ns/net")
        job.communicate("done\n", timeout=60)
        assert job.returncode == 0
        assert report["namespaces"] == ["ipc", "uts"]
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()


def test_no_kernel_report_gives_the_reason(tmp_path):
    app = write_job(tmp_path, "print('ran')\n")
    job = run_job(str(app), tmp_path / "job", options=("--report", "--no-kernel"))
    report = report_of(job)
    assert job.returncode == 0
    assert report["seccomp"] is False and report["landlock"] is False
    assert report["reason"]["seccomp"] == "kernel=False: kernel mechanisms skipped"


def test_without_the_compiled_syscalls_module_the_kernel_walls_are_reported_missing(tmp_path):
    job = run_python(f"""\
        import sys
        sys.modules["splayc.syscalls"] = None           # as when the core was built without it
        from splay.sandbox import confine
        report = confine({str(tmp_path / 'job')!r})
        print(report["audit_hook"], report["seccomp"], report["landlock"], report["no_new_privs"])
        print(report["reason"]["seccomp"])
        """)
    assert job.returncode == 0, job.stderr
    lines = job.stdout.splitlines()
    assert lines[0] == "True False False False"
    if KERNEL["machine_supported"]:
        assert lines[1].startswith("the compiled module splayc.syscalls is not available (")
        assert lines[1].endswith("build the core with `python setup.py build_ext --inplace`")


def test_ordinary_job_code_keeps_working(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "helper.py").write_text("def twice(x):\n    return 2 * x\n")
    # A module deployed with its __pycache__: the cache says "bytecode", the source (same size and
    # time stamp, so the cache stays valid) says "source!!", and the job must load the cache.
    cached = tmp_path / "job" / "cached.py"
    cached.write_text("VALUE = 'bytecode'\n")
    py_compile.compile(str(cached))
    stamp = cached.stat().st_mtime_ns
    cached.write_text("VALUE = 'source!!'\n")
    os.utime(cached, ns=(stamp, stamp))
    app = write_job(tmp_path, """\
        import collections, dataclasses, json, pickle, tempfile, threading, traceback
        import helper, cached                           # the job's own modules, deployed with it
        import urllib.parse, fractions                  # stdlib imported after confinement

        Point = collections.namedtuple("Point", "x y")

        @dataclasses.dataclass
        class Config:
            size: int = 3

        print(helper.twice(21), Point(1, 2), Config())
        print(json.loads(json.dumps({"a": [1, 2]})), urllib.parse.quote("a b"), fractions.Fraction(1, 3))
        data = {"set": {1, 2}, "bytes": b"x", "nested": [1.5, None]}
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(data, protocol)) == data
        print("pickle ok")
        with open("result.txt", "w") as f:
            f.write("kept")
        print(open("result.txt").read(), tempfile.gettempdir() == __import__("os").getcwd())
        try:
            {}["missing"]["x"]
        except KeyError:
            assert "KeyError" in traceback.format_exc()
        print("traceback ok")
        results = []
        worker = threading.Thread(target=lambda: results.append(sum(range(10))))
        worker.start(); worker.join()
        print("thread", results)
        print(cached.VALUE)
        """)
    job = run_job(str(app), tmp_path / "job", options=("--max-memory", "1g", "--max-disk", "10m"))
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == [
        "42 Point(x=1, y=2) Config(size=3)",
        "{'a': [1, 2]} a%20b 1/3",
        "pickle ok",
        "kept True",
        "traceback ok",
        "thread [45]",
        "bytecode",
    ]
    assert (tmp_path / "job" / "result.txt").read_text() == "kept"


def test_refusal_ends_only_the_splay_thread_that_tried(tmp_path):
    pytest.importorskip("splayc.hub", reason="needs the compiled core")
    app = write_job(tmp_path, """\
        from splay.base import *
        import os

        def rogue():
            os.system("id")

        def honest():
            events.sleep(0.05)
            print("honest thread still running", flush=True)

        events.run([rogue, honest])
        print("loop ended normally")
        """)
    job = run_job(str(app), tmp_path / "job")
    assert job.returncode == 0, job.stderr
    logged = job.stdout + job.stderr                    # where splay.log writes is its own setting
    assert "rogue" in logged and "sandbox refused running a shell command (os.system)" in logged
    assert job.stdout.splitlines()[-2:] == ["honest thread still running", "loop ended normally"]


def test_job_process_never_loads_ctypes(tmp_path):
    """The kernel walls are made with splayc.syscalls: no ctypes module, and no ctypes type left
    behind in ``object.__subclasses__()`` (a loaded _ctypes cannot be unloaded)."""
    app = write_job(tmp_path, """\
        import sys
        import splay
        from splayc import syscalls

        module_of = type.__dict__["__module__"].__get__
        seen, todo = set(), [object]
        while todo:
            cls = todo.pop()
            if cls not in seen:
                seen.add(cls)
                todo.extend(type.__subclasses__(cls))
        print("modules:", sorted(name for name in sys.modules if "ctypes" in name))
        print("types:", sorted(cls.__name__ for cls in seen if "ctypes" in str(module_of(cls))))
        print("classes walked:", len(seen) > 100)
        for attempt in (lambda: syscalls.prctl(38, 1), lambda: syscalls.landlock_abi_version(),
                        lambda: syscalls.capset(syscalls.LINUX_CAPABILITY_VERSION_3, 0, 0, 0)):
            try:
                print("allowed", attempt())
            except splay.Restricted as error:
                print("refused:", error)
        """)
    job = run_job(str(app), tmp_path / "job")
    assert job.returncode == 0, job.stderr
    why = "the kernel walls are set once, before the job starts"
    assert job.stdout.splitlines() == [
        "modules: []", "types: []", "classes walked: True",
        f"refused: sandbox refused a confinement system call (prctl): {why}",
        f"refused: sandbox refused a confinement system call (landlock_abi_version): {why}",
        f"refused: sandbox refused a confinement system call (capset): {why}",
    ]


def test_uncaught_error_in_job_prints_its_traceback(tmp_path):
    app = write_job(tmp_path, "def f():\n    return {}['x']['y']\nf()\n")
    job = run_job(str(app), tmp_path / "job")
    assert job.returncode == 1
    assert "KeyError: 'x'" in job.stderr
    assert "return {}['x']['y']" in job.stderr           # source lines are still readable


def test_allowed_read_paths_open_only_what_they_name(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("shared data")
    (tmp_path / "private.txt").write_text("private")
    app = write_job(tmp_path, f"""\
        print(open({str(shared / 'data.txt')!r}).read())
        try:
            open({str(tmp_path / 'private.txt')!r})
        except PermissionError as error:
            print("refused:", error)
        """)
    job = run_job(str(app), tmp_path / "job", options=("--allow-read", str(shared)))
    assert job.returncode == 0, job.stderr
    lines = job.stdout.splitlines()
    assert lines[0] == "shared data"
    assert lines[1].startswith(f"refused: sandbox refused reading '{tmp_path / 'private.txt'}'")


def test_environment_is_hidden_and_cannot_be_set(tmp_path):
    app = write_job(tmp_path, """\
        import os, splay
        for attempt in (lambda: os.environ["SPLAY_TEST_SECRET"], lambda: dict(os.environ),
                        lambda: "SPLAY_TEST_SECRET" in os.environ, lambda: os.putenv("X", "1")):
            try:
                print("leaked", attempt())
            except splay.Restricted as error:
                print("refused:", str(error).split(":")[0])
        """)
    job = run_job(str(app), tmp_path / "job")
    assert job.returncode == 0, job.stderr
    assert "hunter2" not in job.stdout and "leaked" not in job.stdout
    assert job.stdout.splitlines() == ["refused: sandbox refused reading the environment (os.environ, os.getenv)"] * 3 \
        + ["refused: sandbox refused changing the environment (os.putenv)"]


def test_restricted_io_in_a_confined_job_is_capped_by_the_confinement(tmp_path):
    app = write_job(tmp_path, """\
        import splay
        from splay import restricted_io as io
        io.init(directory="fs", max_size=10 ** 9, max_file_descriptors=10 ** 6)
        print(io.limits())
        try:
            io.init(directory="/tmp/elsewhere")
        except splay.Restricted as error:
            print("refused:", error)
        """)
    job = run_job(str(app), tmp_path / "job", options=("--max-disk", "1m", "--max-files", "50"))
    assert job.returncode == 0, job.stderr
    lines = job.stdout.splitlines()
    assert lines[0] == "(50, 1048576, None)"
    assert lines[1].startswith("refused: restricted_io.init refused: /tmp/elsewhere is outside the job directory")


def test_confine_twice_is_refused_and_bad_limits_are_rejected(tmp_path):
    job = run_python(f"""\
        import os, splay
        from splay.sandbox import confine, current
        for bad in ({{"max_memory": -1}}, {{"max_cpu": "lots"}}, {{"max_files": 1.5}}):
            try:
                confine({str(tmp_path / 'bad')!r}, **bad)
            except ValueError as error:
                print("ValueError:", error)
        try:
            confine("/")
        except ValueError as error:
            print("ValueError:", str(error).split(" (")[0])
        print("unchanged:", current() is None, os.path.exists({str(tmp_path / 'bad')!r}), os.environ["HOME"] != "")
        confine({str(tmp_path / 'job')!r}, kernel=False)
        try:
            confine({str(tmp_path / 'job')!r}, kernel=False)
        except splay.Restricted as error:
            print("Restricted:", error)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == [
        "ValueError: confine: max_memory must be a positive int or None, got -1",
        "ValueError: confine: max_cpu must be a positive number of seconds or None, got 'lots'",
        "ValueError: confine: max_files must be a positive int or None, got 1.5",
        "ValueError: confine: the job directory / must not contain trusted code",
        "unchanged: True False True",
        f"Restricted: this process is already confined to {(tmp_path / 'job').resolve()}",
    ]


def test_a_job_cannot_make_an_audit_hook_of_its_own(tmp_path):
    """A second hook, with limits of the job's choosing, could be called to redo the disk accounting."""
    app = write_job(tmp_path, """\
        import splay
        from splay.sandbox import audit
        try:
            audit.make_hook(".", read_roots=["/"], code_roots=["/"], code_files=(), max_disk=1 << 40)
        except splay.Restricted as error:
            print("refused:", error)
        """)
    job = run_job(str(app), tmp_path / "job", options=("--max-disk", "1m"))
    assert job.returncode == 0, job.stderr
    assert job.stdout == "refused: sandbox refused making another audit hook: this process has its hook already\n"


def test_runner_command_line_errors_are_clear(tmp_path):
    missing = run_job(str(tmp_path / "nope.py"), tmp_path / "job")
    assert missing.returncode == 2
    assert f"splay.sandbox.run: no such script: {tmp_path / 'nope.py'}" in missing.stderr
    bad_size = run_job(str(tmp_path / "nope.py"), tmp_path / "job", options=("--max-memory", "lots"))
    assert bad_size.returncode == 2
    assert "not a size in bytes: 'lots'" in bad_size.stderr


def test_runner_passes_arguments_and_exit_status(tmp_path):
    app = write_job(tmp_path, "import sys\nprint(sys.argv[1:])\nsys.exit(7)\n")
    job = run_job(str(app), tmp_path / "job", "one", "--two")
    assert job.returncode == 7
    assert job.stdout == "['one', '--two']\n"


@needs_x86_64
def test_seccomp_filter_alone_refuses_fork_and_exec_but_not_threads():
    job = run_python("""\
        import os, threading
        from splay.sandbox import kernel
        kernel.set_no_new_privs()
        kernel.install_seccomp()
        for name, attempt in (("fork", os.fork), ("exec", lambda: os.execv("/bin/true", ["true"]))):
            try:
                attempt()
            except PermissionError as error:
                print(name, "refused:", error.strerror)
        box = []
        t = threading.Thread(target=lambda: box.append("thread ran"))
        t.start(); t.join()
        print(box[0])
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == ["fork refused: Operation not permitted",
                                       "exec refused: Operation not permitted", "thread ran"]


@needs_x86_64
def test_seccomp_filter_alone_refuses_memory_outside_the_address_space():
    job = run_python("""\
        import os
        from splay.sandbox import kernel
        kernel.set_no_new_privs()
        kernel.install_seccomp()
        try:
            os.memfd_create("hog")
        except PermissionError as error:
            print("memfd refused:", error.strerror)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout == "memfd refused: Operation not permitted\n"


@needs_landlock
def test_landlock_alone_confines_files_to_the_job_directory(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    job = run_python(f"""\
        import os
        from splay.sandbox import kernel
        kernel.set_no_new_privs()
        print(kernel.install_landlock({str(job_dir)!r}, read_paths=[], exec_paths=[]))
        with open({str(job_dir / 'inside.txt')!r}, "w") as f:
            f.write("inside")
        print(open({str(job_dir / 'inside.txt')!r}).read())
        for path in ({str(tmp_path / 'outside.txt')!r}, "/etc/passwd"):
            try:
                open(path).read()
            except PermissionError as error:
                print("refused", error.strerror)
        try:
            open({str(tmp_path / 'new.txt')!r}, "w")
        except PermissionError as error:
            print("refused", error.strerror)
        """)
    assert job.returncode == 0, job.stderr
    lines = job.stdout.splitlines()
    assert lines[0].startswith(f"{{'abi': {LANDLOCK_ABI}, ")
    assert lines[1:] == ["inside", "refused Permission denied", "refused Permission denied",
                         "refused Permission denied"]
    assert not (tmp_path / "new.txt").exists()


@needs_landlock
def test_landlock_scope_stops_signals_to_other_processes():
    if LANDLOCK_ABI < 6:
        pytest.skip("signal scoping needs Landlock ABI 6")
    job = run_python("""\
        import os, signal
        from splay.sandbox import kernel
        kernel.set_no_new_privs()
        kernel.install_landlock("/tmp", read_paths=[], exec_paths=[])
        try:
            os.kill(os.getppid(), 0)
        except PermissionError as error:
            print("refused", error.strerror)
        os.kill(os.getpid(), 0)
        print("self ok")
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == ["refused Operation not permitted", "self ok"]

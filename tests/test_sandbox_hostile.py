"""The hostile-jobs suite: each job in tests/hostile tries one escape and is stopped with a clear error.

Every job runs in its own process under ``python -m splay.sandbox.run``. The test checks the exit
status, the message on stderr, and that the attack left no trace (no file written outside, no
program run). A witness job runs through the whole suite and must still answer at the end.
"""
import os
import signal
import subprocess
import sys

import pytest

from hostile.runner import ROOT, job_env, run_job, sandbox_command, splay_run_job
from splay.sandbox import kernel as kernel_walls

# CPU-limit jobs need seconds of CPU time, which a loaded machine hands out slowly: their wall-clock
# limit is only there so that nothing hangs.
CPU_JOB_TIMEOUT = 300
EXIT_RESTRICTED = 3
EXIT_OUT_OF_MEMORY = 4
# What max_disk charges beyond file sizes: one 4 KiB block at least per file, directory and link.
DISK_MARGIN = 64 * 4096
KERNEL = kernel_walls.landlock_abi() > 0 and kernel_walls.detect()["machine_supported"]
needs_kernel_walls = pytest.mark.skipif(not KERNEL, reason="needs Landlock and seccomp (x86-64 Linux)")

# script, extra options, message expected on stderr (the refusal names the action and the limit)
REFUSED = [
    ("read_passwd.py", (), "sandbox refused reading '/etc/passwd': a job reads only inside its directory"),
    ("read_passwd_escape_path.py", (), "sandbox refused reading '/etc/passwd'"),
    ("symlink_escape.py", (), "sandbox refused changing (os.symlink) '/etc/passwd'"),
    ("fork_bomb.py", (), "sandbox refused creating a process (os.fork)"),
    ("spawn_process.py", (), "sandbox refused starting a process (subprocess)"),
    ("import_ctypes.py", (), "sandbox refused importing ctypes"),
    ("globals_import_escape.py", (), "sandbox refused importing ctypes"),
    ("os_system.py", (), "sandbox refused running a shell command (os.system)"),
    ("subclasses_escape.py", (), "sandbox refused running a shell command (os.system)"),
    ("ctypes_through_subclasses.py", (), "sandbox refused importing _ctypes"),
    ("load_ctypes_disguised.py", (), "sandbox refused importing innocent._ctypes"),
    ("load_own_native_code.py", (), "sandbox refused loading the native module _json from"),
    ("read_environment.py", (), "sandbox refused reading the environment"),
    ("getenv.py", (), "sandbox refused reading the environment"),
    ("unpickle_attack.py", (), "sandbox refused unpickling the global posix.system"),
    ("eval_attack.py", (), "sandbox refused compiling new code ('<string>')"),
    ("exec_attack.py", (), "sandbox refused compiling new code ('<string>')"),
    ("write_then_import.py", (), "sandbox refused compiling new code"),
    ("ast_flag_patch.py", (), "sandbox refused compiling new code ('<unknown>')"),
    ("code_replace.py", (), "sandbox refused creating a code object"),
    ("marshal_attack.py", (), "sandbox refused loading marshalled code"),
    ("python_socket.py", (), "sandbox refused creating a Python socket"),
    ("kill_parent.py", (), "sandbox refused signalling process"),
    ("raise_limits.py", ("--max-memory", "1g"), "sandbox refused changing resource limits"),
    ("fill_disk.py", ("--max-disk", "2m"), "the job directory reached its disk limit (max_disk=2097152 bytes)"),
    ("fill_disk_one_file.py", ("--max-disk", "2m"), "the job directory reached its disk limit (max_disk=2097152"),
    ("fill_disk_restricted_io.py", (), "over the limit max_size=1048576"),
    ("cpu_spin.py", ("--max-cpu", "1"), "CPU time limit reached: the job used its max_cpu=1.0 s"),
    ("walk_frames.py", (), "sandbox refused tracing the interpreter (sys.settrace)"),
    ("memfd_hog.py", ("--max-memory", "256m"), "sandbox refused creating a memfd (os.memfd_create)"),
    ("look_outside.py", (), "restricted_io: changing max_size refused: the limits of a confined job are fixed"),
]


@pytest.mark.timeout(CPU_JOB_TIMEOUT + 30)
@pytest.mark.parametrize("script, options, message", REFUSED, ids=[case[0][:-3] for case in REFUSED])
def test_hostile_job_is_stopped_with_a_clear_error(tmp_path, script, options, message):
    job = run_job(script, tmp_path / "job", options=options, timeout=CPU_JOB_TIMEOUT)
    assert job.returncode == EXIT_RESTRICTED, job.stderr
    assert message in job.stderr
    assert "splay.sandbox: job stopped: " in job.stderr
    assert not (tmp_path / "job" / "pwned.txt").exists()      # no command or program ever ran


def test_tampering_with_what_the_hook_uses_changes_nothing(tmp_path):
    job = run_job("tamper_with_the_hook.py", tmp_path / "job")
    assert job.returncode == EXIT_RESTRICTED
    assert "shifty path: RestrictedFileAccess sandbox refused reading '/etc/passwd'" in job.stdout
    assert "job stopped: sandbox refused reading '/etc/passwd'" in job.stderr
    assert "root:" not in job.stdout


@pytest.mark.parametrize("options", [(), ("--no-kernel",)], ids=["kernel", "no-kernel"])
def test_nothing_reachable_from_a_refusal_switches_the_hook_off(tmp_path, options):
    job = run_job("switch_off_the_hook.py", tmp_path / "job", options=options)
    assert job.returncode == 0, job.stderr
    lines = job.stdout.splitlines()
    assert lines[0].startswith("first refusal: sandbox refused reading '/etc/passwd'")
    assert lines[1].endswith("sandbox frames: ['audit_hook.pyx']")     # the compiled hook's, with no locals
    assert lines[2].startswith("sabotaged: {'frames': ")
    assert lines[3:] == [
        "eval refused: sandbox refused compiling new code ('<string>')",
        "exec refused: sandbox refused compiling new code ('<string>')",
        "import ctypes refused: sandbox refused importing ctypes",
        "AF_INET socket refused: sandbox refused creating a Python socket (use splay.socket, the restricted socket layer)",
        "read /etc/passwd refused: sandbox refused reading '/etc/passwd'",
    ]


def test_frames_and_tracing_are_refused_to_the_job(tmp_path):
    job = run_job("walk_frames.py", tmp_path / "job")
    assert job.returncode == EXIT_RESTRICTED, job.stderr
    assert job.stdout.splitlines() == [
        "sys._getframe refused: sandbox refused reaching a stack frame (sys._getframe)",
        "tb_frame refused: sandbox refused reaching a stack frame (.tb_frame)",
        "sys.settrace refused: sandbox refused tracing the interpreter (sys.settrace)",
        "sys.setprofile refused: sandbox refused tracing the interpreter (sys.setprofile)",
        "locale.setlocale allowed: C",
    ]
    assert 'File "splayc/audit_hook.pyx"' in job.stderr           # the traceback still prints


@pytest.mark.parametrize("options", [(), ("--no-kernel",)], ids=["kernel", "no-kernel"])
def test_metadata_outside_the_job_and_other_processes_are_hidden(tmp_path, options):
    job = run_job("look_outside.py", tmp_path / "job", options=options)
    assert job.returncode == EXIT_RESTRICTED, job.stderr
    assert job.stdout.splitlines() == [
        "stat /etc/passwd refused: sandbox refused looking at (stat) '/etc/passwd'",
        "lstat /etc/shadow refused: sandbox refused looking at (lstat) '/etc/shadow'",
        "access /etc/passwd refused: sandbox refused looking at (access) '/etc/passwd'",
        "exists /proc/1 -> False",
        "pathlib exists /etc/passwd refused: sandbox refused looking at (stat) '/etc/passwd'",
        "getsize /etc/passwd refused: sandbox refused looking at (stat) '/etc/passwd'",
        "readlink /proc/1/exe refused: sandbox refused looking at (readlink) '/proc/1/exe'",
        "memfd refused: sandbox refused creating a memfd (os.memfd_create)",
        "re-import posix refused: sandbox refused importing posix again",
        "own file: True True",
    ]
    assert "restricted_io: changing max_size refused" in job.stderr


def test_writing_outside_the_job_directory_leaves_nothing_there(tmp_path):
    target = tmp_path / "outside.txt"
    job = run_job("write_outside.py", tmp_path / "job", target)
    assert job.returncode == EXIT_RESTRICTED
    assert f"sandbox refused writing '{target}'" in job.stderr
    assert not target.exists()


def test_fill_disk_stops_near_the_limit(tmp_path):
    job = run_job("fill_disk.py", tmp_path / "job", options=("--max-disk", "2m"))
    assert job.returncode == EXIT_RESTRICTED
    used = sum(f.stat().st_size for f in (tmp_path / "job").iterdir())
    # the last writer may only fill what is left: the limit is reached, never passed
    assert 2 * 1024 * 1024 - DISK_MARGIN <= used <= 2 * 1024 * 1024


def disk_charge(directory):
    """What max_disk counts for ``directory``: every entry under it, at least one 4 KiB block each."""
    charge = 0
    for top, dirs, files in os.walk(directory):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            charge += max(st.st_size, st.st_blocks * 512, 4096)
    return charge


DISK_TRICKS = {   # trick: (why the job stops, whether it got to fill the directory first)
    "writers": ("the job directory reached its disk limit (max_disk=2097152 bytes)", True),
    "directories": ("the job directory holds its limit max_disk=2097152 bytes", True),
    "symlinks": ("the job directory holds its limit max_disk=2097152 bytes", True),
    # deeper than the descriptors of the accounting walk: refused rather than left uncounted
    "deep": ("the job directory cannot be accounted for max_disk", False),
}


@pytest.mark.parametrize("trick", list(DISK_TRICKS))
def test_max_disk_is_a_total_of_every_byte_and_entry(tmp_path, trick):
    job = run_job("fill_disk_tricks.py", tmp_path / "job", trick, options=("--max-disk", "2m", "--max-files", "128"))
    assert job.returncode == EXIT_RESTRICTED, job.stderr
    assert "ESCAPED" not in job.stdout
    message, filled = DISK_TRICKS[trick]
    assert message in job.stderr.splitlines()[-1]
    # at most one partly written block per open writer beyond the limit
    assert disk_charge(tmp_path / "job") <= 2 * 1024 * 1024 + 64 * 4096
    assert disk_charge(tmp_path / "job") >= 2 * 1024 * 1024 - DISK_MARGIN or not filled


def test_memory_hog_stops_at_the_memory_limit(tmp_path):
    job = run_job("memory_hog.py", tmp_path / "job", options=("--max-memory", "256m"))
    assert job.returncode == EXIT_OUT_OF_MEMORY, job.stderr
    assert "out of memory (limit max_memory=268435456 bytes)" in job.stderr


@pytest.mark.timeout(CPU_JOB_TIMEOUT + 30)
def test_cpu_spinner_that_ignores_the_soft_limit_is_killed(tmp_path):
    job = run_job("cpu_spin_stubborn.py", tmp_path / "job", options=("--max-cpu", "1"), timeout=CPU_JOB_TIMEOUT)
    assert job.returncode == -signal.SIGKILL


def test_refusal_in_one_thread_leaves_the_others_running(tmp_path):
    job = run_job("other_threads_survive.py", tmp_path / "job")
    assert job.returncode == 0, job.stderr
    assert "worker saw: RestrictedFileAccess: sandbox refused reading '/etc/passwd'" in job.stdout
    assert "main thread still running, computed 499500" in job.stdout


def test_no_ctypes_type_is_left_for_the_subclasses_escape(tmp_path):
    job = run_job("ctypes_through_subclasses.py", tmp_path / "job")
    assert job.returncode == EXIT_RESTRICTED, job.stderr
    assert job.stdout == "ctypes types found through object.__subclasses__(): 0\n"
    assert "job stopped: sandbox refused importing _ctypes" in job.stderr


def test_with_ctypes_loaded_before_confinement_the_escape_is_real_and_reported(tmp_path):
    """Why the sandbox must never load ctypes: a launcher that did would hand the job raw memory."""
    preloading_launcher = ("import ctypes, sys\nfrom splay.sandbox.run import main\n"
                           "sys.argv[0] = 'splay.sandbox.run'\nsys.exit(main(sys.argv[1:]))")
    command = sandbox_command("ctypes_through_subclasses.py", tmp_path / "job", options=("--report",))
    job = subprocess.run([command[0], "-c", preloading_launcher, *command[3:]], cwd=ROOT, env=job_env(),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert job.returncode == 0, job.stderr
    assert "escaped: read raw memory at" in job.stdout and "which is id(tuple): True" in job.stdout
    assert "ctypes was loaded before confinement" in job.stderr       # the report's reason["audit_hook"]


@needs_kernel_walls
def test_seccomp_stops_process_creation_the_audit_hook_cannot_see(tmp_path):
    job = run_job("raw_fork_exec.py", tmp_path / "job")
    assert job.returncode == 1
    assert "PermissionError: [Errno 1] Operation not permitted" in job.stderr
    assert "started process" not in job.stdout
    assert not (tmp_path / "job" / "pwned.txt").exists()


@needs_kernel_walls
def test_landlock_stops_file_access_the_audit_hook_cannot_see(tmp_path):
    etc = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        job = run_job("inherited_fd_escape.py", tmp_path / "job", etc, pass_fds=(etc,))
    finally:
        os.close(etc)
    assert job.returncode == 1
    assert "PermissionError: [Errno 13] Permission denied: 'passwd'" in job.stderr
    assert "root:" not in job.stdout


def test_without_kernel_walls_the_blind_spots_are_real(tmp_path):
    """The reason the kernel walls exist: with --no-kernel the descriptor trick reads the file."""
    etc = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        job = run_job("inherited_fd_escape.py", tmp_path / "job", etc, options=("--no-kernel",), pass_fds=(etc,))
    finally:
        os.close(etc)
    assert job.returncode == 0
    with open("/etc/passwd", "rb") as passwd:
        assert repr(passwd.read(100)) in job.stdout


@pytest.mark.timeout(CPU_JOB_TIMEOUT + 90)
def test_other_jobs_keep_running_while_hostile_ones_are_stopped(tmp_path):
    witness = subprocess.Popen(sandbox_command("witness.py", tmp_path / "witness"), cwd=ROOT, env=job_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert witness.stdout.readline() == "ready\n"
        hostile = [subprocess.Popen(sandbox_command(script, tmp_path / script, options=options), cwd=ROOT,
                                    env=job_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for script, options in (("fork_bomb.py", ()), ("kill_parent.py", ()),
                                           ("memory_hog.py", ("--max-memory", "256m")),
                                           ("cpu_spin.py", ("--max-cpu", "1")))]
        try:
            codes = [job.wait(timeout=CPU_JOB_TIMEOUT) for job in hostile]
        finally:
            for job in hostile:
                if job.poll() is None:
                    job.kill()
                    job.wait()
        assert codes == [EXIT_RESTRICTED, EXIT_RESTRICTED, EXIT_OUT_OF_MEMORY, EXIT_RESTRICTED]
        witness.stdin.write("still there?\n")
        witness.stdin.flush()
        assert witness.stdout.readline() == "echo still there?\n"
        out, _ = witness.communicate("quit\n", timeout=60)
        assert out == "witness done\n"
        assert witness.returncode == 0
    finally:
        if witness.poll() is None:
            witness.kill()
            witness.communicate()


LAUNCHER_SECRETS = {"SPLAY_TOKEN": "launcher-token", "SPLAY_CONTROLLER": "https://10.9.8.7:1",
                    "HOME": "/home/secret", "AWS_SECRET_ACCESS_KEY": "hunter2"}


def initial_environment(pid):
    """The environment strings process ``pid`` was started with, read from outside."""
    with open(f"/proc/{pid}/environ", "rb") as environ:
        return dict(item.split(b"=", 1) for item in environ.read().split(b"\0") if item)


def test_sandbox_run_starts_the_job_without_the_callers_environment(tmp_path):
    command = sandbox_command("initial_environment.py", tmp_path / "job")
    job = subprocess.Popen(command, cwd=ROOT, env={**job_env(), **LAUNCHER_SECRETS}, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = int(job.stdout.readline().split()[1])
        assert pid == job.pid                                 # the same process, started again
        seen = initial_environment(pid)
        job.communicate("done\n", timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == 0
    assert not {key.encode() for key in [*LAUNCHER_SECRETS, "SPLAY_TEST_SECRET"]} & set(seen)
    assert b"PYTHONPATH" in seen and b"PATH" in seen


@pytest.mark.parametrize("mode", [("--sandbox",), ("--in-process",)], ids=["sandbox", "in-process"])
def test_splay_run_starts_nodes_without_the_launchers_environment(tmp_path, mode):
    launcher = subprocess.Popen([sys.executable, "-m", "splay.cli", "run", os.path.join(ROOT, "tests", "hostile",
                                 "initial_environment.py"), *mode], cwd=tmp_path,
                                env={**job_env(), **LAUNCHER_SECRETS}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = launcher.stdout.readline()
        assert "pid " in line, line + launcher.stderr.read()
        seen = initial_environment(int(line.split("pid ")[1]))
    finally:
        launcher.terminate()
        launcher.communicate(timeout=60)
    assert not {key.encode() for key in [*LAUNCHER_SECRETS, "SPLAY_TEST_SECRET"]} & set(seen)
    assert b"PYTHONPATH" in seen


# The same attacks through `splay run --sandbox` (the node runner confines the node).
SPLAY_RUN_REFUSED = [
    ("switch_off_the_hook.py", (), (), "[node 0] import ctypes refused: sandbox refused importing ctypes"),
    ("walk_frames.py", (), (), "[node 0] sys._getframe refused: sandbox refused reaching a stack frame"),
    ("look_outside.py", (), (), "[node 0] stat /etc/passwd refused: sandbox refused looking at (stat) '/etc/passwd'"),
    ("memfd_hog.py", ("--max-memory", str(256 << 20)), (), "sandbox refused creating a memfd (os.memfd_create)"),
    ("fill_disk_tricks.py", ("--max-disk", str(2 << 20)), ("writers",), "OSError: [Errno 27] File too large"),
    ("fill_disk_tricks.py", ("--max-disk", str(2 << 20)), ("directories",), "max_disk=2097152 bytes"),
    ("fill_disk_tricks.py", ("--max-disk", str(2 << 20)), ("symlinks",), "max_disk=2097152 bytes"),
]


@pytest.mark.parametrize("script, options, args, message", SPLAY_RUN_REFUSED,
                         ids=[f"{case[0][:-3]}{'-' + case[2][0] if case[2] else ''}" for case in SPLAY_RUN_REFUSED])
def test_hostile_node_of_splay_run_is_stopped(tmp_path, script, options, args, message):
    run = splay_run_job(script, tmp_path, *args, options=options)
    assert message in run.stdout, run.stdout + run.stderr
    assert "ESCAPED" not in run.stdout and "ALLOWED" not in run.stdout and "->" not in run.stdout.replace(
        "exists /proc/1 -> False", "")
    assert disk_charge(tmp_path / "splay-run-nodes" / "node-0") <= 2 * 1024 * 1024 + 64 * 4096


def test_splay_run_sandbox_exposes_only_the_application_file(tmp_path):
    app = tmp_path / "read_beside_the_app.py"
    app.write_text(open(os.path.join(ROOT, "tests", "hostile", "read_beside_the_app.py")).read())
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    run = splay_run_job(str(app), tmp_path, tmp_path)
    assert f"[node 0] secret.txt refused: sandbox refused reading '{tmp_path / 'secret.txt'}'" in run.stdout, \
        run.stdout + run.stderr
    assert f"[node 0] . refused: sandbox refused listing (os.listdir) '{tmp_path}'" in run.stdout
    assert "TOPSECRET" not in run.stdout and "LEAKED" not in run.stdout


def test_daemon_starts_jobs_without_its_environment(tmp_path):
    """A daemon of a testbed started with secrets in its environment hands none of them to a job."""
    from splay.deploy.testbed import free_port_range

    daemon_secrets = {"HOME": "/home/secret", "AWS_SECRET_ACCESS_KEY": "hunter2"}
    env = {**job_env(), **daemon_secrets, "SPLAY_HOME": str(tmp_path / "home")}
    for name in ("SPLAY_TOKEN", "SPLAY_CONTROLLER"):     # the client finds the testbed through client.json
        env.pop(name, None)

    def splay(*args):
        return subprocess.run([sys.executable, "-m", "splay.cli", *map(str, args)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    up = splay("testbed", "up", "--daemons", 1, "--first-port", free_port_range(20), "--ports-per-daemon", 20)
    assert up.returncode == 0, up.stderr + up.stdout
    logs, seen = None, None
    try:
        submitted = splay("submit", os.path.join(ROOT, "tests", "hostile", "initial_environment.py"), "-n", 1)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stderr.split("job ", 1)[1].split()[0]
        logs = subprocess.Popen([sys.executable, "-m", "splay.cli", "logs", job_id, "-f", "--raw"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in logs.stdout:
            if "pid " in line:
                seen = initial_environment(int(line.split("pid ")[1].split()[0]))
                break
    finally:
        if logs is not None:
            logs.kill()
            logs.communicate()
        splay("testbed", "down")
    assert seen is not None, "the job never printed its pid"
    assert not {key.encode() for key in [*daemon_secrets, "SPLAY_TEST_SECRET", "SPLAY_TOKEN"]} & set(seen)
    assert b"SPLAY_JOB" in seen and b"PYTHONPATH" in seen

"""splayc.syscalls: the sandbox's system calls, each on its own, against the real kernel.

Calls that change the process for good (no_new_privs, seccomp, capabilities, namespaces, Landlock)
run in a child interpreter, never in the test process. The confined-job tests (test_sandbox.py,
test_sandbox_hostile.py) cover the module as the sandbox uses it.
"""
import errno
import os
import platform
import signal
import subprocess
import sys
import textwrap

import pytest

from hostile.runner import ROOT, job_env

syscalls = pytest.importorskip("splayc.syscalls", reason="needs the compiled core (splayc.syscalls)")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux system calls")

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
CLONE_NEWUTS = 0x04000000


def run_python(code, timeout=60):
    """Run ``code`` in a fresh interpreter with pysplay importable; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=job_env(),
                          capture_output=True, text=True, timeout=timeout)


def status_field(name):
    """A field of /proc/self/status, e.g. ``NoNewPrivs``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/self/status")


def landlock_abi():
    try:
        return syscalls.landlock_abi_version()
    except OSError:
        return 0


def test_prctl_returns_the_kernels_answer_and_raises_its_errno():
    assert syscalls.prctl(PR_GET_NO_NEW_PRIVS) == int(status_field("NoNewPrivs"))
    with pytest.raises(OSError) as refused:
        syscalls.prctl(0x7FFF0000)
    assert refused.value.errno == errno.EINVAL and refused.value.strerror == os.strerror(errno.EINVAL)
    with pytest.raises(OverflowError):
        syscalls.prctl(PR_SET_NO_NEW_PRIVS, -1)


def test_every_call_raises_its_audit_event_first():
    job = run_python("""\
        import sys
        from splayc import syscalls
        events = []
        sys.addaudithook(lambda event, args: event.startswith("splayc.") and events.append((event, args)))
        syscalls.prctl(39)
        try:
            syscalls.landlock_add_rule_path_beneath(-1, 1, -1)
        except OSError as error:
            print("refused", error.errno)
        for event in events:
            print(*event)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == [f"refused {errno.EBADF}", "splayc.syscalls.prctl (39, 0)",
                                       "splayc.syscalls.landlock_add_rule_path_beneath (-1, 1, -1)"]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the program uses x86-64 system call numbers")
def test_seccomp_filter_from_bytes_refuses_what_it_says():
    job = run_python("""\
        import os, struct
        from splayc import syscalls
        def instruction(code, k, jt=0, jf=0):
            return struct.pack("=HBBI", code, jt, jf, k)
        getpgid, errno_eperm, allow = 121, 0x00050000 | 1, 0x7FFF0000
        program = (instruction(0x20, 0)                         # A = system call number
                   + instruction(0x15, getpgid, jt=0, jf=1)     # getpgid?
                   + instruction(0x06, errno_eperm)             #   refuse with EPERM
                   + instruction(0x06, allow))                  # anything else: allowed
        print("before", os.getpgid(0) > 0)
        syscalls.prctl(38, 1)
        print("installed", syscalls.seccomp_set_mode_filter(program, syscalls.SECCOMP_FILTER_FLAG_TSYNC))
        try:
            os.getpgid(0)
        except PermissionError as error:
            print("getpgid refused:", error.strerror)
        print("getpid still fine", os.getpid() > 0)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == ["before True", "installed 0", "getpgid refused: Operation not permitted",
                                       "getpid still fine True"]


def test_seccomp_program_errors_are_clear():
    for program, message in ((b"", "non-empty sequence of 8-byte sock_filter instructions, got 0 bytes"),
                             (b"x" * 12, "got 12 bytes"),
                             (bytes(8 * 4097), "4097 instructions, over the kernel's limit of 4096")):
        with pytest.raises(ValueError, match=message):
            syscalls.seccomp_set_mode_filter(program)
    with pytest.raises(TypeError):
        syscalls.seccomp_set_mode_filter(None)
    job = run_python("""\
        from splayc import syscalls
        syscalls.prctl(38, 1)
        try:
            syscalls.seccomp_set_mode_filter(b"\\xff\\xff" + bytes(6))    # no such BPF instruction
        except OSError as error:
            print("refused", error.errno)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout == f"refused {errno.EINVAL}\n"


def test_capset_drops_every_capability():
    job = run_python("""\
        from splayc import syscalls
        print(syscalls.capset(syscalls.LINUX_CAPABILITY_VERSION_3, 0, 0, 0))
        with open("/proc/self/status") as status:
            print(*(line.split()[1] for line in status if line.startswith(("CapEff", "CapPrm", "CapInh"))))
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == ["0", "0000000000000000 0000000000000000 0000000000000000"]


def test_capset_argument_errors_are_clear():
    with pytest.raises(ValueError, match="unsupported version 0x1 .use LINUX_CAPABILITY_VERSION_3"):
        syscalls.capset(1, 0, 0, 0)
    with pytest.raises(ValueError, match="VERSION_1 sets only capabilities 0..31"):
        syscalls.capset(syscalls.LINUX_CAPABILITY_VERSION_1, 1 << 40, 0, 0)
    with pytest.raises(OverflowError):
        syscalls.capset(syscalls.LINUX_CAPABILITY_VERSION_3, -1, 0, 0)


def test_unshare_gives_a_new_namespace_or_says_why_not():
    job = run_python(f"""\
        import os
        from splayc import syscalls
        before = os.readlink("/proc/self/ns/uts")
        try:
            print(syscalls.unshare({CLONE_NEWUTS}), os.readlink("/proc/self/ns/uts") != before)
        except PermissionError as error:
            print("refused", error.errno)
        """)
    assert job.returncode == 0, job.stderr
    if os.geteuid() != 0:
        assert job.stdout == f"refused {errno.EPERM}\n"
    elif job.stdout.startswith("refused"):
        pytest.skip("root here cannot create namespaces (a container refuses them)")
    else:
        assert job.stdout == "0 True\n"


def test_landlock_ruleset_confines_reads_to_its_rules(tmp_path):
    if landlock_abi() < 1:
        pytest.skip("the kernel has no Landlock")
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "data.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("outside")
    read_file, read_dir = 1 << 2, 1 << 3
    job = run_python(f"""\
        import os
        from splayc import syscalls
        ruleset = syscalls.landlock_create_ruleset({read_file | read_dir}, size=8)
        directory = os.open({str(tmp_path / 'inside')!r}, os.O_PATH | os.O_CLOEXEC)
        print(syscalls.landlock_add_rule_path_beneath(ruleset, {read_file | read_dir}, directory))
        syscalls.prctl(38, 1)
        print(syscalls.landlock_restrict_self(ruleset))
        print(open({str(tmp_path / 'inside' / 'data.txt')!r}).read())
        try:
            open({str(tmp_path / 'outside.txt')!r})
        except PermissionError as error:
            print("refused", error.strerror)
        """)
    assert job.returncode == 0, job.stderr
    assert job.stdout.splitlines() == ["0", "0", "inside", "refused Permission denied"]


def test_landlock_argument_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match=r"size must be one of \(8, 16, 24\), got 12"):
        syscalls.landlock_create_ruleset(1, size=12)
    with pytest.raises(ValueError, match="a 8-byte ruleset attribute cannot carry handled_access_net=1"):
        syscalls.landlock_create_ruleset(1, handled_access_net=1, size=8)
    with pytest.raises(ValueError, match="a 16-byte ruleset attribute cannot carry .* scoped=2"):
        syscalls.landlock_create_ruleset(1, scoped=2, size=16)
    if landlock_abi() < 1:
        pytest.skip("the kernel has no Landlock")
    with pytest.raises(OSError) as refused:
        syscalls.landlock_create_ruleset(0, size=8)               # a ruleset that handles nothing
    assert refused.value.errno == errno.ENOMSG
    with pytest.raises(OSError) as refused:
        syscalls.landlock_add_rule_path_beneath(-1, 1 << 2, 0)
    assert refused.value.errno == errno.EBADF
    ruleset = syscalls.landlock_create_ruleset(1 << 2, size=8)
    directory = os.open(tmp_path, os.O_PATH | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as refused:                   # a right the ruleset does not handle
            syscalls.landlock_add_rule_path_beneath(ruleset, 1 << 3, directory)
        assert refused.value.errno == errno.EINVAL
    finally:
        os.close(directory)
        os.close(ruleset)


def test_prctl_in_a_launchers_child_sets_the_parent_death_signal():
    """What a launcher needs between fork and exec: the child dies with the process that forked it."""
    child = "import time; print('child up', flush=True); time.sleep(60); print('child survived', flush=True)"
    middle = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import subprocess, sys
        from splayc import syscalls
        child = subprocess.Popen([sys.executable, "-c", {child!r}],
                                 preexec_fn=lambda: syscalls.prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}))
        print(child.pid, flush=True)
        sys.stdin.readline()          # the test says when this process may exit
        """)], cwd=ROOT, env=job_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child_pid, child_gone = None, False
    try:
        lines = {middle.stdout.readline(), middle.stdout.readline()}    # the child shares the middle's stdout
        assert "child up\n" in lines, lines
        child_pid = int(next(line for line in lines if line != "child up\n"))
        middle.stdin.close()                                    # the middle exits: the child gets SIGKILL
        assert middle.wait(timeout=60) == 0
        rest = middle.stdout.read()                             # EOF once the child, the last writer, is gone
        child_gone = True
        assert rest == ""                                       # not "child survived"
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if child_pid is not None and not child_gone:
            os.kill(child_pid, signal.SIGKILL)


def test_fork_sibling_makes_a_child_of_the_callers_parent():
    # A process P forks C; C calls fork_sibling(): the new process is P's child, not C's, so P
    # reaps both (and reads the sibling's exit status); the sibling runs Python normally.
    result = run_python("""
        import os
        from splayc.syscalls import fork_sibling
        top = os.getpid()
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:
            sibling = fork_sibling()
            if sibling == 0:
                os.write(w, b"%d" % (os.getppid() == top))
                os._exit(7)
            os._exit(0)
        os.close(w)
        print(os.read(r, 10).decode(), sorted(os.waitstatus_to_exitcode(os.wait()[1]) for _ in "ab"))
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 1) == ["1", "[0, 7]\n"]

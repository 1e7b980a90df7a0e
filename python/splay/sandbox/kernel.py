"""Kernel walls for a confined job: no_new_privs, namespaces, capabilities, seccomp, Landlock.

Everything here talks to the kernel through raw system calls made by :mod:`splayc.syscalls`, a
small compiled module of the core, so nothing needs installing: seccomp filters are assembled
here as classic BPF, Landlock uses its three system calls. ctypes is never used: once loaded, its
base types stay reachable from job code through ``object.__subclasses__()`` and would give it raw
memory access behind the audit hook's back. Each mechanism is tried on its own; a missing one is
reported with the reason, never fatal. x86-64 Linux only (system call numbers below).

What each wall does:

* ``no_new_privs``: no exec can ever gain privileges (needed by seccomp and Landlock).
* ``namespaces`` (root only): private IPC and UTS namespaces, so System V IPC objects of other
  jobs and of the host are out of reach. The network namespace stays the host's: a job needs
  the loopback network to reach its peers.
* ``capabilities``: when running as root, the job drops every capability (effective, permitted,
  inheritable, ambient): it keeps uid 0 for file ownership, but cannot raise rlimits, bypass file
  permissions, load modules, use raw sockets, and so on.
* ``seccomp``: a filter on every thread (TSYNC) refusing with EPERM: process creation (fork,
  vfork, clone without CLONE_THREAD; clone3 answers ENOSYS so the C library falls back to clone),
  exec, ptrace and other processes' memory, namespaces and mounts, kernel modules, kexec, bpf,
  perf, keyrings, io_uring, clock setting, reboot, file handles (open_by_handle_at), and memory
  that RLIMIT_AS does not count (memfd_create, memfd_secret, System V shmget). Threads
  keep working. 32-bit and x32 system calls are refused as a whole.
* ``landlock``: the file system as seen by the job: read/write/create/delete inside the job
  directory; read (and execute, for shared libraries) in the Python installation, site-packages,
  the pysplay sources, the system library directories and the few files the C library reads
  (time zones, name resolution); read in ``allowed_read_paths``; nothing else. With Landlock
  ABI 6 the job also cannot signal processes outside its own domain, nor connect to abstract
  unix sockets outside it. Landlock applies to the calling thread and the threads it starts.
"""
import errno
import os
import platform
import struct
import sys

try:
    from splayc import syscalls
    _SYSCALLS_MISSING = None
except ImportError as missing:          # the compiled core is not built: the walls are reported missing
    syscalls = None
    _SYSCALLS_MISSING = (f"the compiled module splayc.syscalls is not available ({missing}); build the core "
                         f"with `python setup.py build_ext --inplace`")

# x86-64 system call numbers.
_SYSCALLS = {
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone": 56, "clone3": 435,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
    "kcmp": 312, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
    "setns": 308, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429,
    "open_tree": 428, "fspick": 433, "mount_setattr": 442, "reboot": 169, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "swapon": 167, "swapoff": 168, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
    "add_key": 248, "request_key": 249, "userfaultfd": 323, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "acct": 163, "settimeofday": 164, "clock_settime": 227,
    "adjtimex": 159, "clock_adjtime": 305, "sethostname": 170, "setdomainname": 171, "iopl": 172,
    "ioperm": 173, "quotactl": 179, "syslog": 103, "uselib": 134, "vhangup": 153,
    "lookup_dcookie": 212, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    # Memory outside the address space (RLIMIT_AS): an anonymous memfd or a System V segment holds
    # pages without mapping them. Without a cgroup memory limit per job they would escape max_memory.
    "memfd_create": 319, "memfd_secret": 447, "shmget": 29,
}
_DENIED = [name for name in _SYSCALLS if name not in ("clone", "clone3")]

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_CLONE_THREAD = 0x00010000
_SECCOMP_FILTER_FLAG_TSYNC = 1
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

# Landlock file system rights (ABI 1..5) and scopes (ABI 6).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_REMOVE_DIR, _FS_REMOVE_FILE, _FS_MAKE_CHAR, _FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_FS_MAKE_REG, _FS_MAKE_SOCK, _FS_MAKE_FIFO, _FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
_FS_MAKE_SYM, _FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Files and directories the C runtime reads by itself (not through Python's open): shared
# libraries loaded later (extension modules, NSS), the dynamic loader cache, time zones, and
# name resolution for the socket layer.
SYSTEM_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")
SYSTEM_READ_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo", "/etc/hosts",
                      "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
                      "/etc/services", "/etc/protocols", "/dev/urandom", "/dev/random")
_DEVICE_FILES_RW = ("/dev/null", "/dev/zero")


def _supported_machine():
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def unavailable():
    """Why the kernel walls cannot be tried here (a sentence), or None when they can."""
    if not _supported_machine():
        return f"kernel walls are implemented for x86-64 Linux only (this is {sys.platform}/{platform.machine()})"
    return _SYSCALLS_MISSING


def other_threads():
    """How many threads besides the calling one exist in this process (Linux)."""
    try:
        return len(os.listdir(f"/proc/{os.getpid()}/task")) - 1
    except OSError:
        return 0


def landlock_abi():
    """The Landlock ABI version the kernel offers (0 when Landlock is missing or disabled)."""
    if unavailable():
        return 0
    try:
        return syscalls.landlock_abi_version()
    except OSError:
        return 0


def detect():
    """What this kernel offers, without changing anything: a dict for reports and docs."""
    seccomp = False
    try:
        with open("/proc/self/status") as status:
            seccomp = any(line.startswith("Seccomp:") for line in status)
    except OSError:
        pass
    namespaces = sorted(name for name in ("user", "pid", "net", "mnt", "ipc", "uts")
                        if os.path.exists(f"/proc/self/ns/{name}"))
    return {"machine_supported": _supported_machine(), "seccomp": seccomp,
            "landlock_abi": landlock_abi(), "namespaces": namespaces, "root": os.getuid() == 0}


def set_no_new_privs():
    """prctl(PR_SET_NO_NEW_PRIVS): exec can never gain privileges again."""
    syscalls.prctl(_PR_SET_NO_NEW_PRIVS, 1)


def drop_capabilities():
    """Drop every capability of the calling thread (capset to zero, ambient cleared)."""
    try:
        syscalls.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as error:
        if error.errno != errno.EINVAL:     # EINVAL: a kernel before 4.3, which has no ambient set to clear
            raise
    syscalls.capset(_LINUX_CAPABILITY_VERSION_3, 0, 0, 0)


_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUTS = 0x04000000


def unshare_ipc_uts():
    """Give the calling thread (and its future threads) its own IPC and UTS namespaces (needs root).

    System V shared memory, semaphores and message queues of other jobs and of the host become
    unreachable (Landlock does not cover them); the host name seen by the job is a private copy.
    """
    syscalls.unshare(_CLONE_NEWIPC | _CLONE_NEWUTS)


def _bpf(code, k, jt=0, jf=0):
    return (code, jt, jf, k)


# classic BPF opcodes used by the filter
_LD_W_ABS = 0x20        # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15           # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35           # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45          # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06           # BPF_RET | BPF_K


def seccomp_program():
    """The BPF program (list of (code, jt, jf, k)) of the job's seccomp filter."""
    eperm = _RET_ERRNO | 1
    enosys = _RET_ERRNO | 38
    program = [
        _bpf(_LD_W_ABS, 4),                                   # A = arch
        _bpf(_JEQ_K, _AUDIT_ARCH_X86_64, jt=1, jf=0),
        _bpf(_RET_K, eperm),                                  # i386 (int 0x80) calls: refused
        _bpf(_LD_W_ABS, 0),                                   # A = system call number
        _bpf(_JGE_K, _X32_SYSCALL_BIT, jt=0, jf=1),
        _bpf(_RET_K, eperm),                                  # x32 calls: refused
        _bpf(_JEQ_K, _SYSCALLS["clone3"], jt=0, jf=1),
        _bpf(_RET_K, enosys),                                 # glibc then falls back to clone
        _bpf(_JEQ_K, _SYSCALLS["clone"], jt=0, jf=4),
        _bpf(_LD_W_ABS, 16),                                  # A = low word of clone flags
        _bpf(_JSET_K, _CLONE_THREAD, jt=0, jf=1),
        _bpf(_RET_K, _RET_ALLOW),                             # a new thread: allowed
        _bpf(_RET_K, eperm),                                  # a new process: refused
    ]
    denied = [_SYSCALLS[name] for name in _DENIED]
    for index, number in enumerate(denied):
        # jump to the shared "refuse" return after the last comparison and the "allow" return
        remaining = len(denied) - index - 1
        program.append(_bpf(_JEQ_K, number, jt=remaining + 1, jf=0))
    program.append(_bpf(_RET_K, _RET_ALLOW))
    program.append(_bpf(_RET_K, eperm))
    return program


def seccomp_program_bytes(program):
    """``program`` (a list of (code, jt, jf, k)) as the kernel reads it: struct sock_filter entries."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in program)


def install_seccomp():
    """Install the filter on every thread of the process (needs no_new_privs first)."""
    syscalls.seccomp_set_mode_filter(seccomp_program_bytes(seccomp_program()), _SECCOMP_FILTER_FLAG_TSYNC)


def _landlock_rights(abi):
    handled = (_FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_READ_DIR | _FS_REMOVE_DIR
               | _FS_REMOVE_FILE | _FS_MAKE_CHAR | _FS_MAKE_DIR | _FS_MAKE_REG | _FS_MAKE_SOCK
               | _FS_MAKE_FIFO | _FS_MAKE_BLOCK | _FS_MAKE_SYM)
    if abi >= 2:
        handled |= _FS_REFER
    if abi >= 3:
        handled |= _FS_TRUNCATE
    if abi >= 5:
        handled |= _FS_IOCTL_DEV
    return handled


def install_landlock(directory, read_paths, exec_paths):
    """Restrict the file system of the calling thread (and its future threads).

    ``directory``: full access. ``read_paths``: read only. ``exec_paths``: read and execute
    (Python's own tree, shared libraries). Missing paths are skipped. Returns
    ``{"abi": n, "scoped": [...], "paths": count}``.
    """
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    handled = _landlock_rights(abi)
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    # Older kernels know a shorter struct landlock_ruleset_attr and refuse a longer one (E2BIG).
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = syscalls.landlock_create_ruleset(handled, 0, scoped, size)
    read = _FS_READ_FILE | _FS_READ_DIR
    added = 0
    try:
        rules = [(directory, handled), *[(p, read) for p in read_paths],
                 *[(p, read | _FS_EXECUTE) for p in exec_paths],
                 *[(p, _FS_READ_FILE | _FS_WRITE_FILE) for p in _DEVICE_FILES_RW]]
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= _FILE_RIGHTS
                syscalls.landlock_add_rule_path_beneath(ruleset, rights & handled, fd)
                added += 1
            finally:
                os.close(fd)
        syscalls.landlock_restrict_self(ruleset)
    finally:
        os.close(ruleset)
    return {"abi": abi, "scoped": ["signal", "abstract_unix_socket"] if scoped else [], "rules": added}


def confine_kernel(directory, read_paths, exec_paths):
    """Apply every available kernel wall; returns ``(active, reasons)`` for the report.

    ``active`` maps ``no_new_privs``, ``capabilities_dropped``, ``seccomp``, ``landlock`` and
    ``namespaces`` to True/False (landlock: its details when active; namespaces: the list of
    private ones); ``reasons`` says why a mechanism is not (fully) active. The network namespace
    is never unshared: a job needs the host's loopback network to reach its peers.
    """
    active = {"no_new_privs": False, "capabilities_dropped": False, "seccomp": False,
              "landlock": False, "namespaces": False}
    reasons = {}
    reason = unavailable()
    if reason:
        for name in active:
            reasons[name] = reason
        return active, reasons
    threads = other_threads()
    try:
        set_no_new_privs()
        active["no_new_privs"] = True
    except OSError as error:
        reasons["no_new_privs"] = f"prctl(PR_SET_NO_NEW_PRIVS) failed: {error}"
    try:
        details = install_landlock(directory, read_paths, exec_paths)
        active["landlock"] = details
    except OSError as error:
        reasons["landlock"] = f"not installed: {error}"
    if os.geteuid() == 0:
        try:
            unshare_ipc_uts()       # before seccomp, which forbids unshare
            active["namespaces"] = ["ipc", "uts"]
        except OSError as error:
            reasons["namespaces"] = f"unshare(CLONE_NEWIPC|CLONE_NEWUTS) failed: {error}"
    else:
        reasons["namespaces"] = ("not root: private IPC and UTS namespaces need CAP_SYS_ADMIN; the daemon "
                                 "may start jobs under `unshare --user --map-current-user --ipc --uts`")
    if active["no_new_privs"]:
        try:
            install_seccomp()
            active["seccomp"] = True
        except OSError as error:
            reasons["seccomp"] = f"not installed: {error}"
    else:
        reasons["seccomp"] = "needs no_new_privs"
    if os.getuid() == 0 or os.geteuid() == 0:
        try:
            drop_capabilities()
            active["capabilities_dropped"] = True
        except OSError as error:
            reasons["capabilities_dropped"] = f"capset failed: {error}"
    else:
        reasons["capabilities_dropped"] = "not root: the job has no capabilities to drop"
    if threads:
        for name in ("landlock", "namespaces", "capabilities_dropped"):
            if active[name]:
                reasons[name] = (f"applies to the confining thread and the threads it starts: {threads} "
                                 f"other thread(s) already existed and keep their old rights")
    return active, reasons

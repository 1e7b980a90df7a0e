# The Linux system calls of the job sandbox (splay.sandbox.kernel), compiled.
#
# The sandbox used to reach these through ctypes. A loaded _ctypes cannot be unloaded, and its
# base types stay reachable through object.__subclasses__(): a confined job could build raw
# memory access from them without raising any audit event, then switch the audit hook off. With
# the calls here, a job process never loads ctypes at all.
#
# Every function is a thin, typed wrapper around one system call. It raises OSError(errno,
# strerror) when the kernel refuses (so PermissionError, FileNotFoundError... as usual), and
# raises the audit event "splayc.syscalls.<name>" first: the confined job's audit hook refuses
# those, so once a job is confined it cannot use this module (all the calls here could only
# tighten its confinement anyway, and the walls are in place before the hook is installed).
#
# The structures are declared here, with the kernel's layout, rather than taken from the system's
# linux/*.h headers, whose Landlock structures lag behind the running kernel on older systems.
# On systems other than Linux every call fails with ENOSYS, and the sandbox reports the kernel
# walls as missing.
from libc.errno cimport errno, EBUSY
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport strerror
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "Python.h":
    int PySys_Audit(const char *event, const char *format, ...) except -1
    void PyOS_BeforeFork()
    void PyOS_AfterFork_Parent()
    void PyOS_AfterFork_Child()

cdef extern from *:
    """
    #include <errno.h>
    #if defined(__linux__)
      #include <sched.h>          /* unshare, CLONE_PARENT */
      #include <signal.h>         /* SIGCHLD */
      #include <sys/prctl.h>      /* prctl */
      #include <sys/syscall.h>    /* SYS_* numbers */
      #include <unistd.h>         /* syscall */
      /* Older C library headers lack the Landlock numbers; they are the same on every architecture. */
      #ifndef SYS_landlock_create_ruleset
        #define SYS_landlock_create_ruleset 444
        #define SYS_landlock_add_rule 445
        #define SYS_landlock_restrict_self 446
      #endif
      #define splay_syscall syscall
      #define splay_prctl prctl
      #define splay_unshare unshare
      #define SPLAY_CLONE_SIBLING (CLONE_PARENT | SIGCHLD)
    #else
      #define SYS_clone 0
      #define SPLAY_CLONE_SIBLING 0
      #define SYS_capset 0
      #define SYS_seccomp 0
      #define SYS_landlock_create_ruleset 0
      #define SYS_landlock_add_rule 0
      #define SYS_landlock_restrict_self 0
      static long splay_syscall(long number, ...) { (void)number; errno = ENOSYS; return -1; }
      static int splay_prctl(int option, ...) { (void)option; errno = ENOSYS; return -1; }
      static int splay_unshare(int flags) { (void)flags; errno = ENOSYS; return -1; }
    #endif
    """
    long SYS_capset, SYS_seccomp, SYS_clone
    unsigned long SPLAY_CLONE_SIBLING
    long SYS_landlock_create_ruleset, SYS_landlock_add_rule, SYS_landlock_restrict_self
    long splay_syscall(long number, ...)
    int splay_prctl(int option, ...)
    int splay_unshare(int flags)


# Kernel ABI structures (include/uapi/linux/filter.h, capability.h, landlock.h).
cdef struct sock_filter:            # one classic BPF instruction
    uint16_t code
    uint8_t jt
    uint8_t jf
    uint32_t k

cdef struct sock_fprog:             # a BPF program: its length and its instructions
    unsigned short len
    sock_filter *filter

cdef struct cap_header:             # struct __user_cap_header_struct
    uint32_t version
    int pid

cdef struct cap_data:               # struct __user_cap_data_struct: one 32-bit word of each set
    uint32_t effective
    uint32_t permitted
    uint32_t inheritable

cdef struct landlock_ruleset_attr:  # ABI 1 reads 8 bytes of it, ABI 4 16, ABI 6 all 24
    uint64_t handled_access_fs
    uint64_t handled_access_net
    uint64_t scoped

cdef packed struct landlock_path_beneath_attr:
    uint64_t allowed_access
    int32_t parent_fd

cdef packed struct landlock_net_port_attr:   # ABI 4+: a TCP port the ruleset allows
    uint64_t allowed_access
    uint64_t port


# The values callers need (same names as in the kernel headers).
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SOCK_FILTER_SIZE = sizeof(sock_filter)      # bytes of one instruction in a seccomp program: 8
BPF_MAXINSNS = 4096                         # the kernel's limit on a program's length
LINUX_CAPABILITY_VERSION_1 = 0x19980330     # one 32-bit word per capability set
LINUX_CAPABILITY_VERSION_3 = 0x20080522     # two words per set (capabilities 0..63)
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
LANDLOCK_ACCESS_NET_BIND_TCP = 1 << 0
LANDLOCK_ACCESS_NET_CONNECT_TCP = 1 << 1
LANDLOCK_RULESET_ATTR_SIZES = (8, 16, 24)   # the struct as ABI 1-3, 4-5 and 6+ know it

assert sizeof(landlock_path_beneath_attr) == 12 and sizeof(landlock_ruleset_attr) == 24


cdef int raise_errno() except -1:
    cdef int number = errno
    raise OSError(number, strerror(number).decode("utf-8", "replace"))


cdef long checked(long result) except -1:
    """``result`` of a system call, or OSError with the errno when it is -1."""
    if result == -1:
        raise_errno()
    return result


def prctl(int option, unsigned long arg2=0, unsigned long arg3=0, unsigned long arg4=0,
          unsigned long arg5=0):
    """``prctl(option, arg2, arg3, arg4, arg5)``; returns its result (an int), OSError on failure.

    The sandbox uses PR_SET_NO_NEW_PRIVS and PR_CAP_AMBIENT; a launcher may use PR_SET_PDEATHSIG
    in a child between fork and exec (nothing is allocated or loaded by this call).
    """
    PySys_Audit(b"splayc.syscalls.prctl", b"ik", option, arg2)
    return checked(splay_prctl(option, arg2, arg3, arg4, arg5))


def seccomp_set_mode_filter(bytes program not None, unsigned int flags=0):
    """Install a seccomp filter: ``seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)``.

    ``program``: the classic BPF instructions, each ``struct sock_filter`` in native byte order
    (``struct.pack("=HBBI", code, jt, jf, k)``, SOCK_FILTER_SIZE bytes), concatenated.
    ``flags``: e.g. SECCOMP_FILTER_FLAG_TSYNC to install it on every thread of the process.
    The caller needs no_new_privs (or CAP_SYS_ADMIN). Returns 0. ValueError for a malformed
    program; OSError when the kernel refuses it, including when TSYNC could not synchronise a
    thread (the kernel then names that thread).
    """
    cdef Py_ssize_t size = PyBytes_GET_SIZE(program)
    cdef Py_ssize_t count = size // sizeof(sock_filter)
    if size == 0 or size % sizeof(sock_filter):
        raise ValueError(f"seccomp program must be a non-empty sequence of {sizeof(sock_filter)}-byte "
                         f"sock_filter instructions, got {size} bytes")
    if count > BPF_MAXINSNS:
        raise ValueError(f"seccomp program has {count} instructions, over the kernel's limit of {BPF_MAXINSNS}")
    PySys_Audit(b"splayc.syscalls.seccomp_set_mode_filter", b"In", flags, count)
    cdef sock_fprog fprog
    fprog.len = <unsigned short>count
    fprog.filter = <sock_filter *>PyBytes_AS_STRING(program)   # the kernel copies it during the call
    cdef long result = checked(splay_syscall(SYS_seccomp, <long>SECCOMP_SET_MODE_FILTER, <long>flags,
                                             <long>&fprog))
    if result > 0:
        # TSYNC: another thread has a filter or no_new_privs state that is not an ancestor of ours
        raise OSError(EBUSY, f"seccomp: thread {result} could not be synchronised to the new filter "
                          f"(it installed a filter of its own)")
    return 0


def capset(unsigned int version, uint64_t effective, uint64_t permitted, uint64_t inheritable):
    """Set the calling thread's capability sets (bit masks): ``capset(&header, data)``.

    ``version``: LINUX_CAPABILITY_VERSION_3 (masks of 64 bits) or LINUX_CAPABILITY_VERSION_1
    (32 bits). ``capset(LINUX_CAPABILITY_VERSION_3, 0, 0, 0)`` drops every capability. Returns 0.
    """
    cdef cap_header header
    cdef cap_data data[2]
    if version == LINUX_CAPABILITY_VERSION_1:
        if (effective | permitted | inheritable) >> 32:
            raise ValueError("capset: LINUX_CAPABILITY_VERSION_1 sets only capabilities 0..31")
    elif version != LINUX_CAPABILITY_VERSION_3:
        raise ValueError(f"capset: unsupported version {version:#x} (use LINUX_CAPABILITY_VERSION_3)")
    PySys_Audit(b"splayc.syscalls.capset", b"IKKK", version, <unsigned long long>effective,
                <unsigned long long>permitted, <unsigned long long>inheritable)
    header.version = version
    header.pid = 0                      # the calling thread
    data[0].effective, data[1].effective = <uint32_t>effective, <uint32_t>(effective >> 32)
    data[0].permitted, data[1].permitted = <uint32_t>permitted, <uint32_t>(permitted >> 32)
    data[0].inheritable, data[1].inheritable = <uint32_t>inheritable, <uint32_t>(inheritable >> 32)
    return checked(splay_syscall(SYS_capset, <long>&header, <long>data))


def unshare(int flags):
    """``unshare(flags)``: give the calling thread new namespaces (CLONE_NEWIPC, ...). Returns 0."""
    PySys_Audit(b"splayc.syscalls.unshare", b"i", flags)
    return checked(splay_unshare(flags))


def fork_sibling():
    """``fork()``, except that the child is a child of this process's *parent* (``clone`` with
    CLONE_PARENT): its exit goes to that parent, which waits for it. Returns 0 in the child and
    the child's pid in this process, like ``os.fork()``; OSError on failure.

    The fork server starts node processes with it, in one fork instead of forking twice and
    waiting for the middle process to exit. Only for a single-threaded caller: it bypasses the C
    library's fork, so no ``pthread_atfork`` handler runs (Python's own fork bookkeeping does).
    """
    cdef long pid
    cdef int number
    PySys_Audit(b"splayc.syscalls.fork_sibling", NULL)
    PyOS_BeforeFork()
    pid = splay_syscall(SYS_clone, SPLAY_CLONE_SIBLING, 0, 0, 0, 0)
    if pid == 0:
        PyOS_AfterFork_Child()
        return 0
    number = errno
    PyOS_AfterFork_Parent()
    if pid == -1:
        raise OSError(number, strerror(number).decode("utf-8", "replace"))
    return pid


def landlock_abi_version():
    """The Landlock ABI version of the running kernel; OSError when Landlock is missing
    (ENOSYS) or disabled at boot (EOPNOTSUPP)."""
    PySys_Audit(b"splayc.syscalls.landlock_abi_version", b"")
    return checked(splay_syscall(SYS_landlock_create_ruleset, <long>0, <long>0,
                                 <long>LANDLOCK_CREATE_RULESET_VERSION))


def landlock_create_ruleset(uint64_t handled_access_fs, uint64_t handled_access_net=0,
                            uint64_t scoped=0, size_t size=sizeof(landlock_ruleset_attr)):
    """Create a Landlock ruleset; returns its file descriptor (close it when done).

    ``size`` is how much of ``struct landlock_ruleset_attr`` the kernel may read: 8 bytes for
    ABI 1-3 (``handled_access_fs`` only), 16 for ABI 4-5 (``handled_access_net``), 24 from ABI 6
    (``scoped``). Older kernels refuse a larger size with E2BIG; the fields beyond ``size`` must
    then be 0.
    """
    cdef landlock_ruleset_attr attr
    if size not in LANDLOCK_RULESET_ATTR_SIZES:
        raise ValueError(f"landlock_create_ruleset: size must be one of {LANDLOCK_RULESET_ATTR_SIZES}, got {size}")
    if (size < 16 and handled_access_net) or (size < 24 and scoped):
        raise ValueError(f"landlock_create_ruleset: a {size}-byte ruleset attribute cannot carry "
                         f"handled_access_net={handled_access_net} / scoped={scoped}")
    PySys_Audit(b"splayc.syscalls.landlock_create_ruleset", b"KKKn", <unsigned long long>handled_access_fs,
                <unsigned long long>handled_access_net, <unsigned long long>scoped, <Py_ssize_t>size)
    attr.handled_access_fs = handled_access_fs
    attr.handled_access_net = handled_access_net
    attr.scoped = scoped
    return checked(splay_syscall(SYS_landlock_create_ruleset, <long>&attr, <long>size, <long>0))


def landlock_add_rule_path_beneath(int ruleset_fd, uint64_t allowed_access, int parent_fd):
    """Allow ``allowed_access`` beneath the file or directory open as ``parent_fd`` (an O_PATH
    descriptor is enough) in the ruleset ``ruleset_fd``. Returns 0."""
    cdef landlock_path_beneath_attr rule
    PySys_Audit(b"splayc.syscalls.landlock_add_rule_path_beneath", b"iKi", ruleset_fd,
                <unsigned long long>allowed_access, parent_fd)
    rule.allowed_access = allowed_access
    rule.parent_fd = parent_fd
    return checked(splay_syscall(SYS_landlock_add_rule, <long>ruleset_fd, <long>LANDLOCK_RULE_PATH_BENEATH,
                                 <long>&rule, <long>0))


def landlock_restrict_self(int ruleset_fd, unsigned int flags=0):
    """Enforce the ruleset on the calling thread and the threads it starts later (needs
    no_new_privs or CAP_SYS_ADMIN). Irreversible. Returns 0."""
    PySys_Audit(b"splayc.syscalls.landlock_restrict_self", b"iI", ruleset_fd, flags)
    return checked(splay_syscall(SYS_landlock_restrict_self, <long>ruleset_fd, <long>flags))


def landlock_add_rule_net_port(int ruleset_fd, uint64_t allowed_access, unsigned int port):
    """Allow ``allowed_access`` (LANDLOCK_ACCESS_NET_BIND_TCP, LANDLOCK_ACCESS_NET_CONNECT_TCP)
    on the TCP ``port`` (0-65535; binding port 0 asks the kernel for an ephemeral one) in the
    ruleset ``ruleset_fd`` (Landlock ABI 4+). Returns 0."""
    cdef landlock_net_port_attr rule
    if port > 65535:
        raise ValueError(f"landlock_add_rule_net_port: port must be 0-65535, got {port}")
    PySys_Audit(b"splayc.syscalls.landlock_add_rule_net_port", b"iKI", ruleset_fd,
                <unsigned long long>allowed_access, port)
    rule.allowed_access = allowed_access
    rule.port = port
    return checked(splay_syscall(SYS_landlock_add_rule, <long>ruleset_fd, <long>LANDLOCK_RULE_NET_PORT,
                                 <long>&rule, <long>0))

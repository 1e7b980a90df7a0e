"""Kernel network walls of a confined job: Landlock TCP port rules and a socket-family filter.

The restricted socket layer (``splay.restricted_socket``) enforces the launcher's ports, byte
counts and blacklist in the compiled core, and the audit hook refuses Python sockets outside it.
Both live inside the job's interpreter. These walls are in the kernel, so they hold for any code
in the job, native code and a disabled hook included:

* **Landlock network rules** (ABI 4+, a second Landlock layer stacked on the file-system one):
  ``bind`` of a TCP socket is allowed only on the job's ports (``bind_ports``, the slot a daemon
  gave it or ``--ports``) and on port 0 (an ephemeral port chosen by the kernel, outside every
  daemon's slot range: the socket layer binds outgoing connections that way when ``local_ip`` is
  set). ``connect`` is restricted to ``connect_ports`` when the launcher knows them (e.g. the
  ports of the job's nodes); by default it is not, since an RPC may reach any peer's port.
  Landlock filters TCP by port only: hosts (the blacklist) and UDP stay with the socket layer.
* **seccomp socket filter** (a second filter, stacked on the main one): ``socket()`` only for
  ``AF_UNIX``, ``AF_INET`` and ``AF_INET6``, and never ``SOCK_RAW`` or ``SOCK_PACKET``;
  ``socketpair()`` only for ``AF_UNIX``. Netlink, packet, raw, Bluetooth, vsock, AF_ALG and every
  other family answer ``EAFNOSUPPORT``; raw sockets ``EPERM``.

Both need ``no_new_privs``, which :func:`splay.sandbox.kernel.confine_kernel` sets first.
"""
import errno
import os

from . import kernel

__all__ = ["check", "confine_network", "install_socket_filter", "install_port_rules", "socket_filter_program"]

_SYS_SOCKET, _SYS_SOCKETPAIR = 41, 53         # x86-64
_AF_UNIX, _AF_INET, _AF_INET6 = 1, 2, 10
_SOCK_RAW, _SOCK_PACKET, _SOCK_TYPE_MASK = 3, 10, 0xF
_ALU_AND_K = 0x54                             # BPF_ALU | BPF_AND | BPF_K
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_RULESET_SIZE_NET = 16                        # struct landlock_ruleset_attr up to handled_access_net


def _assemble(lines):
    """Classic BPF from ``lines``: a label (str) or ``(code, k, jt_label, jf_label)`` with
    labels for jumps (None: the next instruction). Returns [(code, jt, jf, k)]."""
    labels, position = {}, 0
    for line in lines:
        if isinstance(line, str):
            labels[line] = position
        else:
            position += 1
    program, position = [], 0
    for line in lines:
        if isinstance(line, str):
            continue
        code, k, jt, jf = line
        offset = (lambda label: 0 if label is None else labels[label] - position - 1)
        program.append(kernel._bpf(code, k, offset(jt), offset(jf)))
        position += 1
    return program


def socket_filter_program():
    """The seccomp program of the socket-family wall, as a list of (code, jt, jf, k)."""
    allow = kernel._RET_ALLOW
    no_family = kernel._RET_ERRNO | errno.EAFNOSUPPORT
    no_raw = kernel._RET_ERRNO | errno.EPERM
    ld, jeq, ret = kernel._LD_W_ABS, kernel._JEQ_K, kernel._RET_K
    return _assemble([
        (ld, 4, None, None),                                  # A = arch
        (jeq, kernel._AUDIT_ARCH_X86_64, None, "allow"),      # the main filter refuses others
        (ld, 0, None, None),                                  # A = system call number
        (jeq, _SYS_SOCKET, None, "socketpair"),
        (ld, 16, None, None),                                 # A = domain (low word of args[0])
        (jeq, _AF_UNIX, "allow", None),
        (jeq, _AF_INET, "type", None),
        (jeq, _AF_INET6, "type", "no_family"),
        "type",
        (ld, 24, None, None),                                 # A = type (low word of args[1])
        (_ALU_AND_K, _SOCK_TYPE_MASK, None, None),            # without SOCK_NONBLOCK/CLOEXEC
        (jeq, _SOCK_RAW, "no_raw", None),
        (jeq, _SOCK_PACKET, "no_raw", "allow"),
        "socketpair",
        (jeq, _SYS_SOCKETPAIR, None, "allow"),
        (ld, 16, None, None),
        (jeq, _AF_UNIX, "allow", "no_family"),
        "allow", (ret, allow, None, None),
        "no_family", (ret, no_family, None, None),
        "no_raw", (ret, no_raw, None, None),
    ])


def install_socket_filter():
    """Install the socket-family filter on every thread (TSYNC); needs no_new_privs."""
    kernel.syscalls.seccomp_set_mode_filter(
        kernel.seccomp_program_bytes(socket_filter_program()), kernel._SECCOMP_FILTER_FLAG_TSYNC)


def _ports(ranges):
    """Every port of ``ranges`` (pairs ``(low, high)``, inclusive), sorted, without repeats."""
    ports = set()
    for low, high in ranges:
        low, high = int(low), int(high)
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range {low}-{high} must satisfy 1 <= low <= high <= 65535")
        ports.update(range(low, high + 1))
    return sorted(ports)


def check(bind_ports=None, connect_ports=None):
    """Raise ValueError, naming the argument, unless the port ranges are well formed."""
    try:
        if bind_ports is not None:
            low, high = bind_ports
            _ports([(low, high)])
        if connect_ports is not None:
            _ports([(low, high) for low, high in connect_ports])
    except (TypeError, ValueError) as error:
        raise ValueError(f"confine: bind_ports must be (low, high) and connect_ports a list of "
                         f"(low, high) port ranges, 1 <= low <= high <= 65535 "
                         f"(got bind_ports={bind_ports!r}, connect_ports={connect_ports!r}: "
                         f"{error})") from None


def install_port_rules(bind_ports, connect_ports=None):
    """Confine TCP ``bind`` to ``bind_ports`` (a ``(low, high)`` range) and port 0, and, when
    ``connect_ports`` (a list of ranges) is given, TCP ``connect`` to those ports. Applies to
    the calling thread and the threads it starts. Returns the report's dict."""
    abi = kernel.landlock_abi()
    if abi < 4:
        raise OSError(errno.EOPNOTSUPP, f"Landlock network rules need ABI 4 (Linux 6.7), this "
                                        f"kernel offers ABI {abi}")
    bind = _ports([bind_ports])
    connect = None if connect_ports is None else _ports(connect_ports)
    handled = _NET_BIND_TCP | (_NET_CONNECT_TCP if connect is not None else 0)
    syscalls = kernel.syscalls
    ruleset = syscalls.landlock_create_ruleset(0, handled, 0, _RULESET_SIZE_NET)
    try:
        for port in [0, *bind]:
            syscalls.landlock_add_rule_net_port(ruleset, _NET_BIND_TCP, port)
        for port in connect or ():
            syscalls.landlock_add_rule_net_port(ruleset, _NET_CONNECT_TCP, port)
        syscalls.landlock_restrict_self(ruleset)
    finally:
        os.close(ruleset)
    return {"abi": abi, "bind": [bind[0], bind[-1]],
            "connect": "any" if connect is None else [list(r) for r in connect_ports]}


def confine_network(bind_ports=None, connect_ports=None):
    """Apply the network walls this kernel offers; returns ``(active, reasons)`` for the report:
    ``active["socket_families"]`` (True when the seccomp filter is in place) and
    ``active["tcp_ports"]`` (the Landlock rules, or False: without ``bind_ports`` none are set)."""
    active = {"socket_families": False, "tcp_ports": False}
    reasons = {}
    reason = kernel.unavailable()
    if reason:
        return active, dict.fromkeys(active, reason)
    try:
        install_socket_filter()
        active["socket_families"] = True
    except OSError as error:
        reasons["socket_families"] = f"seccomp socket filter not installed: {error}"
    if bind_ports is None:
        reasons["tcp_ports"] = ("no port range given by the launcher: bind and connect are "
                                "left to the restricted socket layer")
        return active, reasons
    try:
        active["tcp_ports"] = install_port_rules(bind_ports, connect_ports)
    except OSError as error:
        reasons["tcp_ports"] = f"Landlock network rules not installed: {error}"
    return active, reasons

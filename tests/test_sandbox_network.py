"""splay.sandbox.network: the kernel's network walls, which hold without the Python layers.

The hostile job here runs in a process with no audit hook and no restricted socket layer (as a
job whose hook was switched off would be): only the kernel walls of
``splay.sandbox.network.confine_network`` stand, and they stop it binding outside its ports,
connecting to a port it was not given, and opening netlink, packet or raw sockets, while the
sockets a job needs (TCP and UDP in its range, unix sockets) keep working. The last test runs a
job through ``python -m splay.sandbox.run --ports`` and checks both layers and the report.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from splay.deploy.testbed import free_port_range
from splay.sandbox import kernel, network

pytestmark = pytest.mark.timeout(60)

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ABI = kernel.landlock_abi()
needs_kernel = pytest.mark.skipif(kernel.unavailable() is not None,
                                  reason=f"no kernel walls here: {kernel.unavailable()}")
needs_landlock_net = pytest.mark.skipif(ABI < 4, reason=f"Landlock network rules need ABI 4 "
                                                        f"(Linux 6.7); this kernel has ABI {ABI}")

HOSTILE = """
import errno, json, socket, sys
from splay.sandbox import kernel, network
first, outside = int(sys.argv[1]), int(sys.argv[2])       # ports first..first+2 are free
kernel.set_no_new_privs()
active, reasons = network.confine_network((first, first + 1), [(first, first + 1)])
print(json.dumps([active, reasons]), flush=True)

def attempt(name, make):
    try:
        make()
        print(name, "allowed")
    except OSError as error:
        print(name, "refused", errno.errorcode[error.errno])

def bind(port, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s

server = bind(first)
server.listen()
attempt("bind in range", lambda: bind(first + 1))
attempt("bind ephemeral", lambda: bind(0))
attempt("bind another slot", lambda: bind(first + 2))
attempt("connect given port", lambda: socket.create_connection(("127.0.0.1", first)))
attempt("connect other port", lambda: socket.create_connection(("127.0.0.1", outside)))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt("raw ip", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("raw ip6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 58))
attempt("inet socketpair", lambda: socket.socketpair(socket.AF_INET))
attempt("udp", lambda: bind(first + 2, socket.SOCK_DGRAM))
attempt("unix", lambda: socket.socketpair())
print("resolves", socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4][0])
"""


@needs_kernel
@needs_landlock_net
def test_a_job_without_its_python_layers_is_stopped_by_the_kernel(tmp_path):
    import socket
    with socket.socket() as outside:          # a port the job was not given, with a listener
        outside.bind(("127.0.0.1", 0))
        outside.listen()
        app = tmp_path / "hostile.py"
        app.write_text(textwrap.dedent(HOSTILE))
        first = free_port_range(3)
        out = subprocess.run([sys.executable, str(app), str(first), str(outside.getsockname()[1])],
                             env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    active, reasons = json.loads(lines[0])
    assert active["socket_families"] is True and reasons == {}
    assert active["tcp_ports"]["bind"] == [first, first + 1]
    assert lines[1:] == [
        "bind in range allowed", "bind ephemeral allowed", "bind another slot refused EACCES",
        "connect given port allowed", "connect other port refused EACCES",
        "netlink refused EAFNOSUPPORT", "packet refused EAFNOSUPPORT", "raw ip refused EPERM",
        "raw ip6 refused EPERM", "inet socketpair refused EAFNOSUPPORT", "udp allowed",
        "unix allowed", "resolves 127.0.0.1"], out.stdout + out.stderr


def test_the_socket_filter_is_well_formed_classic_bpf():
    program = network.socket_filter_program()
    assert program[-3:] == [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x50000 | 97),
                            (0x06, 0, 0, 0x50000 | 1)]
    for index, (code, jt, jf, k) in enumerate(program):
        if code & 0x07 == 0x05:               # a jump stays inside the program
            assert index + 1 + max(jt, jf) < len(program)


@pytest.mark.parametrize("bind_ports, connect_ports", [
    ((0, 10), None), ((20, 10), None), ((1, 70000), None), ("1-2", None), ((1, 2), [(5,)])])
def test_bad_port_ranges_are_refused_before_anything_changes(bind_ports, connect_ports):
    with pytest.raises(ValueError, match="bind_ports must be"):
        network.check(bind_ports, connect_ports)


@needs_kernel
@needs_landlock_net
def test_sandbox_run_ports_are_the_restricted_layers_and_the_kernels(tmp_path):
    app = tmp_path / "job.py"
    app.write_text(textwrap.dedent("""
        import sys
        from splay.base import *
        first = int(sys.argv[1])
        print("limits", socket.limits()[2:])
        print("inside", socket.bind("127.0.0.1", first + 1) is not None)
        print("outside", socket.bind("127.0.0.1", first + 2), socket.last_error)
    """))
    first = free_port_range(3)
    out = subprocess.run([sys.executable, "-m", "splay.sandbox.run", "--dir", str(tmp_path / "d"),
                          "--ports", f"{first}-{first + 1}", "--max-sockets", "8", "--report",
                          str(app), str(first)],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stderr.split("splay.sandbox: ", 1)[1].splitlines()[0])
    assert report["network"] == {"socket_families": True, "tcp_ports": {
        "abi": ABI, "bind": [first, first + 1], "connect": "any"}}
    assert out.stdout.splitlines() == [
        f"limits (8, {first}, {first + 1}, None)", "inside True", "outside None restricted"]


def test_landlock_net_port_rule_refuses_a_port_past_65535():
    from splayc import syscalls
    with pytest.raises(ValueError, match="port must be 0-65535"):
        syscalls.landlock_add_rule_net_port(-1, syscalls.LANDLOCK_ACCESS_NET_BIND_TCP, 65536)


DEFAULTS_JOB = """
import resource, sys
from splay.base import *
what = sys.argv[1]
if what == "limits":
    print("rlimits", [resource.getrlimit(r)[1] for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU,
                                                          resource.RLIMIT_NOFILE, resource.RLIMIT_FSIZE)])
    print("net", socket.limits())
elif what == "memory":
    block = bytearray(2 << 30)
elif what == "disk":
    with open("big", "wb") as f:
        for _ in range(257):
            f.write(bytes(1 << 20))
elif what == "sockets":
    socks = [socket.udp() for _ in range(300)]
    print("sockets refused after", socks.index(None), socket.last_error)
elif what == "files":
    files = []
    try:
        while len(files) < 1000:
            files.append(open("/dev/null"))
    except OSError as e:
        print("files refused after", len(files), e.strerror)
"""


@pytest.mark.parametrize("what, status, expected", [
    ("limits", 0, None), ("memory", 4, "out of memory"), ("disk", 3, "disk limit"),
    ("sockets", 0, "sockets refused after 128 restricted"), ("files", 0, "Too many open files")])
def test_sandbox_run_defaults_bound_a_job_given_no_limits(tmp_path, what, status, expected):
    from splay.sandbox import run
    app = tmp_path / "job.py"
    app.write_text(textwrap.dedent(DEFAULTS_JOB))
    out = subprocess.run([sys.executable, "-m", "splay.sandbox.run", "--dir", str(tmp_path / "d"),
                          str(app), what], env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == status, out.stdout + out.stderr
    if what == "limits":
        rlimits, net = out.stdout.splitlines()
        values = json.loads(rlimits.split(" ", 1)[1])
        assert values[0] == run.DEFAULTS["max_memory"] and values[2] == run.DEFAULTS["max_files"]
        assert values[3] == run.DEFAULTS["max_disk"]
        assert values[1] >= run.DEFAULTS["max_cpu"]              # used + 600 s, + the grace
        assert net == (f"net ({run.NET_DEFAULTS['max_send']}, {run.NET_DEFAULTS['max_receive']}, "
                       f"{run.NET_DEFAULTS['max_sockets']}, None, None, None)")
    else:
        assert expected in out.stdout + out.stderr

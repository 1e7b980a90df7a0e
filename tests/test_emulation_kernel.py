"""Kernel shaping with tc (splay.emulation.kernel): the tc commands planned for a link model, the
links of one host, what probe finds compared with trying tc directly, and, as root, real traffic
between two network namespaces shaped by apply and restored by clear."""
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from splay.emulation import UNREACHABLE, parse_matrix
from splay.emulation.kernel import (KernelShaping, KernelShapingUnavailable, TcError, apply, clear,
                                    clear_plan, links_for_host, plan, probe)

KBIT = 1000 / 8     # bytes per second in one kbit/s

# Six nodes on four hosts: a, b on 10.9.0.1; c, e on 10.9.0.3; d on 10.9.0.2; f on 10.9.0.10.
MATRIX = """
     a            b     c               d     e              f
a    -            10    50/2000/0.01    20    99/1/0.5       x
b    10           -     50              20    50             x
c    50           50    -               5     1              x
d    20           20    5               -     5              x
e    50           50    1               5     -              x
f    x            x     x               x     x              -
"""
HOSTS = ["10.9.0.1", "10.9.0.1", "10.9.0.3", "10.9.0.2", "10.9.0.3", "10.9.0.10"]


def test_links_for_host_takes_the_lowest_position_of_each_host():
    model = parse_matrix(MATRIX)
    links = links_for_host(model, [1, 0], HOSTS)
    assert links == {"10.9.0.3": (0.05, 2000 * KBIT, 0.01),     # a -> c (not a -> e)
                     "10.9.0.2": (0.02, math.inf, 0.0),         # a -> d
                     "10.9.0.10": UNREACHABLE}                  # a -> f: no connectivity
    # Another host's view; node forms are accepted for hosts.
    nodes = [(ip, 20000 + i) for i, ip in enumerate(HOSTS)]
    assert links_for_host(model, 3, nodes) == {"10.9.0.1": (0.02, math.inf, 0.0),
                                               "10.9.0.3": (0.005, math.inf, 0.0),
                                               "10.9.0.10": UNREACHABLE}
    # A cut made in the model shows in the links taken after it.
    model.cut([0, 1], [2, 4])
    assert links_for_host(model, [0, 1], HOSTS)["10.9.0.3"] == UNREACHABLE


def test_plan_for_three_destinations():
    links = links_for_host(parse_matrix(MATRIX), [0, 1], HOSTS)
    dev = ["dev", "eth1"]
    head = [["tc", "qdisc", "replace", *dev, "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "class", "add", *dev, "parent", "1:", "classid", "1:1", "htb", "rate", "100gbit",
             "quantum", "65536"]]

    def destination(classid, rate, leaf, ip):
        return [["tc", "class", "add", *dev, "parent", "1:", "classid", f"1:{classid}", "htb",
                 "rate", rate, "quantum", "65536"],
                ["tc", "qdisc", "add", *dev, "parent", f"1:{classid}", "handle", f"{classid}:", *leaf],
                ["tc", "filter", "add", *dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                 "match", "ip", "dst", f"{ip}/32", "flowid", f"1:{classid}"]]

    # Classes follow address order (10.9.0.2 < 10.9.0.3 < 10.9.0.10). The netem limit is 1000
    # packets plus a delay's worth at the link's rate in 1000-byte packets (unlimited: 100 Gbit/s).
    assert plan(links, "eth1") == head + \
        destination("10", "100gbit", ["netem", "delay", "20ms", "limit", str(1000 + 250000)], "10.9.0.2") + \
        destination("11", "2mbit", ["netem", "delay", "50ms", "loss", "1%", "limit", "1013"], "10.9.0.3") + \
        destination("12", "100gbit", ["pfifo", "limit", "0"], "10.9.0.10")
    # Without netem: bandwidth and cuts only.
    assert plan(links, "eth1", netem=False) == head + \
        destination("10", "100gbit", ["pfifo"], "10.9.0.2") + \
        destination("11", "2mbit", ["pfifo"], "10.9.0.3") + \
        destination("12", "100gbit", ["pfifo", "limit", "0"], "10.9.0.10")
    assert clear_plan("eth1") == [["tc", "qdisc", "del", "dev", "eth1", "root"]]


def test_plan_units():
    commands = plan({"10.0.0.1": (0.0125, 1500.0, 0.001), "10.0.0.2": (0.0, 1000.125, 0.0),
                     "10.0.0.3": (0.0, 2e12, 0.0)}, "eth0")
    assert commands[2][-3] == "12kbit"                                  # 1500 bytes/s
    assert commands[3][-7:] == ["netem", "delay", "12500us", "loss", "0.1%", "limit", "1001"]
    assert commands[5][-3] == "8001bit" and commands[6][-1] == "pfifo"   # no delay, no loss: fifo
    assert commands[8][-3] == "100gbit"                                   # above 100 Gbit/s: unlimited
    assert plan({}, "eth0") == commands[:2]                               # only the unshaped class


@pytest.mark.parametrize("links, error, words", [
    ({"10.0.0.1": (-0.01, 1000.0, 0.0)}, ValueError, "delay -0.01 s must be finite and not negative"),
    ({"10.0.0.1": (math.inf, 1000.0, 0.5)}, ValueError, "must be finite"),
    ({"10.0.0.1": (0.01, 1000.0, 1.5)}, ValueError, "loss 1.5 is not a probability from 0 to 1"),
    ({"10.0.0.1": (0.01, 1000.0, math.nan)}, ValueError, "not a probability"),
    ({"10.0.0.1": (0.01, 0.0, 0.5)}, ValueError, "bandwidth 0.0 bytes/s must be above 0"),
    ({"10.0.0.1": (0.01, "fast", 0.0)}, ValueError, "is not (delay_s, bandwidth_bytes_per_s, loss)"),
    ({"10.0.0.1": (0.01, 1000.0)}, ValueError, "is not (delay_s, bandwidth_bytes_per_s, loss)"),
    ({"300.0.0.1": (0.01, 1000.0, 0.0)}, ValueError, "'300.0.0.1' is not an IPv4 address"),
    ({"fe80::1": (0.01, 1000.0, 0.0)}, ValueError, "kernel shaping matches IPv4 destinations"),
    ({"node-b": (0.01, 1000.0, 0.0)}, ValueError, "'node-b' is not an IPv4 address"),
    ({"10.0.0.1": (0.01, 1000.0, 0.0), __import__("ipaddress").IPv4Address("10.0.0.1"): (0, 1, 0)},
     ValueError, "destination 10.0.0.1 is given twice"),
    ([("10.0.0.1", (0.01, 1000.0, 0.0))], TypeError, "links must map destination IPv4 addresses"),
])
def test_plan_refuses_bad_links(links, error, words):
    with pytest.raises(error) as raised:
        plan(links, "eth0")
    assert words in str(raised.value)


@pytest.mark.parametrize("device", ["", "a/b", "eth 0", "a-very-long-name0", None])
def test_plan_refuses_bad_device_names(device):
    with pytest.raises(ValueError, match="is not a network device name"):
        plan({}, device)
    with pytest.raises(ValueError, match="is not a network device name"):
        clear_plan(device)


def test_links_for_host_refuses_bad_input():
    model = parse_matrix(MATRIX)
    with pytest.raises(ValueError, match="positions 0 and 2 are on different hosts"):
        links_for_host(model, [0, 2], HOSTS)
    with pytest.raises(ValueError, match="me_positions is empty"):
        links_for_host(model, [], HOSTS)
    with pytest.raises(IndexError, match=r"position 6 is not a node of hosts \(0 to 5\)"):
        links_for_host(model, [6], HOSTS)
    with pytest.raises(ValueError, match=r"hosts\[2\] = '10.9.0' is not an IPv4 address"):
        links_for_host(model, [0], HOSTS[:2] + ["10.9.0"] + HOSTS[3:])


def test_apply_without_netem_refuses_delay_and_loss_unless_partial_is_allowed():
    no_netem = KernelShaping(tc=True, htb=True, netem=False, u32=True, reason="netem is missing")
    links = {"10.0.0.2": (0.05, 250000.0, 0.01), "10.0.0.3": (0.0, 250000.0, 0.0)}
    with pytest.raises(KernelShapingUnavailable) as raised:
        apply(links, "eth0", capabilities=no_netem)
    message = str(raised.value)
    assert "netem is missing" in message and "modprobe sch_netem" in message
    assert "10.0.0.2: 50 ms delay, 1% loss" in message
    assert "allow_partial=True" in message and "splay.emulation.apply" in message
    nothing = KernelShaping(tc=False, htb=False, netem=False, u32=False, reason="no tc binary")
    with pytest.raises(KernelShapingUnavailable, match="not available here: no tc binary"):
        apply({}, "eth0", capabilities=nothing)


def test_apply_and_clear_refuse_unknown_devices_and_namespaces():
    everything = KernelShaping(tc=True, htb=True, netem=True, u32=True)
    if shutil.which("ip") is None:
        pytest.skip("the ip binary (iproute2) is not installed")
    with pytest.raises(ValueError, match=r"no network device 'nosuchdev0' in this host "
                                         r"\(devices there: .*lo"):
        apply({}, "nosuchdev0", capabilities=everything)
    with pytest.raises(ValueError, match="no network device 'nosuchdev0'"):
        clear("nosuchdev0")
    with pytest.raises(ValueError, match="there is no network namespace 'splay-no-such-ns'"):
        clear("lo", netns="splay-no-such-ns")


# -- on this host, with root ------------------------------------------------------------------

def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def _tc_works(netns, *args):
    return subprocess.run(["ip", "netns", "exec", netns, "tc", *args], capture_output=True,
                          timeout=20).returncode == 0


ROOT = os.geteuid() == 0 and shutil.which("tc") is not None and shutil.which("ip") is not None
needs_root = pytest.mark.skipif(not ROOT, reason="needs root and iproute2 (ip, tc)")


@pytest.fixture
def namespaces():
    """Two network namespaces joined by a veth pair: ns A (ka, 10.214.77.1) and ns B (kb,
    10.214.77.2 and 10.214.77.3). Deleted afterwards, whatever happened."""
    a, b = f"splaytest-{os.getpid()}-a", f"splaytest-{os.getpid()}-b"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("-n", a, "link", "add", "ka", "type", "veth", "peer", "name", "kb", "netns", b)
        _ip("-n", a, "addr", "add", "10.214.77.1/24", "dev", "ka")
        _ip("-n", b, "addr", "add", "10.214.77.2/24", "dev", "kb")
        _ip("-n", b, "addr", "add", "10.214.77.3/24", "dev", "kb")
        # One TCP segment per packet: at a few Mbit/s, 64 KB GSO packets would arrive in bursts
        # a quarter of a second apart, too coarse to measure a rate over 2 s.
        _ip("-n", a, "link", "set", "ka", "gso_max_segs", "1")
        for ns, dev in ((a, "ka"), (b, "kb"), (a, "lo"), (b, "lo")):
            _ip("-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        _ip("netns", "del", a, check=False)
        _ip("netns", "del", b, check=False)


@needs_root
def test_probe_matches_trying_tc_directly(namespaces):
    a, _ = namespaces
    found = probe()
    assert all(isinstance(v, bool) for v in (found.tc, found.htb, found.netem, found.u32))
    assert found.tc and isinstance(found.reason, str)
    htb = _tc_works(a, "qdisc", "add", "dev", "ka", "root", "handle", "1:", "htb", "default", "1")
    _tc_works(a, "qdisc", "del", "dev", "ka", "root")
    netem = _tc_works(a, "qdisc", "add", "dev", "ka", "root", "netem", "delay", "1ms")
    _tc_works(a, "qdisc", "del", "dev", "ka", "root")
    assert (found.htb, found.netem) == (htb, netem)
    assert ("netem is missing" in found.reason) == (not netem)
    assert ("no netem" in found.describe()) == (htb and found.u32 and not netem)
    assert probe() is found                                   # cached
    devices = _ip("-n", a, "-o", "link", "show").stdout.count("\n")
    assert probe(a, refresh=True) == found                    # probing inside a given namespace...
    assert _ip("-n", a, "-o", "link", "show").stdout.count("\n") == devices   # ...leaves it as it was
    assert not [ns for ns in _ip("netns", "list").stdout.split() if ns.startswith("splay-probe")]


RECEIVER = r"""
import json, socket, sys, time
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
marks, total = [], 0
while True:
    connection, _ = server.accept()
    connection.settimeout(30)
    while True:
        data = connection.recv(65536)
        if not data:
            break
        total += len(data)
        marks.append((time.monotonic(), total))
    connection.close()
    print(json.dumps(marks), flush=True)
    marks, total = [], 0
"""

SENDER = r"""
import json, socket, sys, time
started = time.monotonic()
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4]))
except OSError as error:
    print(json.dumps({"error": str(error)}), flush=True)
    sys.exit(0)
connected = time.monotonic() - started
s.sendall(b"x" * int(sys.argv[3]))
s.close()
print(json.dumps({"connect_s": connected}), flush=True)
"""


class Receiver:
    """A TCP receiver run in a namespace by ``ip netns exec``, listening on ``ip``:5001."""

    def __init__(self, netns, ip):
        self.process = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", RECEIVER,
                                         ip, "5001"], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def received(self):
        """[(time, bytes so far)] for each read of the next connection, once it has ended."""
        return json.loads(self.process.stdout.readline())

    def rate(self):
        """Bytes per second of the next connection, its first fifth (slow start) left out."""
        marks = self.received()
        total = marks[-1][1]
        start = next(mark for mark in marks if mark[1] >= total / 5)
        return (total - start[1]) / (marks[-1][0] - start[0])

    def stop(self):
        self.process.kill()
        self.process.wait()


def send(netns, ip, size, timeout=10.0):
    """Connect from ``netns`` to ``ip``:5001 and send ``size`` bytes: {"connect_s"} or {"error"}."""
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SENDER, ip, "5001",
                           str(size), str(timeout)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def shaping_or_skip(netns):
    found = probe(netns)
    if not found.can_shape:
        pytest.skip(f"tc cannot shape here: {found.reason}")
    return found


@needs_root
def test_bandwidth_limit_is_kept_and_clear_restores_speed(namespaces):
    a, b = namespaces
    shaping_or_skip(a)
    limit = 2000 * KBIT                                        # 2 Mbit/s
    receiver = Receiver(b, "0.0.0.0")
    try:
        report = apply({"10.214.77.2": (0.0, limit, 0.0)}, "ka", netns=a)
        assert report.links == {"10.214.77.2": (0.0, limit, 0.0)} and not report.partial
        assert "ka in network namespace" in report.describe()
        send(a, "10.214.77.2", int(limit * 2))                 # about 2 s
        shaped = receiver.rate()
        # The limit counts whole packets (headers too): TCP payload gets ~95 % of it.
        assert 0.85 * limit <= shaped <= 1.15 * limit, f"{shaped * 8 / 1e6:.3f} Mbit/s"
        send(a, "10.214.77.3", 5_000_000)                      # another address: not shaped
        assert receiver.rate() > 5 * limit
        assert clear("ka", netns=a) is True
        send(a, "10.214.77.2", 5_000_000)
        unshaped = receiver.rate()
        assert unshaped > 5 * limit, f"{unshaped * 8 / 1e6:.1f} Mbit/s after clear"
        assert clear("ka", netns=a) is False                   # nothing left to remove
        print(f"\nshaped at 2 Mbit/s: {shaped * 8 / 1e6:.3f} Mbit/s of TCP payload; "
              f"after clear: {unshaped * 8 / 1e6:.0f} Mbit/s")
    finally:
        receiver.stop()


@needs_root
def test_a_cut_drops_everything_until_cleared(namespaces):
    a, b = namespaces
    shaping_or_skip(a)
    receiver = Receiver(b, "0.0.0.0")
    try:
        apply({"10.214.77.2": UNREACHABLE}, "ka", netns=a)
        assert "timed out" in send(a, "10.214.77.2", 1000, timeout=1.0)["error"]
        assert "connect_s" in send(a, "10.214.77.3", 1000)     # other addresses still reachable
        assert receiver.received()[-1][1] == 1000
        clear("ka", netns=a)
        assert "connect_s" in send(a, "10.214.77.2", 1000)
    finally:
        receiver.stop()


@needs_root
def test_partial_shaping_without_netem_reports_what_was_left_out(namespaces):
    a, _ = namespaces
    no_netem = dataclasses.replace(shaping_or_skip(a), netem=False)
    links = {"10.214.77.2": (0.05, 2000 * KBIT, 0.01), "10.214.77.3": UNREACHABLE}
    with pytest.raises(KernelShapingUnavailable, match="netem is missing"):
        apply(links, "ka", netns=a, capabilities=no_netem)
    assert "htb" not in _ip("netns", "exec", a, "tc", "qdisc", "show", "dev", "ka").stdout
    report = apply(links, "ka", netns=a, capabilities=no_netem, allow_partial=True)
    assert report.partial and report.left_out == {"10.214.77.2": "50 ms delay, 1% loss"}
    assert report.links == {"10.214.77.2": (0.0, 2000 * KBIT, 0.0), "10.214.77.3": UNREACHABLE}
    assert "left to the in-core emulation (splay.emulation.apply): 10.214.77.2: 50 ms delay" \
        in report.describe()
    classes = _ip("netns", "exec", a, "tc", "class", "show", "dev", "ka").stdout
    assert "rate 2Mbit" in classes
    assert "netem" not in _ip("netns", "exec", a, "tc", "qdisc", "show", "dev", "ka").stdout
    assert clear("ka", netns=a) is True


@needs_root
def test_tc_errors_name_the_command_and_leave_the_device_as_it_was(namespaces):
    a, _ = namespaces
    shaping_or_skip(a)
    # Someone else's root qdisc with handle 1: tc will not replace it by ours.
    _ip("netns", "exec", a, "tc", "qdisc", "add", "dev", "ka", "root", "handle", "1:", "tbf",
        "rate", "1mbit", "burst", "10k", "latency", "50ms")
    with pytest.raises(TcError) as raised:
        apply({"10.214.77.2": (0.0, 2000 * KBIT, 0.0)}, "ka", netns=a)
    error = raised.value
    assert error.command == ["ip", "netns", "exec", a, *plan({}, "ka")[0]]
    assert f"`ip netns exec {a} tc qdisc replace dev ka root handle 1: htb default 1` failed" in str(error)
    assert error.stderr and error.stderr in str(error) and error.returncode != 0
    assert "qdisc tbf 1: root" in _ip("netns", "exec", a, "tc", "qdisc", "show", "dev", "ka").stdout
    assert clear("ka", netns=a) is False                        # not ours: left alone


@needs_root
def test_delay_with_netem(namespaces):
    a, b = namespaces
    found = shaping_or_skip(a)
    if not found.netem:
        pytest.skip(f"netem is not available on this host, delay cannot be shaped in the kernel: "
                    f"{found.reason}")
    receiver = Receiver(b, "0.0.0.0")
    try:
        apply({"10.214.77.2": (0.1, math.inf, 0.0)}, "ka", netns=a)
        delayed = send(a, "10.214.77.2", 1000)["connect_s"]    # the SYN waits 100 ms in A
        assert receiver.received()[-1][1] == 1000
        assert 0.09 <= delayed < 2.0, delayed
        clear("ka", netns=a)
        assert send(a, "10.214.77.2", 1000)["connect_s"] < 0.05
    finally:
        receiver.stop()

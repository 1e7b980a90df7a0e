"""Kernel-level shaping with Linux ``tc``: a host's outgoing links, per destination IPv4 address.

The in-core emulation (`splay.emulation.apply`) shapes the traffic of splay's own sockets. A
deployment that needs the kernel to do it (any program, any protocol) uses this module on each
host: ``links_for_host`` picks this host's outgoing links from a `LinkModel`, ``apply`` installs
them on a network device with ``tc``, ``clear`` removes them. See docs/emulation.md, "Kernel
shaping with tc (deployments)".

>>> from splay.emulation.kernel import plan
>>> for command in plan({"10.0.0.2": (0.05, 125000.0, 0.01)}, "eth0"):
...     print(" ".join(command))
tc qdisc replace dev eth0 root handle 1: htb default 1
tc class add dev eth0 parent 1: classid 1:1 htb rate 100gbit quantum 65536
tc class add dev eth0 parent 1: classid 1:10 htb rate 1mbit quantum 65536
tc qdisc add dev eth0 parent 1:10 handle 10: netem delay 50ms loss 1% limit 1007
tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.0.0.2/32 flowid 1:10

Links are the link model's ``(delay_s, bandwidth_bytes_per_s, loss)``: delay in seconds,
bandwidth in bytes per second (``math.inf``: unlimited), loss a probability in [0, 1]. A link
with loss 1 (a cut: ``(inf, 0.0, 1.0)``) drops everything, with a zero-length queue. Bandwidth
needs htb, delay and loss below 1 need netem, which many kernels lack: ``probe`` finds out.
"""
import ipaddress
import itertools
import math
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

__all__ = ["KernelShaping", "KernelShapingReport", "KernelShapingUnavailable", "TcError",
           "probe", "plan", "clear_plan", "apply", "clear", "links_for_host"]

UNSHAPED_RATE = "100gbit"           # the rate of "unlimited" classes: faster than any device
UNSHAPED_BYTES_PER_S = 100e9 / 8
QUANTUM = "65536"                   # set explicitly: htb's default (rate / 10) warns at both ends
FIRST_CLASS = 0x10                  # destination k gets class 1:(10+k) and leaf qdisc (10+k):, hex
NETEM_NEEDED = ("netem is missing: this kernel has no sch_netem (load it with `modprobe sch_netem`;"
                " Debian/Ubuntu ship it in linux-modules-extra-$(uname -r), Fedora in"
                " kernel-modules-extra)")
_TIMEOUT = 20


class KernelShapingUnavailable(RuntimeError):
    """This host's kernel cannot shape what was asked (no tc, no htb, or no netem for delay/loss)."""


class TcError(RuntimeError):
    """A ``tc`` (or ``ip``) command failed: ``command`` (argument list), ``returncode``, ``stderr``."""

    def __init__(self, command, returncode, stderr):
        self.command, self.returncode, self.stderr = list(command), returncode, stderr.strip()
        super().__init__(f"`{shlex.join(self.command)}` failed (exit {returncode}): {self.stderr}")


@dataclass(frozen=True)
class KernelShaping:
    """What ``tc`` can do on this host, as `probe` found by trying it: the ``tc`` binary is there,
    and the htb qdisc, the netem qdisc and u32 filters work. ``reason`` explains what does not."""
    tc: bool
    htb: bool
    netem: bool
    u32: bool
    reason: str = ""

    @property
    def can_shape(self):
        """True when bandwidth limits and cuts can be shaped (tc, htb and u32 all work)."""
        return self.tc and self.htb and self.u32

    def describe(self):
        """One paragraph: what the kernel can shape here, and why not the rest."""
        if not self.can_shape:
            what = "kernel shaping is not available here"
        elif self.netem:
            what = "the kernel can shape bandwidth, delay, loss and cuts (htb, netem, u32)"
        else:
            what = ("the kernel can shape bandwidth and cuts (htb, u32) but not delay or loss "
                    "(no netem): leave those to the in-core emulation (splay.emulation.apply)")
        return f"{what}: {self.reason}." if self.reason else f"{what}."


@dataclass(frozen=True)
class KernelShapingReport:
    """What `apply` installed on ``device`` (in ``netns``): ``links`` maps each destination IP to the
    ``(delay_s, bandwidth, loss)`` the kernel now applies; ``left_out`` maps destinations to what it
    does not apply (left to the in-core emulation); ``commands`` are the tc commands run."""
    device: str
    netns: object
    links: dict
    left_out: dict = field(default_factory=dict)
    commands: tuple = ()

    @property
    def partial(self):
        """True when some delay or loss asked for was left out (no netem, ``allow_partial=True``)."""
        return bool(self.left_out)

    def describe(self):
        """A readable summary of what is shaped in the kernel and what was left out."""
        where = self.device + (f" in network namespace {self.netns}" if self.netns else "")
        text = f"{where}: {len(self.links)} destinations shaped in the kernel"
        if self.left_out:
            items = "; ".join(f"{ip}: {what}" for ip, what in self.left_out.items())
            text += (f"; not shaped (no netem), left to the in-core emulation "
                     f"(splay.emulation.apply): {items}")
        return text


def _run(command, netns=None, check=True):
    """Run ``command`` (in ``netns`` through ``ip netns exec``); raise `TcError` when it fails."""
    full = (["ip", "netns", "exec", netns] if netns else []) + list(command)
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=_TIMEOUT)
    except FileNotFoundError:
        raise TcError(full, 127, f"{full[0]}: command not found (install iproute2)") from None
    if check and done.returncode != 0:
        raise TcError(full, done.returncode, done.stderr or done.stdout)
    return done


# -- probe ------------------------------------------------------------------------------------

_probed = {}
_scratch_numbers = itertools.count()


def probe(netns=None, refresh=False):
    """Find what ``tc`` can do here by trying it on a throw-away veth pair: returns a
    `KernelShaping`. The pair lives in a scratch network namespace made and deleted for the test
    (or in ``netns`` when given, deleted after); real interfaces are never touched. Cached per
    namespace for the process; ``refresh=True`` tries again (after ``modprobe sch_netem``)."""
    if refresh or netns not in _probed:
        _probed[netns] = _probe(netns)
    return _probed[netns]


def _probe(netns):
    if shutil.which("tc") is None:
        return KernelShaping(False, False, False, False, "the tc binary is not installed "
                             "(package iproute2); kernel shaping needs it")
    if shutil.which("ip") is None:
        return KernelShaping(True, False, False, False, "the ip binary (iproute2) is missing")
    scratch = netns is None
    space = f"splay-probe-{os.getpid()}-{next(_scratch_numbers)}" if scratch else netns
    pair = ("probe0", "probe1") if scratch else tuple(f"spp{os.getpid() % 10**6}{end}" for end in "ab")
    made = []
    try:
        if scratch:
            _run(["ip", "netns", "add", space])
            made.append(["ip", "netns", "del", space])
        _run(["ip", "link", "add", pair[0], "type", "veth", "peer", "name", pair[1]], space)
        made.append(["ip", "netns", "exec", space, "ip", "link", "del", pair[0]])
        return _try_qdiscs(pair[0], space)
    except TcError as error:
        return KernelShaping(True, False, False, False, f"could not make a veth pair to test tc "
                             f"on: {error} (kernel shaping needs root)")
    finally:
        for command in reversed(made):
            subprocess.run(command, capture_output=True, timeout=_TIMEOUT)


def _try_qdiscs(device, netns):
    """Try, on ``device``, the htb tree, a netem leaf and a u32 filter as `plan` makes them."""
    def works(*command):
        done = _run(["tc", *command], netns, check=False)
        return done.returncode == 0, (done.stderr or done.stdout).strip()

    htb, htb_error = works("qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "1")
    if htb:
        htb, htb_error = works("class", "add", "dev", device, "parent", "1:", "classid", "1:10",
                               "htb", "rate", "1mbit", "quantum", QUANTUM)
    netem_parent = ["parent", "1:10"] if htb else ["root"]
    netem, netem_error = works("qdisc", "add", "dev", device, *netem_parent, "handle", "10:",
                               "netem", "delay", "1ms", "loss", "1%")
    if htb and not netem:
        htb, htb_error = works("qdisc", "add", "dev", device, "parent", "1:10", "handle", "10:",
                               "pfifo", "limit", "0")
    u32, u32_error = (works("filter", "add", "dev", device, "parent", "1:", "protocol", "ip", "prio",
                            "1", "u32", "match", "ip", "dst", "10.0.0.1/32", "flowid", "1:10")
                      if htb else (False, "needs htb"))
    problems = [f"htb: {htb_error}" if not htb else "", f"u32: {u32_error}" if not u32 else "",
                f"{NETEM_NEEDED} (tc said: {netem_error})" if not netem else ""]
    return KernelShaping(True, htb, netem, u32, "; ".join(p for p in problems if p))


# -- plan -------------------------------------------------------------------------------------

def _check_device_name(device):
    if not isinstance(device, str) or not 0 < len(device) <= 15 or any(c in device for c in "/ \t\n:"):
        raise ValueError(f"{device!r} is not a network device name (1 to 15 characters, "
                         f"no '/', ':' or spaces, e.g. 'eth0')")
    return device


def _check_link(ip, value):
    """``(ip, delay_s, bandwidth, loss)`` checked, the ip normalised."""
    try:
        address = str(ipaddress.IPv4Address(ip))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"destination {ip!r} is not an IPv4 address (kernel shaping matches "
                         f"IPv4 destinations, e.g. '10.0.0.2')") from None
    try:
        delay, bandwidth, loss = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"link to {address}: {value!r} is not (delay_s, bandwidth_bytes_per_s, "
                         f"loss)") from None
    if not 0.0 <= loss <= 1.0:
        raise ValueError(f"link to {address}: loss {loss!r} is not a probability from 0 to 1")
    if loss < 1.0 and not 0.0 <= delay < math.inf:
        raise ValueError(f"link to {address}: delay {delay!r} s must be finite and not negative")
    if loss < 1.0 and not bandwidth > 0.0:
        raise ValueError(f"link to {address}: bandwidth {bandwidth!r} bytes/s must be above 0 "
                         f"(math.inf for unlimited)")
    return address, delay, bandwidth, loss


def _check_links(links):
    """The links as a list of checked ``(ip, delay_s, bandwidth, loss)``, sorted by address."""
    if not hasattr(links, "items"):
        raise TypeError(f"links must map destination IPv4 addresses to (delay_s, "
                        f"bandwidth_bytes_per_s, loss), not {type(links).__name__}")
    checked = sorted((_check_link(ip, value) for ip, value in links.items()),
                     key=lambda link: ipaddress.IPv4Address(link[0]))
    for a, b in zip(checked, checked[1:]):
        if a[0] == b[0]:
            raise ValueError(f"destination {a[0]} is given twice")
    if len(checked) > 0xFFFF - FIRST_CLASS:
        raise ValueError(f"{len(checked)} destinations: tc classes allow {0xFFFF - FIRST_CLASS}")
    return checked


def _rate(bytes_per_s):
    if bytes_per_s >= UNSHAPED_BYTES_PER_S:       # unlimited, or faster than any device
        return UNSHAPED_RATE
    bits = max(8, round(bytes_per_s * 8))       # tc: 1 kbit = 1000 bits, as the link model
    for unit, size in (("mbit", 10**6), ("kbit", 10**3)):
        if bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit"


def _leaf(delay, bandwidth, loss, netem):
    """The qdisc under a destination's class: drop all (cut), netem, or a plain fifo."""
    if loss >= 1.0:
        return ["pfifo", "limit", "0"]          # a zero-length queue: every packet is dropped
    if not netem or (delay <= 0.0 and loss <= 0.0):
        return ["pfifo"]
    leaf = ["netem"]
    if delay > 0.0:
        micros = round(delay * 1e6)
        leaf += ["delay", f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us"]
    if loss > 0.0:
        leaf += ["loss", f"{loss * 100:.6g}%"]
    # netem holds packets for the delay: room for a delay's worth at the link's rate (counted
    # in 1000-byte packets) on top of its default 1000 packets.
    rate = min(bandwidth, UNSHAPED_BYTES_PER_S)
    return leaf + ["limit", str(1000 + math.ceil(rate * delay / 1000))]


def plan(links, device, netem=True):
    """The ``tc`` commands (argument lists) shaping what ``device`` sends, per destination.

    ``links`` maps destination IPv4 addresses to ``(delay_s, bandwidth_bytes_per_s, loss)`` (the
    link model's units). The root htb qdisc sends other traffic to class 1:1 (unshaped); each
    destination, by address order, gets an htb class at its bandwidth, under it a netem leaf for
    its delay and loss (``pfifo`` when it has none, or when ``netem`` is False: then delay and
    loss are not shaped), and a u32 filter on its address. Pure: runs nothing."""
    device = _check_device_name(device)
    dev = ["dev", device]
    commands = [["tc", "qdisc", "replace", *dev, "root", "handle", "1:", "htb", "default", "1"],
                ["tc", "class", "add", *dev, "parent", "1:", "classid", "1:1", "htb",
                 "rate", UNSHAPED_RATE, "quantum", QUANTUM]]
    for number, (ip, delay, bandwidth, loss) in enumerate(_check_links(links), start=FIRST_CLASS):
        classid = f"1:{number:x}"
        rate = _rate(math.inf if loss >= 1.0 else bandwidth)
        commands += [["tc", "class", "add", *dev, "parent", "1:", "classid", classid, "htb",
                      "rate", rate, "quantum", QUANTUM],
                     ["tc", "qdisc", "add", *dev, "parent", classid, "handle", f"{number:x}:",
                      *_leaf(delay, bandwidth, loss, netem)],
                     ["tc", "filter", "add", *dev, "parent", "1:", "protocol", "ip", "prio", "1",
                      "u32", "match", "ip", "dst", f"{ip}/32", "flowid", classid]]
    return commands


def clear_plan(device):
    """The ``tc`` command removing what `plan` installs: delete the root qdisc of ``device``
    (the kernel puts back its default qdisc)."""
    return [["tc", "qdisc", "del", "dev", _check_device_name(device), "root"]]


# -- apply and clear --------------------------------------------------------------------------

def _check_device(device, netns):
    """Raise ValueError unless ``netns`` (when given) exists and holds network device ``device``."""
    _check_device_name(device)
    if netns is not None and not os.path.exists(os.path.join("/run/netns", str(netns))):
        raise ValueError(f"there is no network namespace {netns!r} (see `ip netns list`)")
    if _run(["ip", "-o", "link", "show", "dev", device], netns, check=False).returncode != 0:
        listing = _run(["ip", "-o", "link", "show"], netns, check=False).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in listing.splitlines() if ":" in line]
        where = f"network namespace {netns}" if netns else "this host"
        raise ValueError(f"there is no network device {device!r} in {where} "
                         f"(devices there: {', '.join(names) or 'none'})")


def _needs_netem(delay, loss):
    """What of a link only netem can shape, in words ("" when nothing: a cut needs no netem)."""
    if loss >= 1.0:
        return ""
    parts = ([f"{delay * 1000:g} ms delay"] if delay > 0.0 else []) + \
            ([f"{loss * 100:g}% loss"] if loss > 0.0 else [])
    return ", ".join(parts)


def apply(links, device, netns=None, capabilities=None, allow_partial=False):
    """Shape what ``device`` (in network namespace ``netns``) sends to each destination with tc,
    as ``links`` says (see `plan`); returns a `KernelShapingReport`. Needs root.

    Replaces the device's root qdisc. ``capabilities`` is a `KernelShaping` (default:
    ``probe(netns)``). Without netem, a delay or a loss below 1 raises `KernelShapingUnavailable`,
    unless ``allow_partial=True``: then only bandwidths and cuts are shaped, and the report's
    ``left_out`` says what to leave to the in-core emulation. A failing tc raises `TcError`
    (after removing what was installed); a missing device or namespace ValueError."""
    checked = _check_links(links)
    capabilities = capabilities or probe(netns)
    if not capabilities.can_shape:
        raise KernelShapingUnavailable(f"{capabilities.describe()} Use the in-core emulation "
                                       f"(splay.emulation.apply) instead.")
    left_out = {} if capabilities.netem else \
        {ip: _needs_netem(d, l) for ip, d, _, l in checked if _needs_netem(d, l)}
    if left_out and not allow_partial:
        first, what = next(iter(left_out.items()))
        raise KernelShapingUnavailable(
            f"{NETEM_NEEDED}, so tc cannot add the delay or loss asked for {len(left_out)} "
            f"destinations (e.g. {first}: {what}). Load netem, or pass allow_partial=True to shape "
            f"bandwidths and cuts only and leave delay and loss to the in-core emulation "
            f"(splay.emulation.apply).")
    _check_device(device, netns)
    commands = plan(links, device, netem=capabilities.netem)
    clear(device, netns)
    try:
        for command in commands:
            _run(command, netns)
    except TcError:
        clear(device, netns)
        raise
    # Without netem the kernel keeps the bandwidths and the cuts (loss 1), nothing else.
    installed = {ip: (d, b, l) if capabilities.netem or l >= 1.0 else (0.0, b, 0.0)
                 for ip, d, b, l in checked}
    return KernelShapingReport(device, netns, installed, left_out, tuple(map(tuple, commands)))


def clear(device, netns=None):
    """Remove the shaping `apply` installed on ``device`` (in ``netns``): True when there was
    some, False when the device had no htb root qdisc of ours. Needs root."""
    _check_device(device, netns)
    shown = _run(["tc", "qdisc", "show", "dev", device, "root"], netns).stdout
    if not shown.startswith("qdisc htb 1: root"):
        return False
    for command in clear_plan(device):
        _run(command, netns)
    return True


# -- the links of one host --------------------------------------------------------------------

def _host_ip(host, position):
    if not isinstance(host, str):
        from splay.node import address
        host = address(host)[0]
    try:
        return str(ipaddress.IPv4Address(host))
    except (ipaddress.AddressValueError, ValueError):
        raise ValueError(f"hosts[{position}] = {host!r} is not an IPv4 address") from None


def links_for_host(model, me_positions, hosts):
    """The links for `apply` on the host holding job positions ``me_positions`` (an int or a
    list): ``{destination ip: model.between(...)}``, one per other host.

    ``hosts[i]`` is the IPv4 address of node i's host (a string, or any node form: Node, (ip,
    port), dict). Shaping is per host: the link to host H is the model's link from the lowest
    position here to the lowest position on H, shared by all nodes of both hosts. Destinations
    with this host's own address are skipped (give each node its own host for per-node links)."""
    ips = [_host_ip(host, i) for i, host in enumerate(hosts)]
    mine = sorted({me_positions} if isinstance(me_positions, int) else set(me_positions))
    if not mine:
        raise ValueError("me_positions is empty: give the job positions this host holds")
    for position in mine:
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(ips):
            raise IndexError(f"position {position!r} is not a node of hosts (0 to {len(ips) - 1})")
    my_ip = ips[mine[0]]
    elsewhere = [p for p in mine if ips[p] != my_ip]
    if elsewhere:
        raise ValueError(f"positions {mine[0]} and {elsewhere[0]} are on different hosts "
                         f"({my_ip} and {ips[elsewhere[0]]}): one host's positions only")
    first_position = {}
    for position, ip in enumerate(ips):
        if ip != my_ip:
            first_position.setdefault(ip, position)
    return {ip: model.between(mine[0], position) for ip, position in first_position.items()}

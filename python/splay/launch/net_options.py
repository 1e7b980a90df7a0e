"""The network-limit options shared by ``splay run``, ``splay submit`` and ``splay.sandbox.run``.

One scheme everywhere (docs/sandbox.md, "Network limits set by the launcher"):

  --max-send SIZE         bytes a node may send in all (k/m/g suffixes: 64m)
  --max-receive SIZE      bytes a node may receive in all
  --max-sockets N         TCP + UDP sockets a node may have open at once
  --ports A-B             the ports a node may bind (A-B inclusive, or one port A)
  --blacklist HOST[,HOST] hosts a node may not connect or send to (repeatable; the entries of
                          restricted_socket: names, *.suffix, 10.0.*, CIDR networks, IPv6)

:func:`add_to` adds them to a parser, :func:`settings` turns the parsed arguments into
restricted-socket settings (checked by ``splay.restricted_socket``, so a bad value is reported
with the option's name before anything starts).
"""
import argparse

from splay import restricted_socket

__all__ = ["add_to", "settings", "parse_size", "parse_ports", "OPTIONS"]

#: option name -> the restricted-socket setting it sets
OPTIONS = {"--max-send": "max_send", "--max-receive": "max_receive",
           "--max-sockets": "max_sockets", "--ports": "start_port-end_port",
           "--blacklist": "blacklist"}

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text):
    """A byte count: digits, or with a k/m/g/t suffix (powers of 1024). ArgumentTypeError if bad."""
    value = str(text).strip().lower()
    if len(value) > 1 and value.endswith("b"):          # "64mb" as "64m"
        value = value[:-1]
    try:
        if value and value[-1] in _UNITS:
            size = int(float(value[:-1]) * _UNITS[value[-1]])
        else:
            size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (examples: 1048576, "
                                         f"512k, 64m, 2g)") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"a size must be >= 0, got {text!r}")
    return size


def parse_ports(text):
    """``"A-B"`` or ``"A"`` -> ``(A, B)``, ports from 1 to 65535, A <= B. ArgumentTypeError if bad."""
    start, dash, end = str(text).strip().partition("-")
    try:
        low, high = int(start), int(end if dash else start)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port range: {text!r} (write A-B, e.g. "
                                         f"20000-20099, or one port)") from None
    if not (1 <= low <= high <= 65535):
        raise argparse.ArgumentTypeError(f"port range {text!r} must be A-B with "
                                         f"1 <= A <= B <= 65535")
    return low, high


def _count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_to(parser, *, when="", defaults=None, ports=True):
    """Add the network-limit options to ``parser``. ``when`` prefixes each help text (e.g.
    ``"with --sandbox: "``); ``defaults`` maps setting names (``max_send``...) to the defaults
    applied when the option is absent (shown in ``--help``). ``ports=False`` leaves ``--ports``
    out (``splay submit``: a daemon gives each node its own port)."""
    defaults = defaults or {}

    def shown(name):
        value = defaults.get(name)
        return "" if value is None else f" (default {value})"

    group = parser.add_argument_group(
        "network limits", "set by the launcher, final for the application (it may tighten "
        "them with restricted_socket.init, never lift them); see docs/sandbox.md")
    group.add_argument("--max-send", type=parse_size, metavar="SIZE",
                       help=f"{when}bytes each node may send in all (k/m/g suffixes)"
                            f"{shown('max_send')}")
    group.add_argument("--max-receive", type=parse_size, metavar="SIZE",
                       help=f"{when}bytes each node may receive in all{shown('max_receive')}")
    group.add_argument("--max-sockets", type=_count, metavar="N",
                       help=f"{when}TCP + UDP sockets each node may have open at once"
                            f"{shown('max_sockets')}")
    if ports:
        group.add_argument("--ports", type=parse_ports, metavar="A-B",
                           help=f"{when}the ports each node may bind (inclusive){shown('ports')}")
    group.add_argument("--blacklist", action="append", default=[], metavar="HOST[,HOST]",
                       help=f"{when}hosts the nodes may not connect or send to: names, *.suffix, "
                            f"10.0.*, 10.0.0.0/8, IPv6 (repeatable)")


def settings(args, defaults=None):
    """The restricted-socket settings of the parsed options (``defaults`` fill absent ones;
    ``{}`` when nothing is limited). ValueError naming the option when a value is refused."""
    out = {k: v for k, v in (defaults or {}).items() if v is not None}
    for name in ("max_send", "max_receive", "max_sockets"):
        if getattr(args, name, None) is not None:
            out[name] = getattr(args, name)
    if getattr(args, "ports", None) is not None:
        out["start_port"], out["end_port"] = args.ports
    blacklist = [host.strip() for text in getattr(args, "blacklist", None) or ()
                 for host in text.split(",") if host.strip()]
    if blacklist:
        out["blacklist"] = blacklist
    try:
        restricted_socket.new_policy(out)
    except ValueError as e:
        raise ValueError(f"--blacklist: {e}" if "blacklist" in str(e) else str(e)) from None
    return out

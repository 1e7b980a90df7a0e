"""splay.restricted_socket: the network sandbox of a deployed node (the manual's restricted_socket).

``init(settings)`` turns on accounting and limits for the sockets of ``splay.socket`` (and so for
``splay.rpc``, ``urpc``, ``rpcq``, ``net``, which use them). The work is done in the compiled
socket layer (``splayc/accounting.pyx``); this module validates the settings and installs them.

>>> from splay import restricted_socket, socket
>>> restricted_socket.init({"max_send": 1 << 20, "max_sockets": 16,
...                         "start_port": 20000, "end_port": 20099,
...                         "blacklist": ["10.*", "*.example.org"]})
>>> socket.limits()
(1048576, None, 16, 20000, 20099, None)

Settings (each optional; absent or None means no limit):

=================  ==========================================================================
``max_send``       total bytes the node may send (TCP and UDP payload)
``max_receive``    total bytes the node may receive
``max_sockets``    TCP + UDP sockets open at the same time (listening and accepted ones count)
``start_port``,    the ports ``bind``/``setsockname`` may use (inclusive); port 0 then means
``end_port``       "the first free port of the range"
``local_ip``       every bind uses this address (whatever is asked), and outgoing TCP
                   connections and unbound UDP sockets leave from it
``blacklist``      hosts the node may not connect or send to: exact host names
                   (``"evil.org"``), ``"*.example.org"`` (any name ending in .example.org),
                   IPv4 addresses, ``"10.0.*"`` prefixes, ``"10.0.0.0/16"`` networks,
                   IPv6 addresses and networks
``udp_drop_ratio`` probability (0-1) that an outgoing datagram is silently dropped
=================  ==========================================================================

A refused operation returns ``None`` with the error ``"restricted"`` (on ``sock.error``, or on
``socket.last_error`` for ``socket.tcp()``/``udp()``/``bind()``/``connect()``), and changes no
counter. Other keys of ``settings`` are ignored, so a job's whole ``settings`` dict can be passed.

Which sockets: a socket takes its node's policy when it is created. In a process of its own
(the node runner, ``python app.py``), ``init`` sets the process-wide policy; inside a node of an
``--in-process`` run (or any thread whose node object accepts attributes), it sets that node's own
``net_policy``, so every in-process node has its own counters. Sockets created before ``init``
are not accounted: call it first (the node runner does, from the job's settings).

Final limits: a launcher (the node runner of ``splay run`` and of the daemons,
``python -m splay.sandbox.run``) calls :func:`seal` after installing the job's limits and before
the application runs. The application may then still call ``init`` to *tighten* them (the keys
it gives must be at least as strict; the others are kept), but any attempt to lift one --
``init`` with a looser value, ``policy().configure(...)``, replacing the policy with
``splayc.accounting.install_default`` or a node's ``net_policy`` -- raises ``splay.Restricted``.
The limits are C fields of the compiled policy, which Python code cannot write.
"""
import ipaddress
import math

from splayc import accounting as _accounting
from splayc.hub import current_node as _current_node

from . import log as _log

__all__ = ["init", "policy", "seal", "is_sealed", "SETTINGS", "new_policy", "has_settings",
           "settings_of"]

#: This module's logger (a ``splay.log`` object, level warning) that users may tune.
l_o = _log.module_logger("restricted_socket")

#: The setting names ``init`` reads.
SETTINGS = ("max_send", "max_receive", "max_sockets", "start_port", "end_port", "local_ip",
            "blacklist", "udp_drop_ratio")


def has_settings(settings):
    """True when ``settings`` (a job's settings dict) contains any restricted-socket setting."""
    return isinstance(settings, dict) and any(settings.get(k) is not None for k in SETTINGS)


def _count(settings, name):
    value = settings.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"restricted_socket setting {name!r} must be a whole number >= 0, "
                             f"got {value!r}")
    if value < 0:
        raise ValueError(f"restricted_socket setting {name!r} must be >= 0, got {value}")
    return value


def _port(settings, name):
    value = _count(settings, name)
    if value is not None and not 1 <= value <= 65535:
        raise ValueError(f"restricted_socket setting {name!r} must be a port between 1 and 65535, "
                         f"got {value}")
    return value


def _blacklist_entry(entry):
    """The normalised form of one blacklist entry, or ValueError saying what is wrong."""
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8", "replace")
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"restricted_socket setting 'blacklist': entries must be non-empty "
                         f"strings, got {entry!r}")
    text = entry.strip().lower().rstrip(".")
    if text in ("*", "*.*", "*.*.*.*"):
        raise ValueError(f"restricted_socket setting 'blacklist': {entry!r} would block every host")
    try:
        if "/" in text:
            ipaddress.ip_network(text, strict=False)
            return text
        if ":" in text:
            ipaddress.IPv6Address(text)
            return text
    except ValueError as e:
        raise ValueError(f"restricted_socket setting 'blacklist': {entry!r} is not a valid "
                         f"address or network ({e})") from None
    parts = text.split(".")
    if all(p.isdigit() or p == "*" for p in parts) and parts[-1] == "*":
        stars = [i for i, p in enumerate(parts) if p == "*"]
        if len(parts) > 4 or stars != list(range(stars[0], len(parts))) \
                or any(int(p) > 255 for p in parts if p != "*"):
            raise ValueError(f"restricted_socket setting 'blacklist': {entry!r} is not a valid "
                             f"IPv4 prefix (write it like '10.0.*')")
        return text
    if all(p.isdigit() for p in parts):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise ValueError(f"restricted_socket setting 'blacklist': {entry!r} is not a valid "
                             f"IPv4 address") from None
        return text
    if "*" in text and not (text.startswith("*.") and "*" not in text[2:]):
        raise ValueError(f"restricted_socket setting 'blacklist': {entry!r}: a wildcard may only "
                         f"start a host name ('*.example.org') or end an IPv4 prefix ('10.0.*')")
    return text


def _validated(settings):
    """The keyword arguments of ``NetPolicy.configure`` for ``settings`` (ValueError if bad)."""
    if not isinstance(settings, dict):
        raise ValueError(f"restricted_socket.init takes a dict of settings, got "
                         f"{type(settings).__name__}")
    start, end = _port(settings, "start_port"), _port(settings, "end_port")
    if start is not None and end is not None and start > end:
        raise ValueError(f"restricted_socket settings 'start_port' ({start}) must not be greater "
                         f"than 'end_port' ({end})")
    local_ip = settings.get("local_ip")
    if local_ip is not None:
        try:
            local_ip = str(ipaddress.ip_address(local_ip))
        except ValueError:
            raise ValueError(f"restricted_socket setting 'local_ip' must be an IP address, "
                             f"got {local_ip!r}") from None
    blacklist = settings.get("blacklist") or ()
    if isinstance(blacklist, (str, bytes)):
        raise ValueError("restricted_socket setting 'blacklist' must be a list of hosts, "
                         f"got the string {blacklist!r} (write [{blacklist!r}])")
    if isinstance(blacklist, dict):            # a Lua-style table {1: "a", 2: "b"}
        blacklist = list(blacklist.values())
    if not isinstance(blacklist, (list, tuple, set, frozenset)):
        raise ValueError(f"restricted_socket setting 'blacklist' must be a list of hosts, "
                         f"got {type(blacklist).__name__}")
    drop = settings.get("udp_drop_ratio")
    if drop is not None:
        if isinstance(drop, bool) or not isinstance(drop, (int, float)) or math.isnan(drop) \
                or not 0.0 <= drop <= 1.0:
            raise ValueError(f"restricted_socket setting 'udp_drop_ratio' must be a number "
                             f"between 0 and 1, got {drop!r}")
    return dict(max_send=_count(settings, "max_send"),
                max_receive=_count(settings, "max_receive"),
                max_sockets=_count(settings, "max_sockets"),
                start_port=start, end_port=end, local_ip=local_ip,
                blacklist=[_blacklist_entry(e) for e in blacklist],
                udp_drop_ratio=float(drop or 0.0))


def settings_of(policy):
    """The settings dict that reproduces ``policy``'s limits (for tightening a sealed policy)."""
    max_send, max_receive, max_sockets, start, end, local_ip = policy.limits()
    return {"max_send": max_send, "max_receive": max_receive, "max_sockets": max_sockets,
            "start_port": start, "end_port": end, "local_ip": local_ip,
            "blacklist": list(policy.blacklist), "udp_drop_ratio": policy.udp_drop_ratio}


def new_policy(settings, position=None):
    """A new ``NetPolicy`` configured from ``settings`` (for launchers giving a node its own);
    in a seeded run (``--seed``, every simulation) its ``udp_drop_ratio`` draws are seeded from
    the run's seed and the node's ``position`` (:func:`splay.sim.seeding.drop_seed`)."""
    p = _seeded(_accounting.NetPolicy(), position)
    p.configure(**_validated(settings))
    return p


def _seeded(policy, position=None):
    """``policy`` with its datagram-drop generator seeded for node ``position`` when the run is
    seeded (so a run repeats its drops), else left on its OS-entropy seed."""
    from splay.sim.seeding import drop_seed
    seed = drop_seed(position)
    if seed is not None:
        policy.seed(seed)
    return policy


def _tighten(sealed, settings):
    """Apply the keys of ``settings`` over the ``sealed`` policy's limits (each must be at least
    as strict: the policy raises Restricted otherwise; blacklist entries are added)."""
    given = _validated(settings)            # ValueError for a bad setting, before anything else
    merged = settings_of(sealed)
    merged.update((k, settings[k]) for k in SETTINGS if settings.get(k) is not None)
    if settings.get("blacklist") is not None:
        merged["blacklist"] = [*merged["blacklist"], *given["blacklist"]]
    sealed.configure(**_validated(merged))


def init(settings=None, node=None):
    """Restrict the sockets created from now on by the calling node (see the module docstring).

    ``node``: the node object to restrict (default: the current one; the whole process when there
    is none). Calling ``init`` again changes the limits and keeps the counters. Raises
    ``ValueError`` naming the bad setting. Once the launcher sealed the limits (:func:`seal`),
    only the keys given change, each must be at least as strict, and a looser one raises
    ``splay.Restricted``.
    """
    settings = {} if settings is None else settings
    if _accounting.is_sealed():
        _tighten(_accounting.default_policy(), settings)
        return
    limits = _validated(settings)
    target = _current_node() if node is None else node
    if target is not None:
        current = getattr(target, "net_policy", None)
        if current is not None and current.sealed:
            _tighten(current, settings)
            return
        if current is None:
            current = _seeded(_accounting.NetPolicy(),
                              getattr(getattr(target, "job", None), "position", None))
            try:
                target.net_policy = current
            except AttributeError:
                target = None            # a node object without attributes: the process default
        if target is not None:
            current.configure(**limits)
            return
    current = _accounting.default_policy()
    if current is None:
        current = _seeded(_accounting.NetPolicy())
    current.configure(**limits)
    _accounting.install_default(current)


def seal():
    """Make the process-wide limits final (the launcher calls it before the application runs).

    Irreversible: afterwards the limits can only be tightened (see the module docstring).
    ValueError when :func:`init` has not installed a process-wide policy.
    """
    _accounting.seal_default()


def is_sealed():
    """True when the launcher has made this process's network limits final."""
    return _accounting.is_sealed()


def policy(node=None):
    """The ``NetPolicy`` of ``node`` (default: the current node), or None when unrestricted."""
    return _accounting.policy_of(node)

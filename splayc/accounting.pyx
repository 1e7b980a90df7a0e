"""Restricted-socket accounting: per-node limits and counters, checked by the socket layer.

A :class:`NetPolicy` holds the limits of ``splay.restricted_socket.init()`` (bytes sent and
received, open sockets, bind port range, forced local IP, host blacklist, UDP drop ratio) and the
node's counters. ``splayc.tcp`` and ``splayc.udp`` look the policy up once per socket, at creation,
from the node of the creating thread (:func:`policy_for`): the node object's ``net_policy``
attribute when it has one (``--in-process`` nodes each get their own), else the process-wide
default installed by :func:`install_default`. With no policy the sockets only test ``policy is
None``; with one they do integer compares and adds in the few places where bytes or sockets are
counted. A check that refuses changes no counter.

Validation of user settings is done in Python by ``splay.restricted_socket``; ``configure`` takes
already-checked values.

Final limits: the launcher (node runner, ``python -m splay.sandbox.run``) installs the policy and
then calls :func:`seal_default` before the application runs. From then on, the limits live here,
in C fields no Python code can write: ``configure`` only accepts limits at least as strict as the
sealed ones, ``install_default`` is refused, and a node object's ``net_policy`` attribute is
ignored (the sealed default applies to every socket of the process). Each refusal raises
``splay.Restricted`` saying which limit the application tried to lift.
"""
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free

from splayc.uv cimport sockaddr, sockaddr_in, sockaddr_in6, AF_INET, AF_INET6
from splayc.addr cimport sockaddr_to_tuple, fill_sockaddr
from splayc.errors import Restricted

import ipaddress as _ipaddress
import os as _os

cdef extern from "arpa/inet.h":
    uint32_t ntohl(uint32_t)


cdef NetPolicy _default = None


cdef class NetPolicy:
    """The limits and counters of one node's restricted sockets (see the module docstring)."""

    def __cinit__(self):
        self.max_send = -1
        self.max_receive = -1
        self.max_sockets = -1
        self.blacklist = ()
        self.bl_exact = frozenset()
        self.bl_suffixes = ()
        self.bl_v6_prefixes = ()
        self.rng = int.from_bytes(_os.urandom(8), "little") | 1
        self.name_cache = {}

    def __dealloc__(self):
        free(self.bl_nets)
        free(self.bl_masks)

    def configure(self, max_send=None, max_receive=None, max_sockets=None, start_port=None,
                  end_port=None, local_ip=None, blacklist=(), udp_drop_ratio=0.0):
        """Set the limits (None: unlimited). Counters are kept: limits may change during a run.

        ``blacklist`` entries are already normalised by ``splay.restricted_socket``: lower-case
        host names, ``*.suffix`` wildcards, IPv4 addresses, ``a.b.*`` prefixes, ``a.b.c.d/n`` and
        IPv6 networks.
        """
        cdef list nets = []
        cdef int i
        if self.sealed:
            self._check_tighter(max_send, max_receive, max_sockets, start_port, end_port, local_ip,
                                blacklist, udp_drop_ratio)
        self.max_send = -1 if max_send is None else max_send
        self.max_receive = -1 if max_receive is None else max_receive
        self.max_sockets = -1 if max_sockets is None else max_sockets
        self.start_port = 0 if start_port is None else start_port
        self.end_port = 0 if end_port is None else end_port
        if self.start_port and not self.end_port:
            self.end_port = 65535
        if self.end_port and not self.start_port:
            self.start_port = 1
        self.local_ip = local_ip
        self.has_local_addr = local_ip is not None and fill_sockaddr(local_ip, 0, &self.local_addr) == 0
        self.name_cache = {}
        self.udp_drop_ratio = float(udp_drop_ratio or 0.0)
        self.blacklist = tuple(blacklist)
        exact, suffixes, v6 = [], [], []
        for entry in self.blacklist:
            net = _ipv4_network(entry)
            if net is not None:
                nets.append(net)
            elif ":" in entry:
                v6.append(_ipaddress.IPv6Network(entry, strict=False))
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                exact.append(entry)
        free(self.bl_nets)
        free(self.bl_masks)
        self.bl_nets = <uint32_t*>malloc((len(nets) or 1) * sizeof(uint32_t))
        self.bl_masks = <uint32_t*>malloc((len(nets) or 1) * sizeof(uint32_t))
        if self.bl_nets == NULL or self.bl_masks == NULL:
            raise MemoryError()
        for i in range(len(nets)):
            self.bl_nets[i] = nets[i][0]
            self.bl_masks[i] = nets[i][1]
        self.n_bl_nets = len(nets)
        self.bl_exact = frozenset(exact)
        self.bl_suffixes = tuple(suffixes)
        self.bl_v6_prefixes = tuple(v6)
        self.has_blacklist = len(self.blacklist) > 0

    def _check_tighter(self, max_send, max_receive, max_sockets, start_port, end_port, local_ip,
                       blacklist, udp_drop_ratio):
        """Raise Restricted unless every new limit is at least as strict as the sealed one."""
        for name, new, old in (("max_send", max_send, self.max_send),
                               ("max_receive", max_receive, self.max_receive),
                               ("max_sockets", max_sockets, self.max_sockets)):
            if old >= 0 and (new is None or new > old):
                _refuse_lift(name, old, new)
        if self.start_port:
            low = 1 if start_port is None and end_port is not None else start_port
            high = 65535 if end_port is None and start_port is not None else end_port
            if low is None or high is None or low < self.start_port or high > self.end_port:
                _refuse_lift("start_port-end_port", f"{self.start_port}-{self.end_port}",
                             "any" if low is None and high is None else f"{low}-{high}")
        if self.local_ip is not None and local_ip != self.local_ip:
            _refuse_lift("local_ip", self.local_ip, local_ip)
        missing = set(self.blacklist) - set(blacklist or ())
        if missing:
            _refuse_lift("blacklist", list(self.blacklist), list(blacklist or ()),
                         f"entries {sorted(missing)} would be removed")
        if float(udp_drop_ratio or 0.0) < self.udp_drop_ratio:
            _refuse_lift("udp_drop_ratio", self.udp_drop_ratio, udp_drop_ratio)

    def seal(self):
        """Make these limits final: from now on ``configure`` only tightens them (irreversible)."""
        self.sealed = True

    def seed(self, value):
        """Seed the generator that decides which datagrams ``udp_drop_ratio`` drops (tests)."""
        if self.sealed:
            raise Restricted("restricted_socket: the launcher's network limits are final; the "
                             "UDP drop generator cannot be reseeded")
        self.rng = (int(value) & 0xFFFFFFFFFFFFFFFF) | 1

    # ------------------------------------------------------------------ checks (the hot path)

    cdef bint reserve_send(self, size_t n):
        if self.max_send >= 0 and self.total_sent + n > <unsigned long long>self.max_send:
            self.refused += 1
            return False
        self.total_sent += n
        return True

    cdef void refund_send(self, size_t n):
        self.total_sent -= n if n <= self.total_sent else self.total_sent

    cdef bint take_receive(self, size_t n):
        if self.max_receive >= 0 and self.total_received + n > <unsigned long long>self.max_receive:
            self.refused += 1
            return False
        self.total_received += n
        return True

    cdef bint open_socket(self, bint udp):
        if self.max_sockets >= 0 and self.tcp_sockets + self.udp_sockets >= self.max_sockets:
            self.refused += 1
            return False
        if udp:
            self.udp_sockets += 1
        else:
            self.tcp_sockets += 1
        return True

    cdef void close_socket(self, bint udp):
        if udp:
            self.udp_sockets -= 1
        else:
            self.tcp_sockets -= 1

    cdef bint port_allowed(self, int port):
        return self.start_port == 0 or self.start_port <= port <= self.end_port

    cdef bint addr_blocked(self, const sockaddr* sa):
        cdef uint32_t a
        cdef int i
        if not self.has_blacklist:
            return False
        if sa.sa_family == AF_INET:
            a = ntohl((<const sockaddr_in*>sa).sin_addr.s_addr)
            for i in range(self.n_bl_nets):     # IPv4 addresses are /32 networks here
                if (a & self.bl_masks[i]) == self.bl_nets[i]:
                    return True
            return False
        if sa.sa_family == AF_INET6 and self.bl_v6_prefixes:   # IPv6 addresses are /128 ones
            address = _ipaddress.IPv6Address(sockaddr_to_tuple(sa)[0])
            for net in self.bl_v6_prefixes:
                if address in net:
                    return True
        return False

    cdef bint name_blocked(self, object host) except -1:
        cdef object cached
        if not self.has_blacklist:
            return False
        cached = self.name_cache.get(host)
        if cached is not None:
            return cached is True
        blocked = self._match_name(host)
        if len(self.name_cache) < 4096:
            self.name_cache[host] = blocked
        return blocked

    cdef bint _match_name(self, object host) except -1:
        if isinstance(host, bytes):
            host = (<bytes>host).decode("utf-8", "replace")
        name = str(host).lower().rstrip(".")
        if name in self.bl_exact:
            return True
        for suffix in self.bl_suffixes:
            if name.endswith(suffix):
                return True
        return False

    cdef bint drop_datagram(self):
        cdef uint64_t x
        if self.udp_drop_ratio <= 0.0:
            return False
        x = self.rng                       # xorshift64
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        self.rng = x
        return (x >> 11) * (1.0 / 9007199254740992.0) < self.udp_drop_ratio

    cdef void note_refused(self):
        self.refused += 1

    cdef object link_pair(self, object address):
        # The emulation layer makes a peer's Links when the node first talks to it
        # (splay.emulation.apply): a node of a 100,000-node topology holds the pairs of the peers
        # it talks to, not 100,000 of them.
        pair = self.links.get(address)
        if pair is None and self.link_source is not None:
            pair = self.link_source(address)
            if pair is not None:
                self.links[address] = pair
        return pair

    # ------------------------------------------------------------------ the manual's functions

    def limits(self):
        """``(max_send, max_receive, max_sockets, start_port, end_port, local_ip)``; None = no limit."""
        return (None if self.max_send < 0 else self.max_send,
                None if self.max_receive < 0 else self.max_receive,
                None if self.max_sockets < 0 else self.max_sockets,
                self.start_port or None, self.end_port or None, self.local_ip)

    def stats(self):
        """``(total_sent, total_received, total_tcp_sockets, total_udp_sockets)``: bytes so far,
        sockets open now."""
        return (self.total_sent, self.total_received, self.tcp_sockets, self.udp_sockets)

    def infos(self):
        """One human-readable line of the limits and the current usage."""
        def lim(v):
            return "unlimited" if v is None else str(v)
        ms, mr, mk, sp, ep, ip = self.limits()
        ports = "any" if sp is None else f"{sp}-{ep}"
        parts = [f"sent {self.total_sent}/{lim(ms)} bytes",
                 f"received {self.total_received}/{lim(mr)} bytes",
                 f"sockets {self.tcp_sockets} tcp + {self.udp_sockets} udp/{lim(mk)}",
                 f"bind ports {ports}", f"local ip {ip or 'any'}",
                 f"blacklist {len(self.blacklist)} entries"]
        if self.udp_drop_ratio > 0:
            parts.append(f"udp drop ratio {self.udp_drop_ratio:g}")
        parts.append(f"refused {self.refused}")
        return "restricted sockets: " + ", ".join(parts)

    def __repr__(self):
        return f"<NetPolicy {self.infos()}>"


cdef object _ipv4_network(str entry):
    """``(net, mask)`` as host-order integers for an IPv4 entry (address, ``a.b.*``, CIDR), or None."""
    cdef int prefix
    if "/" in entry and ":" not in entry:
        n = _ipaddress.IPv4Network(entry, strict=False)
        return (int(n.network_address), int(n.netmask))
    parts = entry.split(".")
    if not parts or len(parts) > 4:
        return None
    # (negative indexes are not used: the core is compiled with wraparound=False)
    if parts[len(parts) - 1] == "*":
        while parts and parts[len(parts) - 1] == "*":
            parts = parts[:len(parts) - 1]
        if not all(p.isdigit() and int(p) < 256 for p in parts):
            return None
        prefix = 8 * len(parts)
        value = 0
        for p in parts:
            value = (value << 8) | int(p)
        value <<= 32 - prefix
        mask = ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF) if prefix else 0
        return (value, mask)
    if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        return (int(_ipaddress.IPv4Address(entry)), 0xFFFFFFFF)
    return None


def _refuse_lift(name, old, new, detail=None):
    raise Restricted(f"restricted_socket: the network limit {name}={old} was set by the launcher "
                     f"(splay run, splay.sandbox.run or the daemon) and is final: the application "
                     f"may only tighten it, not change it to {new}"
                     + (f" ({detail})" if detail else "")
                     + "; ask for more with the launcher's options (--max-send, --ports, ...)")


cdef NetPolicy policy_for(object node):
    """The policy of sockets created by ``node``: its ``net_policy``, else the process default.
    Once the default is sealed it applies to every node of the process."""
    cdef object p
    if node is not None and (_default is None or not _default.sealed):
        p = getattr(node, "net_policy", None)
        if p is not None:
            return <NetPolicy?>p
    return _default


def install_default(NetPolicy policy):
    """Make ``policy`` the process-wide default (sockets created from now on use it); None: off.

    Raises Restricted once the default is sealed (:func:`seal_default`)."""
    global _default
    if _default is not None and _default.sealed:
        if policy is _default:
            return
        raise Restricted("restricted_socket: the network limits were set by the launcher (splay "
                         "run, splay.sandbox.run or the daemon) and are final: the process-wide "
                         "policy cannot be replaced or removed; tighten it with "
                         "restricted_socket.init({...}) instead")
    _default = policy


def seal_default():
    """Make the process-wide policy final (irreversible): the launcher calls it once it has
    installed the job's limits, before the application runs. Afterwards ``install_default`` is
    refused, ``configure`` only tightens, and node objects' own ``net_policy`` are ignored.
    ValueError when no default policy is installed."""
    if _default is None:
        raise ValueError("seal_default: no process-wide policy is installed (call "
                         "restricted_socket.init first)")
    _default.sealed = True


def is_sealed():
    """True when the process-wide policy is final (see :func:`seal_default`)."""
    return _default is not None and _default.sealed


def default_policy():
    """The process-wide default policy, or None."""
    return _default


def policy_of(node=None):
    """The policy that sockets created by ``node`` (default: the current node) would use."""
    if node is None:
        from splayc.hub import current_node
        node = current_node()
    return policy_for(node)

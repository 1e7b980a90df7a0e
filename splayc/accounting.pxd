# Restricted-socket accounting (splayc/accounting.pyx): the per-node limits and counters the socket
# modules (splayc.tcp, splayc.udp) consult. A socket looks its policy up ONCE, when it is created:
#
#     from splayc.accounting cimport NetPolicy, policy_for
#     self.policy = policy_for(self.node)       # None when the node is not restricted
#
# and on the hot path does only `if self.policy is not None:` followed by integer compares and
# adds. Every check that refuses leaves the counters unchanged ("a refused operation does not
# count"); the caller then fails the operation with the error "restricted".
from libc.stdint cimport uint32_t, uint64_t
from splayc.uv cimport sockaddr, sockaddr_storage

cdef class NetPolicy:
    # limits; -1 = unlimited (ports: 0 = no range)
    cdef readonly long long max_send, max_receive, max_sockets
    cdef readonly int start_port, end_port
    cdef readonly object local_ip             # str or None: every bind uses this address
    cdef readonly double udp_drop_ratio       # 0: none dropped
    cdef readonly tuple blacklist             # the entries as given (for limits/infos)
    # counters
    cdef readonly unsigned long long total_sent, total_received
    cdef readonly long long tcp_sockets, udp_sockets
    cdef readonly unsigned long long refused   # operations refused with "restricted"
    cdef readonly bint sealed                 # set by the launcher: limits may only tighten now
    # the blacklist, compiled
    cdef bint has_blacklist
    cdef frozenset bl_exact                   # lower-case host names and IP literals
    cdef tuple bl_suffixes                    # "*.example.org" -> ".example.org"
    cdef uint32_t* bl_nets                    # IPv4 prefixes: (address & mask) == net
    cdef uint32_t* bl_masks
    cdef int n_bl_nets
    cdef tuple bl_v6_prefixes                 # IPv6 prefixes as lower-case text ("fe80:*")
    cdef uint64_t rng                         # xorshift state for udp_drop_ratio
    cdef dict name_cache                      # host object -> blocked? (bounded; names repeat)
    cdef sockaddr_storage local_addr          # local_ip parsed once (port 0)
    cdef bint has_local_addr
    cdef public dict links                    # emulation: (ip, port) -> (Link out, Link in); None: off
    cdef public object link_source            # emulation: (ip, port) -> pair or None, for a peer
                                              # not in links yet (its pair is then kept there)

    cdef bint reserve_send(self, size_t n)    # True (and counted) when n more bytes may leave
    cdef void refund_send(self, size_t n)     # a reserved send did not leave after all
    cdef bint take_receive(self, size_t n)    # True (and counted) when n more bytes may come in
    cdef bint open_socket(self, bint udp)     # True (and counted) when one more socket may open
    cdef void close_socket(self, bint udp)
    cdef bint port_allowed(self, int port)
    cdef bint addr_blocked(self, const sockaddr* sa)
    cdef bint name_blocked(self, object host) except -1
    cdef bint _match_name(self, object host) except -1
    cdef bint drop_datagram(self)
    cdef void note_refused(self)
    cdef object link_pair(self, object address)   # links' pair for address, made on first use


cdef NetPolicy policy_for(object node)

# Network emulation in the socket layer (splayc/shaping.pyx): one Link per direction between this
# node and a peer job node. NetPolicy.links maps a peer's (ip, port) to (Link out, Link in); TCP
# sockets that connect to such a peer keep the pair (tcp.pyx), UDP sends look it up per datagram.
from libc.stdint cimport uint64_t

cdef class Link:
    cdef readonly double delay          # one-way delay, seconds
    cdef readonly double rate           # bytes per second; 0: unlimited
    cdef readonly double loss           # probability that a datagram is lost
    cdef readonly bint cut              # a partition separates the two nodes
    cdef readonly double duplicate      # probability that a datagram is sent twice (splay.faults)
    cdef readonly double reorder        # probability that a datagram is held back behind later ones
    cdef readonly bint active           # anything to do (delay, rate, loss or cut)
    cdef uint64_t delay_ns
    cdef uint64_t next_free_ns          # token bucket: when the link is free again
    cdef uint64_t rng

    cdef uint64_t pace(self, size_t n)  # when n more bytes have left (ns, hub.clock_ns: virtual in a simulation)
    cdef bint lose(self)                # this datagram is lost
    cdef double draw(self)              # a uniform number in [0, 1) of the link's generator

# Cooperative UDP sockets over libuv (splayc/udp.pyx). Datagrams are received by libuv into a
# per-socket queue of (data, ip, port); receive/receivefrom take from it, yielding while it is empty.
from libc.stdint cimport uint64_t
from splayc.uv cimport uv_udp_t, sockaddr_storage, sockaddr
from splayc.hub cimport Task
from splayc.tcp cimport Selectable
from splayc.accounting cimport NetPolicy


cdef class UDP(Selectable):
    cdef uv_udp_t* handle
    cdef readonly object node          # the node (Task.node) that created it: accounting, cleanup
    cdef public object _splay_node     # set by hub.track()
    cdef bint closed, receiving
    cdef double timeout                # seconds; < 0: block forever
    cdef public object error           # the last error message
    cdef readonly unsigned long long bytes_sent, bytes_received
    cdef uint64_t created_ns
    cdef object queue                  # collections.deque of (data, ip, port)
    cdef int recv_err
    cdef Task reader
    cdef unsigned long reader_token
    cdef sockaddr_storage last_addr    # the sender of the last datagram, and its (ip, port)
    cdef tuple last_source
    # restricted sockets (splayc/accounting.pyx): looked up once, at creation; None = unrestricted
    cdef NetPolicy policy
    cdef bint counted                  # counted in policy's open sockets (until closed)
    cdef bint refused                  # creation refused by the policy: every operation says "restricted"
    cdef bint bound                    # setsockname done (or bound to local_ip by the first send)

    cdef object _receive(self, Py_ssize_t size, bint with_source)
    cdef object _sendto(self, object data, const sockaddr_storage* addr)
    cdef void _start_receiving(self)
    cdef void _wake_reader(self)
    cdef void _count_sent(self, size_t n)
    cdef void _count_received(self, size_t n)
    cdef void close_c(self)
    cdef int _bind_to(self, object ip, int port) except? -99999
    cdef int _bind_local(self, const sockaddr* dest) except? -99999
    cdef bint _refuse(self)

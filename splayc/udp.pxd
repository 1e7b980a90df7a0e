# Cooperative UDP sockets over libuv (splayc/udp.pyx). Datagrams are received by libuv into a
# per-socket queue of (data, ip, port); receive/receivefrom take from it, yielding while it is empty.
# What TCP and UDP share (node, policy, counters, error, close_c ...) is in splayc/sockbase.pxd.
from splayc.uv cimport uv_udp_t, sockaddr_storage, sockaddr
from splayc.sockbase cimport SocketBase


cdef class UDP(SocketBase):
    cdef uv_udp_t* handle
    cdef bint closed, receiving
    cdef object queue                  # collections.deque of (data, ip, port)
    cdef int recv_err
    cdef sockaddr_storage last_addr    # the sender of the last datagram, and its (ip, port)
    cdef tuple last_source
    cdef bint bound                    # setsockname done (or bound to local_ip by the first send)

    cdef object _receive(self, Py_ssize_t size, bint with_source)
    cdef object _sendto(self, object data, const sockaddr_storage* addr)
    cdef void _start_receiving(self)
    cdef int _bind_local(self, const sockaddr* dest) except? -99999


# A new UDP socket: a simulated one while a simulated network is installed (splayc/simnet.pyx,
# set_simulated), else UDP().
cdef UDP udp_new()

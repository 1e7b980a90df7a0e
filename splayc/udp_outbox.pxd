# Datagrams of one UDP socket that leave together, in one sendmmsg per loop iteration
# (splayc/udp_outbox.pyx): urpc's calls, retries and frees, and its server's replies.
from splayc.uv cimport uv_prepare_t, sockaddr_storage
from splayc.hub cimport Hub
from splayc.udp cimport UDP


cdef struct OutboxMessage:          # one queued datagram: where it goes (its bytes are in `datas`)
    sockaddr_storage addr
    unsigned int addrlen


cdef class Outbox:
    cdef UDP sock
    cdef Hub hub
    cdef uv_prepare_t* prepare       # runs flush() just before the loop polls (while queued)
    cdef OutboxMessage* messages     # [0, count) queued, capacity `cap`
    cdef Py_ssize_t count, cap
    cdef list datas                  # the queued datagrams' bytes, in queue order
    cdef list owners                 # what to tell of a datagram that could not be sent (or None)
    cdef object on_failure           # on_failure(owner, message, (ip, port)), for a failed send

    cdef int add(self, bytes data, const sockaddr_storage* addr, object owner) except -1
    cdef int flush(self) except -1
    cdef int _failed(self, object owner, str message, Py_ssize_t i) except -1
    cdef void close(self)


# Send one datagram to ip:port now: True, or None with the reason on s.error.
cdef object send_now(UDP s, bytes data, object ip, object port)

# Send `data` to ip:port through `box` (queued, see the module) when its socket is a plain one whose
# descriptor exists; else now (send_now): True, or None with the reason on the socket's error.
cdef object send_soon(Outbox box, bytes data, object ip, object port, object owner)

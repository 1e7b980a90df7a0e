# Socket addresses for the socket modules (splayc.tcp, splayc.udp): node forms -> sockaddr,
# sockaddr -> (ip, port), libuv error codes -> LuaSocket error strings, and cooperative name
# resolution (uv_getaddrinfo) for host names that are not IP literals.
from splayc.uv cimport sockaddr, sockaddr_storage

cdef str error_message(int err)
cdef int fill_sockaddr(object ip, int port, sockaddr_storage* out) except? -99999
cdef tuple sockaddr_to_tuple(const sockaddr* sa)

cdef enum:
    ERR_RESTRICTED = -50001    # not a libuv code: an operation refused by restricted sockets

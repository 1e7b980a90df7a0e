# The calling side of splay.urpc (splayc/urpc_client.pyx); send_to is shared with the serving side
# (splayc/urpc_server.pyx).
from splayc.udp cimport UDP

# The largest datagram (bytes) urpc sends or accepts, as the original (splay.urpc.MAX_DATAGRAM).
cdef enum:
    URPC_MAX_DATAGRAM = 8192

# Send one datagram to ip:port: True, or None with the reason on s.error.
cdef object send_to(UDP s, bytes data, object ip, object port)

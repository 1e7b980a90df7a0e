# The calling side of splay.urpc (splayc/urpc_client.pyx).
from splayc.udp cimport UDP

# The largest datagram (bytes) urpc sends or accepts, as the original (splay.urpc.MAX_DATAGRAM).
cdef enum:
    URPC_MAX_DATAGRAM = 8192

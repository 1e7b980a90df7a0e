# What the cooperative socket types share (splayc/sockbase.pyx): the base class of splayc.tcp.TCP
# and splayc.udp.UDP, and the helpers both modules use.
#
#     from splayc.sockbase cimport SocketBase, close_handle, remaining, deadline_after
#
#     cdef class TCP(SocketBase): ...
#     if self._open(<uv_handle_t*>h, False):   # set-up: node, policy (max_sockets), tracking
#         self.handle = h                       # (False: refused, h is closed, error "restricted")
#
# A subclass keeps its own typed libuv handle and tells the base about it by overriding
# _uv_handle (liveness, getfd), _getname (getsockname/getpeername), _bind_to (the policy-checked
# bind) and _close_handle (close_c); the base does the accounting, the waking and the policy checks.
from libc.stdint cimport uint64_t
from splayc.uv cimport uv_handle_t, uv_buf_t, uv_hrtime, sockaddr, sockaddr_storage
from splayc.hub cimport Hub, Task, clock_ns
from splayc.accounting cimport NetPolicy


cdef class SocketBase:
    # what socket.select needs
    cdef Hub hub
    cdef list select_waiters          # (Task, token) of socket.select calls watching this socket
    cdef int n_waiting                # tasks waiting on this handle: uv_ref while > 0
    # the socket's owner, state and counters
    cdef readonly object node         # the node (Task.node) that created it: accounting, cleanup
    cdef public object _splay_node    # set by hub.track()
    cdef double timeout               # seconds; < 0: block forever
    cdef public object error          # the last error message ("closed", "timeout", ...)
    cdef readonly unsigned long long bytes_sent, bytes_received
    cdef uint64_t created_ns
    cdef Task reader                  # the task waiting to receive (or accept), if any
    cdef unsigned long reader_token
    # restricted sockets (splayc/accounting.pyx): looked up once, at creation; None = unrestricted
    cdef NetPolicy policy
    cdef bint datagram                # a UDP socket (the policy counts TCP and UDP sockets apart)
    cdef bint counted                 # counted in policy's open sockets (until closed)
    cdef bint refused                 # creation refused by the policy: every operation says "restricted"

    # set-up and close
    cdef bint _open(self, uv_handle_t* h, bint datagram) except -1
    cdef void _uncount(self)
    cdef void close_c(self)
    cdef bint _close_handle(self)
    # what the subclass provides
    cdef uv_handle_t* _uv_handle(self)
    cdef int _getname(self, sockaddr* sa, int* namelen, bint peer)
    cdef int _bind_to(self, object ip, int port) except? -99999
    # socket.select
    cdef bint _readable(self)
    cdef bint _writable(self)
    cdef void _ref(self)
    cdef void _unref(self)
    cdef void _wake_select(self)
    # waiting, accounting, the policy
    cdef void _wake_reader(self)
    cdef uint64_t _deadline(self)
    cdef void _count_sent(self, size_t n)
    cdef void _count_received(self, size_t n)
    cdef str _closed_error(self)
    cdef bint _refuse(self)
    cdef bint _name_refused(self, object ip) except -1
    cdef bint _addr_refused(self, const sockaddr* sa)
    cdef int _bind_allowed(self, object ip, int port) except? -99999
    cdef object _address(self, bint peer)


cdef void free_handle_cb(uv_handle_t* handle) noexcept with gil
cdef void close_handle(uv_handle_t* handle)
cdef void landing_alloc_cb(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept with gil
cdef bytes as_bytes(object data, str what)


cdef inline double remaining(uint64_t deadline):
    """Seconds left before ``deadline`` (0: no deadline gives -1, i.e. wait forever)."""
    cdef uint64_t now
    if deadline == 0:
        return -1.0
    now = clock_ns()
    if now >= deadline:
        return 0.0
    return (deadline - now) / 1e9


cdef inline uint64_t deadline_after(double timeout):
    """The clock_ns() (hub.pxd: virtual in a simulation, else uv_hrtime()) at which ``timeout``
    seconds from now end; 0 (none) for a negative, NaN or huge timeout (beyond any run, and the
    uint64 ns range)."""
    cdef uint64_t d
    if not (0 <= timeout <= 1e9):
        return 0
    d = clock_ns() + <uint64_t>(timeout * 1e9)
    return d if d != 0 else 1

"""What the cooperative TCP and UDP sockets share: :class:`SocketBase` and a few helpers.

* Set-up (``_open``): the socket records the node that created it (``Task.node``) and looks that
  node's restricted-socket ``NetPolicy`` up once (``splayc/accounting.pyx``); with one, the socket
  must fit under max_sockets or it is born closed, every operation failing with "restricted". The
  handle points back at the object through ``handle.data`` (borrowed; NULLed when the object
  closes or dies), is ``uv_unref``'d while nobody waits on it and is freed in its close callback.
* Close (``close_c``): the socket leaves the policy's count, the subclass closes its handle
  (``_close_handle``), and every waiting thread is woken to see "closed".
* The policy checks both socket types make: a refusal notes itself on the policy and fails with
  "restricted" (``_refuse``); the blacklist (``_name_refused``, ``_addr_refused``); the
  policy-checked bind (``_bind_allowed``: forced local IP, port range, port 0 in a range).
* Addresses and counters: ``getsockname``/``getpeername``, ``getstats``, ``getfd``; bytes are
  counted in ``_count_sent`` / ``_count_received`` only.
* ``landing_alloc_cb``: one 64 KiB buffer every read lands in. Sharing it is safe: libuv calls
  alloc, read and the read callback in a row, and the callbacks copy the data out before returning.
"""
from libc.stdlib cimport free

from splayc.uv cimport *
from splayc.hub cimport get_hub, node_of_current
from splayc.addr cimport sockaddr_to_tuple, ERR_RESTRICTED
from splayc.accounting cimport policy_for

cdef enum:
    LANDING_SIZE = 65536          # the largest UDP payload fits

cdef char _landing[LANDING_SIZE]


cdef void free_handle_cb(uv_handle_t* handle) noexcept with gil:
    free(handle)


cdef void close_handle(uv_handle_t* handle):
    """Detach ``handle`` from its object and close it (freed by the close callback)."""
    handle.data = NULL
    uv_close(handle, free_handle_cb)


cdef void landing_alloc_cb(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept with gil:
    buf.base = _landing
    buf.len = LANDING_SIZE


cdef bytes as_bytes(object data, str what):
    """``str`` is UTF-8 encoded; bytes-like objects are taken as they are."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return (<str>data).encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


cdef class SocketBase:
    """Base of the TCP and UDP sockets: set-up, close, accounting, the policy checks, addresses,
    and what ``socket.select`` needs (see the module docstring)."""

    def __cinit__(self):
        self.timeout = -1.0
        self.select_waiters = []
        self.created_ns = clock_ns()       # the hub's clock: virtual in a simulation

    def __dealloc__(self):
        # (runs after the subclass's __dealloc__, which closed its handles)
        self._uncount()

    # ------------------------------------------------------------------ set-up and close

    cdef bint _open(self, uv_handle_t* h, bint datagram) except -1:
        """Adopt the new handle ``h`` (see the module docstring): True, or False when the policy
        refuses the socket (``h`` is closed, the socket is closed, ``error`` is "restricted")."""
        self.hub = get_hub()
        self.datagram = datagram
        self.node = node_of_current(self.hub)
        self.policy = policy_for(self.node)
        if self.policy is not None:
            if not self.policy.open_socket(datagram):
                # max_sockets reached: an inert, closed socket whose every operation says why.
                close_handle(h)
                self.refused = True
                self.error = "restricted"
                return False
            self.counted = True
        h.data = <void*>self
        uv_unref(h)                        # idle sockets never keep the loop alive
        self.hub.track(self)
        return True

    cdef void _uncount(self):
        """Leave the policy's count of open sockets (once)."""
        if self.counted:
            self.counted = False
            self.policy.close_socket(self.datagram)

    cdef void close_c(self):
        """Close the socket; the first close wakes every waiting thread (they get "closed")."""
        self._uncount()
        if not self._close_handle():
            return
        self._wake_reader()
        self._wake_select()
        if self.hub is not None:
            self.hub.untrack(self)

    cdef bint _close_handle(self):
        """Mark the socket closed and close its handle: False when it was closed already."""
        return False

    # ------------------------------------------------------------------ what the subclass provides

    cdef uv_handle_t* _uv_handle(self):
        """The socket's libuv handle (NULL once closed)."""
        return NULL

    cdef int _getname(self, sockaddr* sa, int* namelen, bint peer):
        """Fill ``sa`` with the local (or the peer's) address of the open handle: 0, or a negative
        libuv error."""
        return UV_EBADF

    cdef int _bind_to(self, object ip, int port) except? -99999:
        """Bind the handle to ``ip:port``: 0, or a negative libuv error."""
        return UV_EBADF

    # ------------------------------------------------------------------ socket.select

    cdef bint _readable(self):
        return False

    cdef bint _writable(self):
        return False

    cdef void _ref(self):
        cdef uv_handle_t* h
        self.n_waiting += 1
        if self.n_waiting == 1:
            h = self._uv_handle()
            if h != NULL:
                uv_ref(h)

    cdef void _unref(self):
        cdef uv_handle_t* h
        self.n_waiting -= 1
        if self.n_waiting == 0:
            h = self._uv_handle()
            if h != NULL:
                uv_unref(h)

    cdef void _wake_select(self):
        cdef list waiters = self.select_waiters
        cdef Task t
        self.select_waiters = []
        for t, token in waiters:
            t.hub.wake(t, token, None)

    # ------------------------------------------------------------------ waiting and accounting

    cdef void _wake_reader(self):
        if self.reader is not None:
            self.hub.wake(self.reader, self.reader_token, None)

    cdef uint64_t _deadline(self):
        return deadline_after(self.timeout)

    cdef void _count_sent(self, size_t n):
        self.bytes_sent += n

    cdef void _count_received(self, size_t n):
        self.bytes_received += n

    # ------------------------------------------------------------------ restricted sockets

    cdef str _closed_error(self):
        return "restricted" if self.refused else "closed"

    cdef bint _refuse(self):
        """Record a refusal by the policy: ``error`` is "restricted"; returns False."""
        self.policy.note_refused()
        self.error = "restricted"
        return False

    cdef bint _name_refused(self, object ip) except -1:
        """True (refusal recorded) when the policy's blacklist holds the host name or IP ``ip``."""
        if self.policy is not None and self.policy.has_blacklist and self.policy.name_blocked(ip):
            self._refuse()
            return True
        return False

    cdef bint _addr_refused(self, const sockaddr* sa):
        """True (refusal recorded) when the policy's blacklist holds the address ``sa``."""
        if self.policy is not None and self.policy.addr_blocked(sa):
            self._refuse()
            return True
        return False

    cdef int _bind_allowed(self, object ip, int port) except? -99999:
        """Bind as the policy allows: a forced local IP replaces ``ip``, the port must be in the
        policy's range (port 0: the first free port of the range). 0, or a negative libuv error
        (ERR_RESTRICTED when the policy refuses, the refusal recorded)."""
        cdef NetPolicy policy = self.policy
        cdef int err
        cdef int candidate
        if policy is None:
            return self._bind_to(ip, port)
        if policy.local_ip is not None:
            ip = policy.local_ip               # forced local IP, whatever was asked
        if port != 0 and not policy.port_allowed(port):
            policy.note_refused()
            return ERR_RESTRICTED
        if port == 0 and policy.start_port:
            err = UV_EADDRINUSE
            for candidate in range(policy.start_port, policy.end_port + 1):
                err = self._bind_to(ip, candidate)
                if err != UV_EADDRINUSE and err != UV_EACCES:
                    break
            return err
        return self._bind_to(ip, port)

    # ------------------------------------------------------------------ LuaSocket methods

    cdef object _address(self, bint peer):
        """``(ip, port)`` of the local end (or of the peer), or None."""
        cdef sockaddr_storage ss
        cdef int namelen = sizeof(ss)
        if self._uv_handle() == NULL or self._getname(<sockaddr*>&ss, &namelen, peer) < 0:
            return None
        return sockaddr_to_tuple(<sockaddr*>&ss)

    def getsockname(self):
        """``(ip, port)`` of the local end, or None (closed, or not bound yet)."""
        return self._address(False)

    def getpeername(self):
        """``(ip, port)`` of the peer (of a connected socket, or set by setpeername), or None."""
        return self._address(True)

    def gettimeout(self):
        """The timeout set by settimeout (None: block forever)."""
        return None if self.timeout < 0 else self.timeout

    def getstats(self):
        """``(bytes received, bytes sent, age in seconds)`` (LuaSocket's order)."""
        return (self.bytes_received, self.bytes_sent, (clock_ns() - self.created_ns) / 1e9)

    def getfd(self):
        """The OS file descriptor, or -1 (closed, or no OS socket yet)."""
        cdef int fd
        cdef uv_handle_t* h = self._uv_handle()
        if h == NULL or uv_fileno(h, &fd) < 0:
            return -1
        return fd

    def close(self):
        """Close the socket (waiting threads get "closed"); closing twice is fine. True."""
        self.close_c()
        return True

"""Cooperative UDP sockets over libuv, with LuaSocket's methods.

libuv delivers each datagram to ``_recv_cb``, which appends ``(data, ip, port)`` to the
socket's queue (at most ``MAX_QUEUED`` datagrams; beyond that reception pauses and the kernel
buffers or drops, as UDP may) and wakes the waiting receiver with its wake token. Sends go out
with ``uv_udp_try_send``; when the kernel buffer is full they are queued with ``uv_udp_send``
from a request owning a ``Py_buffer`` of the data (UDP sends never wait, as in LuaSocket).
Set-up, close, liveness (the handle is ``uv_unref``'d except while a task waits on it), byte
counting and the policy checks shared with TCP are in ``splayc/sockbase.pyx``. Restricted
sockets: the node's ``NetPolicy`` (``splayc/accounting.pyx``) is looked up once at creation; with
one, creation (max_sockets),
``setsockname`` (port range, local_ip), ``sendto``/``setpeername`` (blacklist), sends (max_send,
udp_drop_ratio) and the receive callback (max_receive: a datagram that does not fit is dropped and
the next receive fails "restricted") consult it.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memcpy, memset

from splayc.uv cimport *
from splayc.hub cimport Hub, Task, get_hub, clock_ns
from splayc.addr cimport error_message, fill_sockaddr, sockaddr_to_tuple, ERR_RESTRICTED
from splayc.accounting cimport NetPolicy
from splayc.shaping cimport Link
from splayc.sockbase cimport SocketBase, close_handle, landing_alloc_cb, as_bytes, remaining

from collections import deque

from splay.node import address as _node_address

cdef enum:
    MAX_QUEUED = 4096             # datagrams queued before reception pauses


cdef void _recv_cb(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                   unsigned flags) noexcept with gil:
    cdef UDP s
    cdef size_t addrlen
    if handle.data == NULL:
        return
    s = <UDP>handle.data
    if nread < 0:
        s.recv_err = <int>nread
    elif addr == NULL:
        return                          # libuv's "nothing more to read" signal
    elif s.policy is not None and not s.policy.take_receive(<size_t>nread):
        s.recv_err = ERR_RESTRICTED     # past max_receive: dropped, the next receive says so
    else:
        addrlen = sizeof(sockaddr_in) if addr.sa_family == AF_INET else sizeof(sockaddr_in6)
        if s.last_source is None or memcmp(&s.last_addr, addr, addrlen) != 0:
            memset(&s.last_addr, 0, sizeof(sockaddr_storage))
            memcpy(&s.last_addr, addr, addrlen)
            s.last_source = sockaddr_to_tuple(addr)
        s.queue.append((PyBytes_FromStringAndSize(buf.base, nread),) + s.last_source)
        s._count_received(<size_t>nread)
        if len(s.queue) >= MAX_QUEUED:
            uv_udp_recv_stop(handle)
            s.receiving = False
    s._wake_reader()
    if s.select_waiters:
        s._wake_select()


cdef struct SendRequest:
    uv_udp_send_t req
    Py_buffer view


cdef void _send_cb(uv_udp_send_t* req, int status) noexcept with gil:
    cdef SendRequest* ctx = <SendRequest*>req
    PyBuffer_Release(&ctx.view)
    free(ctx)


cdef class UDP(SocketBase):
    """A cooperative UDP socket (LuaSocket's unconnected and connected UDP objects).

    Created by ``socket.udp()``. ``sendto``/``receivefrom`` work unconnected; after
    ``setpeername`` use ``send``/``receive``. Failures return ``None`` with the message on
    ``self.error`` ("timeout", "closed", "connection refused", ...).
    """

    def __cinit__(self):
        self.queue = deque()

    def __init__(self):
        cdef uv_udp_t* h = <uv_udp_t*>malloc(sizeof(uv_udp_t))
        cdef int err
        if h == NULL:
            raise MemoryError()
        err = uv_udp_init(get_hub().loop, h)
        if err < 0:
            free(h)
            raise OSError(f"cannot create a UDP socket: {error_message(err)}")
        if self._open(<uv_handle_t*>h, True):
            self.handle = h
        else:
            self.closed = True

    def __dealloc__(self):
        if self.handle != NULL:
            close_handle(<uv_handle_t*>self.handle)
            self.handle = NULL

    def __repr__(self):
        return f"<splay.socket.udp {'closed' if self.closed else 'open'} {id(self):#x}>"

    # ------------------------------------------------------------------ what SocketBase asks for

    cdef uv_handle_t* _uv_handle(self):
        return <uv_handle_t*>self.handle

    cdef int _getname(self, sockaddr* sa, int* namelen, bint peer):
        if peer:
            return uv_udp_getpeername(self.handle, sa, namelen)
        return uv_udp_getsockname(self.handle, sa, namelen)

    cdef int _bind_to(self, object ip, int port) except? -99999:
        """Bind the handle to ``ip:port``: 0, or a negative libuv error."""
        cdef sockaddr_storage ss
        cdef int err = fill_sockaddr(ip, port, &ss)
        if err == 0:
            err = uv_udp_bind(self.handle, <sockaddr*>&ss, 0)
        return err

    cdef bint _close_handle(self):
        if self.closed:
            return False
        self.closed = True
        if self.handle != NULL:
            close_handle(<uv_handle_t*>self.handle)
            self.handle = NULL
        self.receiving = False
        return True

    # ------------------------------------------------------------------ internals

    cdef void _start_receiving(self):
        cdef int err
        if self.receiving or self.handle == NULL:
            return
        err = uv_udp_recv_start(self.handle, landing_alloc_cb, _recv_cb)
        if err < 0:
            self.recv_err = err
        else:
            self.receiving = True

    cdef bint _readable(self):
        if self.closed:
            return True
        self._start_receiving()
        return len(self.queue) > 0 or self.recv_err != 0

    cdef bint _writable(self):
        return True

    cdef object _receive(self, Py_ssize_t size, bint with_source):
        cdef uint64_t deadline = self._deadline()
        cdef double left
        cdef Task t
        cdef int err
        while True:
            if self.queue:
                item = self.queue.popleft()
                if not self.receiving and len(self.queue) < MAX_QUEUED // 2:
                    self._start_receiving()
                data = item[0]
                if len(data) > size:
                    data = data[:size]         # like recvfrom: the rest of the datagram is lost
                if with_source:
                    return (data, item[1], item[2])
                return data
            if self.closed:
                self.error = self._closed_error()
                return None
            if self.recv_err:
                err, self.recv_err = self.recv_err, 0
                self.error = error_message(err)
                return None
            if self.reader is not None and not self.reader.killed:
                self.error = "busy: another thread is already receiving on this socket"
                return None
            left = remaining(deadline)
            if left == 0.0:
                self.error = "timeout"
                return None
            t = self.hub.begin_block()
            self._start_receiving()
            self.reader = t
            self.reader_token = t.token
            self._ref()
            try:
                self.hub.block(t, left)
            finally:
                if self.reader is t:
                    self.reader = None
                self._unref()
            if t.timed_out and not self.queue:
                self.error = "timeout"
                return None

    cdef object _sendto(self, object data, const sockaddr_storage* addr):
        cdef Py_buffer view
        cdef uv_buf_t buf
        cdef SendRequest* ctx
        cdef int r
        cdef NetPolicy policy = self.policy
        if self.closed:
            self.error = self._closed_error()
            return None
        if policy is not None:
            if addr != NULL and self._addr_refused(<const sockaddr*>addr):
                return None
            if not policy.reserve_send(<size_t>len(data)):
                self.error = "restricted"
                return None
            if policy.local_ip is not None and not self.bound:
                # Forced local IP: an unbound socket's first send binds it there (any port).
                r = self._bind_local(<const sockaddr*>addr)
                if r < 0:
                    policy.refund_send(<size_t>len(data))
                    self.error = error_message(r)
                    return None
            if policy.drop_datagram():
                # udp_drop_ratio: the network "lost" it; it was sent as far as the node knows.
                self._count_sent(<size_t>len(data))
                return True
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        buf.base = <char*>view.buf
        buf.len = <size_t>view.len
        r = uv_udp_try_send(self.handle, &buf, 1, <const sockaddr*>addr)
        if r == UV_EAGAIN:
            ctx = <SendRequest*>malloc(sizeof(SendRequest))
            if ctx == NULL:
                PyBuffer_Release(&view)
                raise MemoryError()
            ctx.view = view                # the request owns the buffer from here on
            r = uv_udp_send(&ctx.req, self.handle, &buf, 1, <const sockaddr*>addr, _send_cb)
            if r < 0:
                PyBuffer_Release(&ctx.view)
                free(ctx)
        else:
            PyBuffer_Release(&view)
        if r < 0:
            if policy is not None:
                policy.refund_send(<size_t>buf.len)
            self.error = error_message(r)
            return None
        self._count_sent(<size_t>buf.len)
        return True

    # ------------------------------------------------------------------ LuaSocket methods

    def sendto(self, data, address, port=None):
        """Send one datagram to a node or ``ip, port``: True, or None with ``self.error``."""
        cdef sockaddr_storage ss
        cdef int err
        data = as_bytes(data, "a datagram")
        ip, p = _node_address(address, port)
        if self._name_refused(ip):
            return None
        if self.policy is not None and self.policy.links is not None and not self.closed:
            pair = self.policy.link_pair((ip, p))
            if pair is not None and (<Link>pair[0]).active:
                return self._send_emulated(<Link>pair[0], data, ip, p)
        err = fill_sockaddr(ip, p, &ss)
        if err < 0:
            self.error = error_message(err)
            return None
        return self._sendto(data, &ss)

    def _send_emulated(self, Link link, data, ip, port):
        """A datagram to an emulated peer: lost (cut, or with the link's loss probability; it
        counts as sent), or sent by a thread after the link's rate and delay. True."""
        cdef uint64_t due
        if link.cut or link.lose():
            if not self.policy.reserve_send(<size_t>len(data)):
                self.error = "restricted"
                return None
            self._count_sent(<size_t>len(data))
            return True
        due = link.pace(<size_t>len(data)) + link.delay_ns
        if link.reorder > 0.0 and link.draw() < link.reorder:
            due += <uint64_t>((10.0 + 40.0 * link.draw()) * 1e6)    # held back 10-50 ms
        self.hub.spawn(self._send_at, (due, data, ip, port))
        if link.duplicate > 0.0 and link.draw() < link.duplicate:
            self.hub.spawn(self._send_at, (due, data, ip, port))     # the copy, not counted
        return True

    def _send_at(self, uint64_t due, data, ip, port):
        cdef uint64_t now = clock_ns()
        cdef sockaddr_storage ss
        if due > now:
            self.hub.sleep((due - now) / 1e9)
        if fill_sockaddr(ip, port, &ss) == 0:
            self._sendto(data, &ss)

    def send(self, data):
        """Send one datagram to the peer set by setpeername: True, or None."""
        return self._sendto(as_bytes(data, "a datagram"), NULL)

    def receivefrom(self, size=8192):
        """Wait for a datagram: ``(data, ip, port)`` (data cut to ``size`` bytes), or None."""
        return self._receive(int(size), True)

    def receive(self, size=8192):
        """Wait for a datagram: its data (cut to ``size`` bytes), or None ("timeout", ...)."""
        return self._receive(int(size), False)

    def setsockname(self, address, port=None):
        """Bind to a local node or ``ip, port`` (``"*"``: every interface): True or None."""
        cdef int err
        ip, p = _node_address(address, port, default_ip="0.0.0.0")
        if self.closed:
            self.error = self._closed_error()
            return None
        err = self._bind_allowed(ip, p)
        if err < 0:
            self.error = error_message(err)
            return None
        self.bound = True
        self._start_receiving()          # datagrams sent to us queue up from now on
        return True

    cdef int _bind_local(self, const sockaddr* dest) except? -99999:
        """Bind a socket that has no OS socket yet to the policy's local_ip, any port (when the
        family suits ``dest``, which may be NULL): 0 or a negative libuv error."""
        cdef int fd
        cdef int err = 0
        cdef NetPolicy policy = self.policy
        self.bound = True
        if uv_fileno(<uv_handle_t*>self.handle, &fd) == 0:
            return 0                       # already has its address (connected by setpeername)
        if policy.has_local_addr and (dest == NULL or
                (<sockaddr*>&policy.local_addr).sa_family == dest.sa_family):
            err = uv_udp_bind(self.handle, <sockaddr*>&policy.local_addr, 0)
        return err

    def setpeername(self, address, port=None):
        """Fix the peer (``"*"``: go back to unconnected): True or None."""
        cdef sockaddr_storage ss
        cdef int err
        if self.closed:
            self.error = self._closed_error()
            return None
        if address in ("*", b"*") and port is None:
            err = uv_udp_connect(self.handle, NULL)
            if err == UV_ENOTCONN:
                err = 0
        else:
            ip, p = _node_address(address, port)
            if self._name_refused(ip):
                return None
            err = fill_sockaddr(ip, p, &ss)
            if err == 0 and self._addr_refused(<sockaddr*>&ss):
                return None
            if err == 0 and self.policy is not None and self.policy.local_ip is not None \
                    and not self.bound:
                err = self._bind_local(<sockaddr*>&ss)
            if err == 0:
                err = uv_udp_connect(self.handle, <sockaddr*>&ss)
        if err < 0:
            self.error = error_message(err)
            return None
        return True

    def settimeout(self, t, mode=None):
        """Limit each receive to ``t`` seconds (None or negative: wait forever). True."""
        if mode is not None and mode not in ("b", "t", b"b", b"t"):
            raise ValueError(f"settimeout mode must be 'b' or 't', got {mode!r}")
        self.timeout = -1.0 if t is None or float(t) < 0 else float(t)
        return True

    def setoption(self, name, value=None):
        """Set "broadcast" or "reuseaddr" (booleans): True, or None for an unknown option."""
        cdef int fd
        cdef int flag = 1 if value else 0
        cdef int opt
        if isinstance(name, bytes):
            name = name.decode()
        if name == "broadcast":
            opt = SO_BROADCAST
        elif name == "reuseaddr":
            opt = SO_REUSEADDR
        else:
            self.error = f"unsupported option {name!r}: use broadcast or reuseaddr"
            return None
        if self.handle == NULL or uv_fileno(<uv_handle_t*>self.handle, &fd) < 0:
            self.error = "closed" if self.handle == NULL else "no socket yet: call setsockname first"
            return None
        if setsockopt(fd, SOL_SOCKET, opt, &flag, sizeof(int)) != 0:
            self.error = f"cannot set option {name!r}"
            return None
        return True

    def dirty(self):
        """True when received datagrams wait in the queue."""
        return len(self.queue) > 0

    def is_closed(self):
        """True once the socket is closed."""
        return self.closed


# The simulated network's socket class while one is installed (splay.sim.network), else None.
cdef object _simulated = None


def set_simulated(cls):
    """Make ``udp_new()`` and :func:`new_udp` create ``cls`` sockets (a UDP subclass of the
    simulated network), or plain ones again (None)."""
    global _simulated
    _simulated = cls


cdef UDP udp_new():
    if _simulated is not None:
        return _simulated()
    return UDP()


def new_udp():
    """A new UDP socket: simulated while a simulated network is installed (``socket.udp()``)."""
    return udp_new()

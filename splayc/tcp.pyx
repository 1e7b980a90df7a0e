"""Cooperative TCP sockets over libuv stream handles, with LuaSocket's methods and patterns.

How a socket works (see docs/socket.md for the user's view):

* The ``uv_tcp_t`` is malloc'd, points back at its Python object through ``handle.data``
  (borrowed; NULLed when the object closes or dies) and is freed in the close callback.
  Every callback checks ``data`` for NULL first. What TCP shares with UDP (set-up, close,
  liveness, counters, the policy checks, addresses) is ``SocketBase`` in ``splayc/sockbase.pyx``.
* libuv callbacks never switch greenlets: they append to the read buffer and call ``hub.wake``
  with the wake token the waiting task registered, so a late callback cannot wake a task that is
  by then waiting for something else.
* Reading is eager: a connected socket reads into its own malloc'd buffer (through one shared
  64 KiB landing buffer) until 1 MiB is buffered with nobody receiving, then stops until a
  receive drains it. Patterns are parsed in C (``memchr`` for the line end); the read callback
  wakes the receiver only when its pattern can complete.
* Writes try ``uv_try_write`` first; whatever the kernel does not take goes to ``uv_write`` from
  a malloc'd request that owns a ``Py_buffer`` of the data and a reference to the waiting task.
* Liveness: a handle is ``uv_unref``'d except while a task waits on it (``_ref``/``_unref``), so
  an idle socket never keeps ``events.run()`` alive.
* Accounting: bytes are counted in ``_count_sent`` / ``_count_received`` only, and every socket
  knows the node (``Task.node``) that created it. Restricted sockets: the node's ``NetPolicy``
  (``splayc/accounting.pyx``) is looked up once at creation; ``policy is None`` is the only cost
  when a node is unrestricted. With a policy, creation (max_sockets), bind (port range, local_ip),
  connect (blacklist), send (max_send, reserved before the write) and the read callback
  (max_receive) consult it; a refusal fails with "restricted" and changes no counter.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from libc.errno cimport errno, EINPROGRESS
from posix.unistd cimport close
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memcpy, memchr, memmove

from splayc.uv cimport *
from splayc.hub cimport Hub, Task, get_hub, clock_ns, runnable_mark, stop_poll_if_runnable
from splayc.addr cimport error_message, fill_sockaddr, sockaddr_to_tuple, ERR_RESTRICTED
from splayc.accounting cimport NetPolicy
from splayc.shaping cimport Link
from splayc.sockbase cimport (SocketBase, close_handle, landing_alloc_cb, as_bytes, remaining,
                              deadline_after)

from collections import deque
import sys

from splay.node import address as _node_address

cdef enum:
    WRITABLE_QUEUE = 1 << 16      # select() calls a socket writable below this many queued bytes
    MIN_ACCEPT_QUEUE = 64
    FIRST_ACCEPT_QUEUE = 4        # entries allocated at listen(): most servers never hold more
# HIGH_WATER and the R_* results of _wait_read are declared in tcp.pxd (the RPC fast path uses them).

BUSY_MESSAGE = "busy: another thread is already receiving (or accepting) on this socket"


# ---------------------------------------------------------------------------- libuv callbacks

cdef void _read_cb(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept with gil:
    cdef TCP s
    if stream.data == NULL:
        return
    s = <TCP>stream.data
    if nread > 0:
        if s.policy is not None and not s.policy.take_receive(<size_t>nread):
            # Past max_receive: this chunk is dropped (not buffered, not counted) and the read
            # side ends; what was buffered before stays readable, then receives say "restricted".
            s._end_reading(ERR_RESTRICTED)
            return
        if s.link_in is not None and (s.link_in.active or s.in_q):
            # Emulated link: delivered after its delay, at its rate (a thread does it).
            s._delay_in(PyBytes_FromStringAndSize(buf.base, nread), <size_t>nread)
            return
        try:
            s._append(buf.base, <size_t>nread)
        except MemoryError:
            s._end_reading(UV_ENOBUFS)
            return
        s._count_received(<size_t>nread)
        if s.reader is not None:
            if want_met(s):
                s._wake_reader()
        elif s.rend - s.rstart >= HIGH_WATER:
            uv_read_stop(stream)          # back-pressure: resumes when a receive drains it
            s.reading = False
        if s.select_waiters:
            s._wake_select()
    elif nread < 0:
        uv_read_stop(stream)
        s.reading = False
        if s.in_q:                        # emulated delay: the end comes after the data before it
            s.in_q.append((0, <int>nread))
            return
        if nread == UV_EOF:
            s.eof = True
        else:
            s.read_err = <int>nread
        s._wake_reader()
        s._wake_select()


cdef struct WriteRequest:
    uv_write_t req            # first member: the uv_write_t* is the context pointer
    Py_buffer view            # keeps the data alive (and a bytearray unresizable) until written
    PyObject* task            # owned reference to the waiting task, or NULL
    unsigned long token


cdef void _write_cb(uv_write_t* req, int status) noexcept with gil:
    cdef WriteRequest* ctx = <WriteRequest*>req
    cdef Task t
    cdef TCP s
    cdef uv_stream_t* stream = req.handle
    PyBuffer_Release(&ctx.view)
    if ctx.task != NULL:
        t = <Task>ctx.task
        t.hub.wake(t, ctx.token, status)
        Py_DECREF(t)
    free(ctx)
    if status == 0 and stream.data != NULL:
        s = <TCP>stream.data
        if s.select_waiters:
            s._wake_select()


cdef struct ConnectRequest:
    uv_connect_t req
    PyObject* task
    unsigned long token


cdef void _connect_cb(uv_connect_t* req, int status) noexcept with gil:
    cdef ConnectRequest* ctx = <ConnectRequest*>req
    cdef Task t = <Task>ctx.task
    t.hub.wake(t, ctx.token, status)
    Py_DECREF(t)
    free(ctx)


cdef void _deliver_cb(uv_timer_t* timer) noexcept with gil:
    cdef TCP s
    cdef Py_ssize_t mark
    if timer.data != NULL:
        s = <TCP>timer.data
        mark = runnable_mark(s.hub)
        s._deliver_due()
        stop_poll_if_runnable(s.hub, mark)    # hub.pxd: a delivery may wake the reader


cdef void _shutdown_cb(uv_shutdown_t* req, int status) noexcept with gil:
    free(req)


# Linux gives an accepted socket the listening socket's TCP_NODELAY: a listener that has it spares
# accept() a setsockopt per connection (a system call per splay.rpc call on the server).
cdef bint _ACCEPTED_INHERIT_NODELAY = sys.platform.startswith("linux")


cdef bint _grow_accept_queue(TCP s) noexcept:
    """Double ``s.accepted`` up to ``s.accepted_limit``: False when it is at the limit (or out of
    memory). The queue starts small because a listening socket of an idle node (thousands of
    them in one --in-process run) would otherwise hold a backlog-sized array it never fills."""
    cdef int cap = s.accepted_cap * 2
    cdef uv_tcp_t** bigger
    if s.accepted_cap >= s.accepted_limit:
        return False
    if cap > s.accepted_limit:
        cap = s.accepted_limit
    bigger = <uv_tcp_t**>realloc(s.accepted, cap * sizeof(uv_tcp_t*))
    if bigger == NULL:
        return False
    s.accepted = bigger
    s.accepted_cap = cap
    return True


cdef int _accept_into_queue(TCP s) except -1:
    """uv_accept the connection libuv holds into a new handle at the end of ``s.accepted``."""
    cdef uv_tcp_t* h = <uv_tcp_t*>malloc(sizeof(uv_tcp_t))
    cdef int err
    if h == NULL:
        raise MemoryError()
    uv_tcp_init(s.handle.loop, h)
    h.data = NULL
    err = uv_accept(<uv_stream_t*>s.handle, <uv_stream_t*>h)
    if err < 0:
        close_handle(<uv_handle_t*>h)
        if err != UV_EAGAIN:
            s.listen_err = err
        return 0
    s.accepted[s.n_accepted] = h
    s.n_accepted += 1
    return 0


cdef void _connection_cb(uv_stream_t* server, int status) noexcept with gil:
    cdef TCP s
    if server.data == NULL:
        return
    s = <TCP>server.data
    if status < 0:
        s.listen_err = status
    elif s.n_accepted >= s.accepted_cap and not _grow_accept_queue(s):
        # Queue full: leave the connection with libuv, which stops listening until accept().
        s.accept_deferred = True
        return
    else:
        try:
            _accept_into_queue(s)
        except MemoryError:
            s.listen_err = UV_ENOBUFS
    s._wake_reader()
    if s.select_waiters:
        s._wake_select()
    if s.connection_hook is not None and s.reader is None and (s.n_accepted or s.listen_err):
        call_connection_hook(s)


# ---------------------------------------------------------------------------- the socket types

cdef class TCP(SocketBase):
    """A cooperative TCP socket (LuaSocket's master, client and server objects in one type).

    Created by ``socket.tcp()``; ``bind``/``listen`` make it a server, ``connect`` a client, and
    ``accept`` returns connected ones. Operations that must wait yield to the other threads.
    Failures return ``None`` and leave the message on ``sock.error`` ("closed", "timeout",
    "connection refused", "address already in use", ...).
    """

    def __cinit__(self):
        self.state = TCP_MASTER

    def __init__(self):
        cdef uv_tcp_t* h = <uv_tcp_t*>malloc(sizeof(uv_tcp_t))
        cdef Hub hub = get_hub()
        cdef int err
        if h == NULL:
            raise MemoryError()
        err = uv_tcp_init(hub.loop, h)
        if err < 0:
            free(h)
            raise OSError(f"cannot create a TCP socket: {error_message(err)}")
        self._init_handle(h)

    cdef int _init_handle(self, uv_tcp_t* h) except -1:
        if self._open(<uv_handle_t*>h, False):
            self.handle = h
        else:
            self.state = TCP_CLOSED
        return 0

    def __dealloc__(self):
        self._close_handles()
        free(self.accepted)
        free(self.rbuf)

    def __repr__(self):
        kind = ("master", "server", "client", "closed")[<int>self.state]
        return f"<splay.socket.tcp {kind} {id(self):#x}>"

    # ------------------------------------------------------------------ what SocketBase asks for

    cdef uv_handle_t* _uv_handle(self):
        return <uv_handle_t*>self.handle

    cdef int _getname(self, sockaddr* sa, int* namelen, bint peer):
        if not peer:
            return uv_tcp_getsockname(self.handle, sa, namelen)
        if self.state != TCP_CLIENT:
            return UV_ENOTCONN
        return uv_tcp_getpeername(self.handle, sa, namelen)

    cdef int _bind_to(self, object ip, int port) except? -99999:
        """Bind the handle to ``ip:port``: 0, or a negative libuv error."""
        cdef sockaddr_storage ss
        cdef sockaddr_storage got
        cdef int namelen = sizeof(got)
        cdef int err = fill_sockaddr(ip, port, &ss)
        if err == 0 and self.handle == NULL:
            err = UV_EBADF
        if err == 0:
            err = uv_tcp_bind(self.handle, <sockaddr*>&ss, 0)
        if err == 0:
            # libuv reports EADDRINUSE only at listen/connect; an unbound socket shows it now.
            err = uv_tcp_getsockname(self.handle, <sockaddr*>&got, &namelen)
            if err == 0 and port != 0 and sockaddr_to_tuple(<sockaddr*>&got)[1] != port:
                err = UV_EADDRINUSE
        return err

    cdef bint _close_handle(self):
        cdef bint was_open = self.state != TCP_CLOSED or self.handle != NULL
        if self.in_q:
            self.in_q.clear()
        self.state = TCP_CLOSED
        self.reading = False
        self.connection_hook = None        # (it usually refers back to the server owning this socket)
        self.rstart = self.rend = self.scan_from = 0   # a closed socket returns no buffered data
        self._close_handles()              # pending writes end with ECANCELED
        return was_open

    cdef void _close_handles(self):
        """Close the libuv handles: the socket's, the emulation's timer, unaccepted connections."""
        cdef int i
        if self.in_timer != NULL:
            close_handle(<uv_handle_t*>self.in_timer)
            self.in_timer = NULL
        if self.handle != NULL:
            close_handle(<uv_handle_t*>self.handle)
            self.handle = NULL
        for i in range(self.n_accepted):
            close_handle(<uv_handle_t*>self.accepted[i])
        self.n_accepted = 0

    # ------------------------------------------------------------------ waiting

    cdef int _wait_read(self, ReadWant want, size_t n, uint64_t deadline) except -1:
        """Wait until the read callback says ``want`` may be met: R_WOKEN, or why not."""
        cdef double timeout
        cdef Task t
        if self.state == TCP_CLOSED:
            return R_CLOSED
        if self.state == TCP_CLIENT:
            if self.eof or self.read_err or self.read_shut:
                return R_CLOSED
        elif self.state != TCP_SERVER:
            return R_NOTCONN
        if self.reader is not None and not self.reader.killed:
            return R_BUSY       # (a killed reader has not unwound yet: its slot is free)
        timeout = remaining(deadline)
        if timeout == 0.0:
            return R_TIMEOUT
        t = self.hub.begin_block()
        if self.state == TCP_CLIENT:
            self._start_reading()
            if self.read_err:
                return R_CLOSED
        self.reader = t
        self.reader_token = t.token
        self.want = want
        self.want_n = n
        self._ref()
        try:
            self.hub.block(t, timeout)
            # The timer and the data may come in the same poll: data that made it wins.
            if t.timed_out and not (want_met(self) or self.eof or self.read_err
                                    or self.n_accepted or self.listen_err
                                    or self.state == TCP_CLOSED):
                return R_TIMEOUT
            return R_WOKEN
        finally:
            if self.reader is t:
                self.reader = None
                self.want = WANT_NONE
            self._unref()

    # ------------------------------------------------------------------ the read buffer

    cdef void _read_now(self):
        """One non-blocking read of what the kernel holds for this connection, handled exactly as
        libuv's read callback would handle it (policy, emulated links, wake-ups): a connection
        accepted with its data already there is served without waiting for the next poll. libuv
        reads on its own after this; finding nothing then is normal for it."""
        cdef int fd
        cdef uv_buf_t buf
        cdef ssize_t n
        if not self.reading or uv_fileno(<uv_handle_t*>self.handle, &fd) < 0:
            return
        landing_alloc_cb(<uv_handle_t*>self.handle, 65536, &buf)
        n = recv(fd, buf.base, buf.len, 0)
        if n < 0:
            n = -errno
            if n == UV_EAGAIN or n == UV_EINTR:
                return
        elif n == 0:
            n = UV_EOF
        _read_cb(<uv_stream_t*>self.handle, n, &buf)

    cdef void _start_reading(self):
        cdef int err
        if self.reading or self.handle == NULL or self.state != TCP_CLIENT \
                or self.eof or self.read_err or self.read_shut:
            return
        err = uv_read_start(<uv_stream_t*>self.handle, landing_alloc_cb, _read_cb)
        if err < 0:
            self.read_err = err
        else:
            self.reading = True

    cdef void _end_reading(self, int err):
        """Stop reading for good: receives fail with ``err`` once the buffer is drained."""
        uv_read_stop(<uv_stream_t*>self.handle)
        self.reading = False
        self.read_err = err
        self._wake_reader()
        self._wake_select()

    cdef int _append(self, const char* data, size_t n) except -1:
        cdef size_t used
        cdef size_t cap
        cdef char* nb
        if self.rend + n > self.rcap:
            used = self.rend - self.rstart
            if self.rstart:
                memmove(self.rbuf, self.rbuf + self.rstart, used)
                self.rstart = 0
                self.rend = used
            if used + n > self.rcap:
                cap = self.rcap * 2 if self.rcap else 4096
                while cap < used + n:
                    cap *= 2
                nb = <char*>realloc(self.rbuf, cap)
                if nb == NULL:
                    raise MemoryError()
                self.rbuf = nb
                self.rcap = cap
        memcpy(self.rbuf + self.rend, data, n)
        self.rend += n
        return 0

    cdef bytes _take(self, size_t n):
        cdef bytes out = PyBytes_FromStringAndSize(self.rbuf + self.rstart, n)
        self.consume(n)
        return out

    cdef void consume(self, size_t n):
        """Drop the first ``n`` buffered bytes (the reader has used them in place), and read
        again once the buffer is below its high-water mark."""
        self.rstart += n
        self.scan_from = self.scan_from - n if self.scan_from > n else 0
        if self.rstart == self.rend:
            self.rstart = self.rend = 0
            if self.rcap > HIGH_WATER:        # give back the memory of a big transfer
                free(self.rbuf)
                self.rbuf = NULL
                self.rcap = 0
        if not self.reading and self.rend - self.rstart < HIGH_WATER:
            self._start_reading()

    cdef bytes _take_line(self, size_t length, bint consume_lf):
        """The first ``length`` buffered bytes without their CR characters (LuaSocket's "*l"
        ignores every CR), consumed, plus the LF after them when ``consume_lf``."""
        cdef const char* start = self.rbuf + self.rstart
        cdef bytes out = PyBytes_FromStringAndSize(start, length)
        if length and memchr(start, b'\r', length) != NULL:
            out = out.replace(b"\r", b"")
        self._take(length + (1 if consume_lf else 0))
        return out

    cdef object _fail_read(self, int status, bint strip_cr):
        """Record why a receive failed; the buffered data moves to ``partial`` (LuaSocket)."""
        if status == R_BUSY:
            self.error = BUSY_MESSAGE
            self.partial = b""
            return None
        if status == R_TIMEOUT:
            self.error = "timeout"
        elif status == R_NOTCONN:
            self.error = "not connected"
        elif self.read_err:
            self.error = error_message(self.read_err)
        else:
            self.error = "closed"
        if strip_cr:
            self.partial = self._take_line(self.rend - self.rstart, False)
        else:
            self.partial = self._take(self.rend - self.rstart)
        return None

    cdef object _recv_exact(self, Py_ssize_t n, uint64_t deadline):
        cdef int r
        while <Py_ssize_t>(self.rend - self.rstart) < n:
            r = self._wait_read(WANT_BYTES, <size_t>n, deadline)
            if r != R_WOKEN:
                return self._fail_read(r, False)
        return self._take(<size_t>n)

    cdef object _recv_line(self, uint64_t deadline):
        cdef const char* nl
        cdef size_t avail
        cdef int r
        while True:
            avail = self.rend - self.rstart
            if self.scan_from > avail:
                self.scan_from = 0
            nl = <const char*>memchr(self.rbuf + self.rstart + self.scan_from, b'\n',
                                     avail - self.scan_from) if avail else NULL
            if nl != NULL:
                self.scan_from = 0
                return self._take_line(<size_t>(nl - (self.rbuf + self.rstart)), True)
            self.scan_from = avail
            r = self._wait_read(WANT_LINE, 0, deadline)
            if r != R_WOKEN:
                self.scan_from = 0
                return self._fail_read(r, True)

    cdef object _recv_all(self, uint64_t deadline):
        cdef int r
        while True:
            if self.state == TCP_CLIENT and self.eof and not self.read_err:
                if self.rend > self.rstart:
                    return self._take(self.rend - self.rstart)
                self.error = "closed"
                self.partial = b""
                return None
            r = self._wait_read(WANT_EOF, 0, deadline)
            if r != R_WOKEN:
                return self._fail_read(r, False)

    # ------------------------------------------------------------------ writing

    cdef Py_ssize_t _send(self, object data, Py_ssize_t start, Py_ssize_t stop,
                          uint64_t deadline) except -2:
        """Send ``data[start:stop]``: the number of bytes sent (all of them, or error set)."""
        cdef Py_buffer view
        cdef uv_buf_t buf
        cdef Py_ssize_t n = stop - start
        cdef Py_ssize_t done = 0
        cdef int r
        cdef WriteRequest* ctx
        cdef Task t = None
        cdef double timeout
        cdef NetPolicy policy = self.policy
        if self.state != TCP_CLIENT:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "not connected"
            return 0
        if n <= 0:
            return 0
        # Restricted: the whole send is reserved against max_send first (so concurrent senders
        # cannot overshoot together); the part that never leaves is refunded below.
        if policy is not None:
            if self.link_out is not None and (self.link_out.active or self.out_q) \
                    and (self.out_task is None or self.hub.current is not self.out_task):
                if not policy.reserve_send(<size_t>n):
                    self.error = "restricted"
                    return 0
                return self._send_shaped(data, start, stop)
            # (the emulation's writer thread sends what was reserved and paced already)
            if (self.out_task is None or self.hub.current is not self.out_task) \
                    and not policy.reserve_send(<size_t>n):
                self.error = "restricted"
                return 0
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        if self.handle.write_queue_size == 0:
            buf.base = <char*>view.buf + start
            buf.len = <size_t>n
            r = uv_try_write(<uv_stream_t*>self.handle, &buf, 1)
            if r == n:
                PyBuffer_Release(&view)
                self._count_sent(<size_t>n)
                return n
            if r >= 0:
                done = r
            elif r != UV_EAGAIN:
                PyBuffer_Release(&view)
                if policy is not None:
                    policy.refund_send(<size_t>n)
                self.error = error_message(r)
                return 0
        # The kernel did not take everything: queue the rest with uv_write and wait for it.
        ctx = <WriteRequest*>malloc(sizeof(WriteRequest))
        if ctx == NULL:
            PyBuffer_Release(&view)
            if policy is not None:
                policy.refund_send(<size_t>(n - done))
            raise MemoryError()
        ctx.view = view                    # the request owns the buffer from here on
        ctx.task = NULL
        ctx.token = 0
        if self.hub.current is not None:
            try:
                t = self.hub.begin_block()
            except BaseException:
                PyBuffer_Release(&ctx.view)
                free(ctx)
                if policy is not None:
                    policy.refund_send(<size_t>(n - done))
                raise
            ctx.task = <PyObject*>t
            ctx.token = t.token
            Py_INCREF(t)
        buf.base = <char*>view.buf + start + done
        buf.len = <size_t>(n - done)
        r = uv_write(&ctx.req, <uv_stream_t*>self.handle, &buf, 1, _write_cb)
        if r < 0:
            PyBuffer_Release(&ctx.view)
            if ctx.task != NULL:
                Py_DECREF(t)
            free(ctx)
            self.error = error_message(r)
            if policy is not None:
                policy.refund_send(<size_t>(n - done))
            self._count_sent(<size_t>done)
            return done
        if t is None:
            # Outside a thread nothing can wait: the data leaves when the loop runs.
            self._count_sent(<size_t>n)
            return n
        timeout = remaining(deadline)
        status = self.hub.block(t, timeout)
        if t.timed_out:
            # libuv cannot take back a queued write: the rest still leaves, in order, unless
            # the socket is closed. Report the bytes the kernel had taken before the wait.
            self.error = "timeout"
            self._count_sent(<size_t>done)
            return done
        if status < 0:
            self.error = error_message(status)
            if policy is not None:
                policy.refund_send(<size_t>(n - done))
            self._count_sent(<size_t>done)
            return done
        self._count_sent(<size_t>n)
        return n

    # ------------------------------------------------------------------ network emulation

    cdef Py_ssize_t _send_shaped(self, object data, Py_ssize_t start, Py_ssize_t stop) except -2:
        """Send over an emulated link: wait for the link's token bucket (the rate), then queue
        the data for the writer thread, which writes it once the one-way delay has passed."""
        cdef Link link = self.link_out
        cdef Py_ssize_t n = stop - start
        cdef uint64_t due, now
        if link.cut:                       # a partition breaks the connection
            self.policy.refund_send(<size_t>n)
            self.error = "closed"
            return 0
        due = link.pace(<size_t>n)
        if self.hub.current is not None:
            now = clock_ns()
            if due > now:
                try:
                    self.hub.sleep((due - now) / 1e9)
                except BaseException:
                    self.policy.refund_send(<size_t>n)
                    raise
        if self.state != TCP_CLIENT:
            self.policy.refund_send(<size_t>n)
            self.error = self._closed_error()
            return 0
        chunk = bytes(data[start:stop]) if start or stop != len(data) or type(data) is not bytes \
            else data
        if self.out_q is None:
            self.out_q = deque()
        self.out_q.append((due + link.delay_ns, chunk))
        if self.out_task is None:
            self.out_task = self.hub.spawn(self._drain_out, ())
        self._count_sent(<size_t>n)
        return n

    def _drain_out(self):
        """The writer thread of an emulated link: writes each queued send at its due time."""
        cdef uint64_t now
        try:
            while self.out_q:
                due, chunk = self.out_q[0]
                now = clock_ns()
                if due > now:
                    self.hub.sleep((due - now) / 1e9)
                self.out_q.popleft()
                if self.state != TCP_CLIENT or self._send(chunk, 0, len(chunk), 0) != len(chunk):
                    self.out_q.clear()
        finally:
            self.out_task = None

    cdef void _delay_in(self, object item, size_t n):
        """Queue data (or the end of the stream) received over an emulated link: a timer puts
        it into the read buffer after the link's delay, at the link's rate."""
        cdef Link link = self.link_in
        cdef uint64_t due
        if link.cut:                       # a partition breaks the connection
            self._end_reading(UV_ECONNRESET)
            return
        due = link.pace(n) + link.delay_ns
        if self.in_q is None:
            self.in_q = deque()
        self.in_q.append((due, item))
        if len(self.in_q) == 1:
            self._deliver_due()            # arms the timer for it

    cdef void _deliver_due(self):
        """Deliver the queued received data whose time has come; re-arm for the next."""
        cdef uint64_t now = clock_ns()
        cdef uint64_t due
        cdef bytes data
        cdef bint delivered = False
        while self.in_q:
            due, item = self.in_q[0]
            if due > now:
                if self.in_timer == NULL:
                    self.in_timer = <uv_timer_t*>malloc(sizeof(uv_timer_t))
                    if self.in_timer == NULL:
                        break
                    uv_timer_init(self.hub.loop, self.in_timer)
                    self.in_timer.data = <void*>self
                uv_update_time(self.hub.loop)
                uv_timer_start(self.in_timer, _deliver_cb, (due - now + 999999) // 1000000, 0)
                break
            self.in_q.popleft()
            if isinstance(item, int):      # the end of the stream, after the data before it
                if item == UV_EOF:
                    self.eof = True
                else:
                    self.read_err = item
                self._wake_reader()
                self._wake_select()
                continue
            data = <bytes>item
            try:
                self._append(PyBytes_AS_STRING(data), <size_t>len(data))
            except MemoryError:
                self.read_err = UV_ENOBUFS
                self.in_q.clear()
            self._count_received(<size_t>len(data))
            delivered = True
        if delivered:
            if self.reader is not None and want_met(self):
                self._wake_reader()
            if self.select_waiters:
                self._wake_select()

    # ------------------------------------------------------------------ options

    cdef int _apply_options(self) except -1:
        """Apply options set while the OS socket did not exist yet."""
        if self.pending_options:
            options, self.pending_options = self.pending_options, None
            for name, value in options.items():
                self.setoption(name, value)
        return 0

    # ------------------------------------------------------------------ the fast path (tcp.pxd)

    cdef void settimeout_c(self, double seconds):
        self.timeout = seconds if seconds >= 0 else -1.0

    cdef bint _fill_target(self, object ip, int port, sockaddr_storage* ss) except -1:
        """``ss`` = the address to connect to, or False with ``error`` set (a name that does not
        resolve; or the socket closed by another thread while the name resolved)."""
        cdef int err = fill_sockaddr(ip, port, ss)   # may yield to resolve a host name
        if err < 0:
            self.error = error_message(err)
            return False
        if self.state != TCP_MASTER:                 # closed by another thread meanwhile
            self.error = "closed"
            return False
        return True

    cdef bint connect_c(self, object ip, int port) except -1:
        cdef sockaddr_storage ss
        cdef ConnectRequest* ctx
        cdef Task t
        cdef int err
        cdef uint64_t deadline = self._deadline()
        cdef NetPolicy policy = self.policy
        cdef int fd
        cdef object links = None
        if self.state != TCP_MASTER:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "already connected"
            return False
        if self._name_refused(ip):
            self.close_c()                           # like every failed connect
            return False
        if not self._fill_target(ip, port, &ss):
            return False
        if policy is not None and policy.links is not None:
            pair = policy.link_pair((ip, port))
            if pair is not None:
                if (<Link>pair[0]).cut or (<Link>pair[1]).cut:
                    self.close_c()             # emulated partition
                    self.error = "connection refused"
                    return False
                links = pair
        if policy is not None:
            if self._addr_refused(<sockaddr*>&ss):
                self.close_c()
                return False
            if policy.has_local_addr \
                    and (<sockaddr*>&policy.local_addr).sa_family == (<sockaddr*>&ss).sa_family \
                    and uv_fileno(<uv_handle_t*>self.handle, &fd) < 0:
                # Forced local IP: outgoing connections leave from it too.
                err = uv_tcp_bind(self.handle, <sockaddr*>&policy.local_addr, 0)
                if err < 0:
                    self.close_c()
                    self.error = error_message(err)
                    return False
        ctx = <ConnectRequest*>malloc(sizeof(ConnectRequest))
        if ctx == NULL:
            raise MemoryError()
        try:
            t = self.hub.begin_block()
        except BaseException:
            free(ctx)
            raise
        ctx.task = <PyObject*>t
        ctx.token = t.token
        err = uv_tcp_connect(&ctx.req, self.handle, <sockaddr*>&ss, _connect_cb)
        if err < 0:
            free(ctx)
            self.error = error_message(err)
            return False
        Py_INCREF(t)                       # released by _connect_cb, which always runs
        uv_tcp_nodelay(self.handle, 1)     # SPLAY traffic is request/response: no Nagle delay
        self._apply_options()
        try:
            status = self.hub.block(t, remaining(deadline))
        except BaseException:
            self.close_c()                 # a connect cannot be taken back: drop the socket
            raise
        if t.timed_out:
            self.close_c()
            self.error = "timeout"
            return False
        if self.state != TCP_MASTER:
            self.error = "closed"
            return False
        if status < 0:
            self.close_c()
            self.error = error_message(status)
            return False
        if links is not None:
            self.link_out = <Link>links[0]
            self.link_in = <Link>links[1]
        self.state = TCP_CLIENT
        self._start_reading()
        if links is not None and self.hub.current is not None:
            # The handshake over the emulated link: connect completes after one round trip.
            handshake = self.link_out.delay + self.link_in.delay
            if handshake > 0:
                self.hub.sleep(handshake)
        return True

    cdef bint connect_now(self, object ip, int port, bint nodelay=True) except -1:
        """:meth:`connect_c` for a connection whose first act is to send (splay.rpc's one call
        per connection), in two system calls fewer (three with ``nodelay`` False): connect()
        without waiting for the loop.

        libuv's connect registers the socket with epoll, waits for it to become writable and
        reads SO_ERROR before the request can be written. Here a non-blocking connect() is made
        on our own socket and the socket given to libuv at once (uv_tcp_open): on loopback the
        handshake is over when connect() returns, so the request is written straight away; when
        it is still under way (a remote host), the first send waits for it, bounded by the
        timeout, as libuv's write waits for a writable socket; a refused connection fails that
        send (or the first receive) with "connection refused". Sockets under a policy
        (restricted, blacklisted, emulated links) take connect_c, which checks it. Options set
        beforehand apply as with connect_c, and so does TCP_NODELAY unless ``nodelay`` is False:
        a caller whose only write is one segment (at most ~1,400 bytes) may save that system
        call, since Nagle's algorithm holds back data only while earlier data is unacknowledged,
        and the first segment of a connection has none before it.
        """
        cdef sockaddr_storage ss
        cdef int err, fd
        cdef socklen_t length
        if self.state != TCP_MASTER or self.policy is not None:
            return self.connect_c(ip, port)
        if not self._fill_target(ip, port, &ss):
            return False
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        if fd < 0:
            err = -errno
            self.close_c()
            self.error = error_message(err)
            return False
        length = sizeof(sockaddr_in) if ss.ss_family == AF_INET else sizeof(sockaddr_in6)
        if connect(fd, <sockaddr*>&ss, length) < 0 and errno != EINPROGRESS:
            err = -errno
            close(fd)
            self.close_c()
            self.error = error_message(err)
            return False
        if nodelay:
            uv_tcp_nodelay(self.handle, 1)     # no socket yet: a flag, which uv_tcp_open applies
        err = uv_tcp_open(self.handle, fd)
        if err < 0:
            close(fd)
            self.close_c()
            self.error = error_message(err)
            return False
        self._apply_options()
        self.state = TCP_CLIENT
        self._start_reading()
        return True

    cdef bint send_data(self, object data) except -1:
        cdef Py_ssize_t n = len(data)
        return self._send(data, 0, n, self._deadline()) == n

    cdef bint send_block(self, object payload) except -1:
        cdef bytes block = b"%d\n" % len(payload) + payload
        return self._send(block, 0, len(block), self._deadline()) == len(block)

    cdef object recv_exact(self, Py_ssize_t n):
        return self._recv_exact(n, self._deadline())

    cdef object recv_line(self):
        return self._recv_line(self._deadline())

    cdef object recv_block(self, Py_ssize_t max_length):
        cdef uint64_t deadline = self._deadline()
        cdef object line = self._recv_line(deadline)
        cdef Py_ssize_t length = 0
        cdef bytes b
        cdef const char* p
        cdef Py_ssize_t i
        if line is None:
            return None
        b = <bytes>line
        p = PyBytes_AS_STRING(b)
        if len(b) == 0 or len(b) > 18:
            self.error = f"invalid llenc block length {b[:40]!r}: expected a decimal length line"
            return None
        for i in range(len(b)):
            if p[i] < 48 or p[i] > 57:                      # not an ASCII digit
                self.error = f"invalid llenc block length {b[:40]!r}: expected a decimal length line"
                return None
            length = length * 10 + (p[i] - 48)
        if max_length >= 0 and length > max_length:
            self.error = f"block too long ({length} bytes, the maximum is {max_length})"
            return None
        return self._recv_exact(length, deadline)

    # ------------------------------------------------------------------ select support

    cdef bint _readable(self):
        if self.state == TCP_CLIENT:
            self._start_reading()
            return self.rend > self.rstart or self.eof or self.read_err != 0 or self.read_shut
        if self.state == TCP_SERVER:
            return self.n_accepted > 0 or self.listen_err != 0
        return self.state == TCP_CLOSED

    cdef bint _writable(self):
        if self.state == TCP_CLIENT:
            return self.handle.write_queue_size < WRITABLE_QUEUE
        return self.state == TCP_CLOSED

    # ------------------------------------------------------------------ LuaSocket methods

    def connect(self, address, port=None):
        """Connect to a node (dict, ``Node``, ``(ip, port)``) or ``ip, port``: True, or None.

        The error ("connection refused", "timeout", "host not found" ...) is left on
        ``self.error``; a socket whose connect failed is closed.
        """
        ip, p = _node_address(address, port)
        return True if self.connect_c(ip, p) else None

    def bind(self, address, port=None):
        """Bind to a local node or ``ip, port`` (``"*"`` or None: every interface): True or None."""
        cdef int err
        ip, p = _node_address(address, port, default_ip="0.0.0.0")
        if self.state != TCP_MASTER:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "already connected"
            return None
        err = self._bind_allowed(ip, p)
        if err < 0:
            self.error = error_message(err)
            return None
        self._apply_options()
        return True

    def listen(self, backlog=32):
        """Accept connections from now on (at most ``backlog`` waiting): True or None."""
        cdef int err
        cdef int n = int(backlog)
        if self.state != TCP_MASTER:
            self.error = self._closed_error() if self.state == TCP_CLOSED else "already connected"
            return None
        if n < 1:
            n = 1
        err = uv_listen(<uv_stream_t*>self.handle, n, _connection_cb)
        if err < 0:
            self.error = error_message(err)
            return None
        self.accepted_limit = n if n > MIN_ACCEPT_QUEUE else MIN_ACCEPT_QUEUE
        self.accepted_cap = FIRST_ACCEPT_QUEUE          # grown by _grow_accept_queue
        self.accepted = <uv_tcp_t**>malloc(self.accepted_cap * sizeof(uv_tcp_t*))
        if self.accepted == NULL:
            raise MemoryError()
        self.state = TCP_SERVER
        self._apply_options()
        if not self.nodelay_off and uv_tcp_nodelay(self.handle, 1) < 0:
            self.nodelay_off = True
        return True

    def on_connection(self, callback):
        """Accept on demand: call ``callback()`` (no arguments) whenever a connection waits on this
        listening socket and no thread is blocked in :meth:`accept`; ``None`` stops it.

        The callback runs inside the scheduler, not in a thread: it must not block -- it starts a
        thread (``events.thread``) that accepts what waits, with a zero timeout, and ends. While a
        callback is set the socket keeps ``events.run()`` going, as a thread blocked in accept()
        would. A listening server then holds no thread while idle (see splay.rpc_core.server).
        """
        if callback is not None and not callable(callback):
            raise TypeError(f"on_connection() takes a function or None, got {type(callback).__name__}")
        if self.state != TCP_SERVER:
            self.error = "closed" if self.state == TCP_CLOSED else "not listening: call listen() first"
            return None
        if (callback is None) != (self.connection_hook is None):
            if callback is None:
                self._unref()
            else:
                self._ref()
        self.connection_hook = callback
        return True

    def accept(self):
        """Wait for a connection: a new connected socket, or None ("timeout", "closed" ...)."""
        cdef uint64_t deadline = self._deadline()
        cdef uv_tcp_t* h
        cdef TCP c
        cdef int r, err
        if self.state != TCP_SERVER:
            self.error = "closed" if self.state == TCP_CLOSED else "not listening: call listen() first"
            return None
        while True:
            if self.n_accepted > 0:
                h = self.accepted[0]
                self.n_accepted -= 1
                memmove(self.accepted, self.accepted + 1, self.n_accepted * sizeof(uv_tcp_t*))
                if self.accept_deferred:
                    self.accept_deferred = False
                    _accept_into_queue(self)
                c = TCP.__new__(TCP)
                c._init_handle(h)
                if c.refused:                 # max_sockets: the connection is closed at once
                    self.error = "restricted"
                    return None
                c.state = TCP_CLIENT
                if self.nodelay_off or not _ACCEPTED_INHERIT_NODELAY:
                    uv_tcp_nodelay(h, 1)          # (else it has the listener's)
                c._start_reading()
                if self.read_on_accept:
                    c._read_now()
                return c
            if self.listen_err:
                err = self.listen_err
                self.listen_err = 0
                self.error = error_message(err)
                return None
            r = self._wait_read(WANT_ANY, 0, deadline)
            if r != R_WOKEN:
                self._fail_read(r, False)
                return None

    def send(self, data, i=None, j=None):
        """Send ``data`` (bytes, or str as UTF-8), or its 1-based slice ``[i, j]`` (Lua's
        ``string.sub``): the index of the last byte sent, or None ("closed", "timeout" ...)."""
        cdef Py_ssize_t n, start, stop, sent
        if type(data) is not bytes:
            data = as_bytes(data, "send() data")
        n = len(<bytes>data)
        if i is None and j is None:
            start, stop = 0, n
        else:
            start = 1 if i is None else int(i)
            stop = -1 if j is None else int(j)
            if start < 0:
                start = max(n + start + 1, 1)
            elif start == 0:
                start = 1
            if stop < 0:
                stop = n + stop + 1
            elif stop > n:
                stop = n
            start -= 1
            if stop < start:
                stop = start
        sent = self._send(data, start, stop, self._deadline())
        if sent == stop - start:
            return stop
        return None

    def receive(self, pattern=b"*l", prefix=None):
        """Receive by LuaSocket pattern: ``"*l"`` a line (CR and LF removed), a number ``n``
        exactly n bytes, ``"*a"`` everything until the peer closes. Returns bytes, or None with
        ``self.error`` ("closed", "timeout") and the bytes received so far on ``self.partial``.
        ``prefix`` is prepended to the result (and to ``partial``).
        """
        cdef uint64_t deadline = self._deadline()
        if type(pattern) is int:
            if <Py_ssize_t>pattern < 0:
                raise ValueError(f"receive: a byte count must be >= 0, got {pattern}")
            data = self._recv_exact(pattern, deadline)
        elif pattern == b"*l" or pattern == "*l" or pattern == b"l" or pattern == "l":
            data = self._recv_line(deadline)
        elif pattern == b"*a" or pattern == "*a" or pattern == b"a" or pattern == "a":
            data = self._recv_all(deadline)
        elif isinstance(pattern, (str, bytes)) and pattern.isdigit():
            data = self._recv_exact(int(pattern), deadline)
        elif isinstance(pattern, int) and not isinstance(pattern, bool):
            return self.receive(int(pattern), prefix)
        else:
            raise ValueError(f"invalid receive pattern {pattern!r}: use '*l' (a line), "
                             f"'*a' (until closed) or a byte count")
        if prefix is not None:
            prefix = as_bytes(prefix, "receive() prefix")
            if data is None:
                self.partial = prefix + self.partial
            else:
                data = prefix + data
        return data

    def settimeout(self, t, mode=None):
        """Limit every later operation (connect, accept, send, receive) to ``t`` seconds in
        total; None or negative: block forever. ``mode`` ("b" or "t") is accepted for
        LuaSocket compatibility; both mean this total per-operation timeout. Returns True."""
        if mode is not None and mode not in ("b", "t", b"b", b"t"):
            raise ValueError(f"settimeout mode must be 'b' or 't', got {mode!r}")
        self.settimeout_c(-1.0 if t is None else float(t))
        return True

    def setoption(self, name, value=None):
        """Set a socket option: "tcp-nodelay" (on by default), "keepalive", "reuseaddr",
        "linger" (``{"on": bool, "timeout": seconds}``). True, or None for an unknown option."""
        cdef int fd
        cdef int err = 0
        cdef int flag
        cdef linger lg
        if isinstance(name, bytes):
            name = name.decode()
        if name not in ("tcp-nodelay", "keepalive", "reuseaddr", "linger"):
            self.error = f"unsupported option {name!r}: use tcp-nodelay, keepalive, reuseaddr or linger"
            return None
        if self.handle == NULL:
            self.error = "closed"
            return None
        if uv_fileno(<uv_handle_t*>self.handle, &fd) < 0:
            # No OS socket before bind/connect: apply it as soon as there is one.
            if self.pending_options is None:
                self.pending_options = {}
            self.pending_options[name] = value
            return True
        if name == "tcp-nodelay":
            err = uv_tcp_nodelay(self.handle, 1 if value else 0)
            self.nodelay_off = err < 0 or not value   # (a listener's accept() then sets it)
        elif name == "keepalive":
            err = uv_tcp_keepalive(self.handle, 1 if value else 0, 60)
        elif name == "reuseaddr":
            flag = 1 if value else 0
            if setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &flag, sizeof(int)) != 0:
                err = UV_EINVAL
        else:
            if isinstance(value, dict):
                lg.l_onoff = 1 if value.get("on") else 0
                lg.l_linger = int(value.get("timeout", 0))
            else:
                lg.l_onoff = 1 if value else 0
                lg.l_linger = 0
            if setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0:
                err = UV_EINVAL
        if err < 0:
            self.error = error_message(err)
            return None
        return True

    def getoption(self, name):
        """The value of "tcp-nodelay", "keepalive", "reuseaddr" or "linger", or None."""
        cdef int fd, v = 0
        cdef socklen_t ln = sizeof(int)
        cdef linger lg
        if isinstance(name, bytes):
            name = name.decode()
        if self.handle == NULL or uv_fileno(<uv_handle_t*>self.handle, &fd) < 0:
            if self.pending_options and name in self.pending_options:
                return self.pending_options[name]
            self.error = "closed" if self.handle == NULL else "no socket yet: bind or connect first"
            return None
        if name == "tcp-nodelay":
            getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &ln)
            return bool(v)
        if name == "keepalive":
            getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &ln)
            return bool(v)
        if name == "reuseaddr":
            getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &ln)
            return bool(v)
        if name == "linger":
            ln = sizeof(lg)
            getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &ln)
            return {"on": bool(lg.l_onoff), "timeout": lg.l_linger}
        self.error = f"unsupported option {name!r}"
        return None

    def setstats(self, received, sent, age):
        """Reset the counters of getstats(): True."""
        self.bytes_received = received
        self.bytes_sent = sent
        self.created_ns = clock_ns() - <uint64_t>(float(age) * 1e9)
        return True

    def dirty(self):
        """True when received data waits in the read buffer."""
        return self.rend > self.rstart

    def defer_accept(self, seconds):
        """Wake :meth:`accept` for a connection only once its first data arrived (Linux's
        TCP_DEFER_ACCEPT, on a listening socket), and let accept() read that data at once: a server
        whose clients speak first (splay.rpc) then serves a connection without waiting for it. A
        connection that sends nothing is accepted anyway after about ``seconds``. True, or None
        (``error`` says why)."""
        cdef int fd
        cdef int secs = max(1, int(seconds))
        if self.state != TCP_SERVER or self.handle == NULL:
            self.error = "closed" if self.state == TCP_CLOSED else "not listening: call listen() first"
            return None
        if uv_fileno(<uv_handle_t*>self.handle, &fd) < 0 or \
                setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(int)) != 0:
            self.error = "TCP_DEFER_ACCEPT is not supported here"
            return None
        self.read_on_accept = True
        return True

    def accept_ready(self):
        """True when :meth:`accept` would not wait: a connection (or an accept error) is queued."""
        return self.state == TCP_SERVER and (self.n_accepted > 0 or self.listen_err != 0)

    def shutdown(self, mode="both"):
        """Shut down "send", "receive" or "both" directions of a connection: True."""
        cdef uv_shutdown_t* req
        mode = shutdown_mode(mode)
        if self.state != TCP_CLIENT:
            return True
        if mode in ("both", "receive") and not self.read_shut:
            self.read_shut = True
            if self.reading:
                uv_read_stop(<uv_stream_t*>self.handle)
                self.reading = False
            self._wake_reader()
        if mode in ("both", "send"):
            req = <uv_shutdown_t*>malloc(sizeof(uv_shutdown_t))
            if req == NULL:
                raise MemoryError()
            if uv_shutdown(req, <uv_stream_t*>self.handle, _shutdown_cb) < 0:
                free(req)
        return True

    def is_closed(self):
        """True once the socket is closed."""
        return self.state == TCP_CLOSED


# The simulated network's socket class while one is installed (splay.sim.network), else None.
cdef object _simulated = None


def set_simulated(cls):
    """Make ``tcp_new()`` and :func:`new_tcp` create ``cls`` sockets (a TCP subclass of the
    simulated network), or plain ones again (None)."""
    global _simulated
    _simulated = cls


cdef TCP tcp_new():
    if _simulated is not None:
        return _simulated()
    return TCP()


def new_tcp():
    """A new TCP socket: simulated while a simulated network is installed (``socket.tcp()``)."""
    return tcp_new()


# ---------------------------------------------------------------------------- select

def select(recvt, sendt, timeout=None):
    """Wait until a socket of ``recvt`` can be read (or accepted on) or one of ``sendt`` written.

    Returns ``(readable, writable, None)``, or ``([], [], "timeout")``. ``timeout`` None or
    negative: wait forever. Like LuaSocket, a closed socket counts as ready.
    """
    cdef Hub hub
    cdef Task t
    cdef SocketBase s
    cdef uint64_t deadline
    cdef double left
    recv_list = list(recvt or ())
    send_list = list(sendt or ())
    for obj in recv_list + send_list:
        if not isinstance(obj, SocketBase):
            raise TypeError(f"select() takes splay sockets, got {type(obj).__name__}")
    deadline = deadline_after(-1.0 if timeout is None else float(timeout))
    if not recv_list and not send_list and deadline == 0:
        raise ValueError("select() with no sockets and no timeout would wait forever")
    while True:
        readable = [s for s in recv_list if s._readable()]
        writable = [s for s in send_list if s._writable()]
        if readable or writable:
            return (readable, writable, None)
        left = remaining(deadline)
        if left == 0.0:
            return ([], [], "timeout")
        hub = get_hub()
        t = hub.begin_block()
        watched = recv_list + send_list
        entry = (t, t.token)
        for s in watched:
            s.select_waiters.append(entry)
            s._ref()
        try:
            hub.block(t, left)
        finally:
            for s in watched:
                if entry in s.select_waiters:
                    s.select_waiters.remove(entry)
                s._unref()

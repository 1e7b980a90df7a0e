# Cooperative TCP sockets over libuv (splayc/tcp.pyx). The RPC layer cimports this for a fast path
# that skips the Python-level LuaSocket API:
#
#     from splayc.tcp cimport TCP, tcp_new
#     cdef TCP s = tcp_new()                      # like socket.tcp()
#     s.settimeout_c(5.0)                         # total timeout per operation (< 0: none)
#     if not s.connect_c(ip, port): ...           # True, or False with s.error set (s is closed)
#     if not s.connect_now(ip, port, nodelay): ... # the same, for a connection that sends at once
#     if not s.send_data(block): ...              # True, or False with s.error set
#     data = s.recv_exact(n)                      # bytes, or None (s.error, s.partial)
#     line = s.recv_line()                        # one line without CR/LF, or None
#     block = s.recv_block(max_length)            # one llenc block "<len>\n<payload>", or None
#     s.send_block(payload)                       # writes b"<len>\n" + payload
#     s.close_c()                                 # (from SocketBase, splayc/sockbase.pxd)
#
# Lower level (what splayc/rpc_fast.pyx uses to decode straight from the receive buffer): the
# unread bytes are rbuf[rstart:rend]; `s.consume(n)` drops n of them once they are used (and
# reads again when the buffer is below HIGH_WATER);
# `r = s._wait_read(WANT_BYTES, n, deadline)` waits until n bytes are buffered (deadline: an
# absolute uv_hrtime() in ns, 0 for none) and returns one of the R_* codes below.
#
# Every call follows the socket's settimeout (a TOTAL timeout for the whole call, recv_block
# included). They may raise only NotInThread (called outside a SPLAY thread while they must wait)
# or the task's kill exception; every other failure is None/False with `error` set.
from libc.stdint cimport uint64_t
from libc.string cimport memchr
from splayc.uv cimport uv_tcp_t, uv_timer_t, sockaddr_storage
from splayc.hub cimport Task
from splayc.sockbase cimport SocketBase
from splayc.shaping cimport Link

cdef enum TCPState:
    TCP_MASTER = 0       # created (maybe bound): may bind, connect or listen
    TCP_SERVER = 1       # listening
    TCP_CLIENT = 2       # connected
    TCP_CLOSED = 3

cdef enum:
    HIGH_WATER = 1 << 20     # reading pauses when this much is buffered and nobody receives

cdef enum:                   # results of TCP._wait_read
    R_WOKEN = 0              # woken: check the buffer again
    R_TIMEOUT = 1            # the deadline passed (nothing consumed)
    R_CLOSED = 2             # EOF, a read error (read_err), shutdown or close
    R_BUSY = 3               # another thread is receiving on this socket
    R_NOTCONN = 4            # not a connected (or listening) socket

cdef enum ReadWant:          # what wakes the waiting reader (checked in C in the read callback)
    WANT_NONE = 0
    WANT_BYTES = 1           # at least want_n bytes buffered
    WANT_LINE = 2            # a '\n' buffered
    WANT_EOF = 3             # the end of the stream (pattern "*a")
    WANT_ANY = 4             # any data (select)


cdef class TCP(SocketBase):
    cdef uv_tcp_t* handle
    cdef TCPState state
    cdef public object partial        # data received by the last failed receive
    cdef dict pending_options         # options set before the OS socket exists
    # read side: a malloc'd buffer [rstart, rend) of rcap bytes, filled by the read callback
    cdef char* rbuf
    cdef size_t rcap, rstart, rend
    cdef bint reading, eof, read_shut
    cdef int read_err
    cdef ReadWant want
    cdef size_t want_n
    cdef size_t scan_from             # bytes after rstart already searched for '\n'
    # listening side: connections accepted by libuv, not yet returned by accept()
    cdef uv_tcp_t** accepted
    cdef int n_accepted, accepted_cap
    cdef int accepted_limit           # accepted_cap grows up to this (the listen backlog, at least 64)
    cdef object connection_hook       # on_connection(): called when a connection waits, nobody accepts
    cdef bint accept_deferred
    cdef bint read_on_accept          # defer_accept(): accept() reads what the connection holds
    cdef bint nodelay_off             # lacks TCP_NODELAY: turned off, or it could not be set
    cdef int listen_err
    # network emulation (splayc/shaping.pyx): the links to the emulated peer this socket connected to
    cdef Link link_out, link_in
    cdef object out_q, in_q           # deques of (due ns, bytes or an end-of-stream status)
    cdef Task out_task                # the thread writing delayed sends (None: idle)
    cdef uv_timer_t* in_timer         # delivers delayed received data at its due time

    # fast path for the RPC layer (see the header)
    cdef void settimeout_c(self, double seconds)
    cdef bint _fill_target(self, object ip, int port, sockaddr_storage* ss) except -1
    cdef bint connect_c(self, object ip, int port) except -1
    cdef bint connect_now(self, object ip, int port, bint nodelay=*) except -1
    cdef bint send_data(self, object data) except -1
    cdef bint send_block(self, object payload) except -1
    cdef object recv_exact(self, Py_ssize_t n)
    cdef object recv_line(self)
    cdef object recv_block(self, Py_ssize_t max_length)

    # internals
    cdef int _init_handle(self, uv_tcp_t* h) except -1
    cdef int _wait_read(self, ReadWant want, size_t n, uint64_t deadline) except -1
    cdef Py_ssize_t _send(self, object data, Py_ssize_t start, Py_ssize_t stop,
                          uint64_t deadline) except -2
    cdef bytes _take(self, size_t n)
    cdef void consume(self, size_t n)
    cdef bytes _take_line(self, size_t length, bint strip_cr)
    cdef object _fail_read(self, int status, bint strip_cr)
    cdef object _recv_exact(self, Py_ssize_t n, uint64_t deadline)
    cdef object _recv_line(self, uint64_t deadline)
    cdef object _recv_all(self, uint64_t deadline)
    cdef int _append(self, const char* data, size_t n) except -1
    cdef void _start_reading(self)
    cdef void _read_now(self)
    cdef void _end_reading(self, int err)
    cdef void _close_handles(self)
    cdef int _apply_options(self) except -1
    cdef Py_ssize_t _send_shaped(self, object data, Py_ssize_t start, Py_ssize_t stop) except -2
    cdef void _delay_in(self, object item, size_t n)
    cdef void _deliver_due(self)


# A new TCP socket: a simulated one while a simulated network is installed (splayc/simnet.pyx,
# set_simulated), else TCP().
cdef TCP tcp_new()


# Whether the waiting receiver's pattern (want, want_n) can complete with what is buffered: the
# read callback's test, shared by the real socket and the simulated one (splayc/simnet.pyx).
cdef inline bint want_met(TCP s):
    cdef size_t avail = s.rend - s.rstart
    if s.want == WANT_BYTES:
        return avail >= s.want_n
    if s.want == WANT_LINE:
        if memchr(s.rbuf + s.rstart + s.scan_from, b'\n', avail - s.scan_from) != NULL:
            return True
        s.scan_from = avail
        return False
    if s.want == WANT_ANY:
        return avail > 0
    return False


# The direction of a shutdown() ("both", "send" or "receive"; bytes accepted), for the real and
# the simulated socket; anything else is a ValueError naming what was given.
cdef inline str shutdown_mode(object mode):
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("both", "send", "receive"):
        raise ValueError(f"shutdown mode must be 'both', 'send' or 'receive', got {mode!r}")
    return mode


# Call a listening socket's on_connection() callback (TCP.on_connection), for the real and the
# simulated socket: it runs inside the scheduler, where nobody else would see what it raises, so
# that ends the loop (as a libuv callback's error does).
cdef inline void call_connection_hook(TCP s) noexcept:
    try:
        s.connection_hook()
    except BaseException as e:
        if s.hub.callback_error is None:
            s.hub.callback_error = e

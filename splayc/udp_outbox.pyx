"""Datagrams of one UDP socket that leave together: one ``sendmmsg`` per loop iteration.

urpc's client queues its calls, retries and frees here, its server its replies, instead of
sending each with a system call of its own. They leave in one ``sendmmsg`` just before the loop
polls (a libuv *prepare* handle, started while anything is queued), that is once every runnable
thread has had its turn: 100 callers waiting on one socket make one system call per scheduler
round instead of two per call, and a sequential caller's ``free`` leaves with its next call. At
``QUEUE_MAX`` queued datagrams the queue is sent at once. Nothing waits longer than the current
round: a thread that computes without yielding holds up the datagrams queued before it in that
round (as it holds up every other thread).

Only a plain socket queues: one with a policy (restricted sockets, emulated links: their checks
and accounting are in ``UDP._sendto``), a simulated one, or one whose descriptor libuv has not made
yet (an unbound socket before its first send, which binds it) sends at once, as before.

A datagram the kernel refuses is reported to its owner (``on_failure(owner, message, (ip,
port))``: a urpc call fails with the message, a reply is logged); when the socket buffer is full
the rest go through ``UDP._sendto``, which queues them in libuv until the socket is writable.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport errno, EINTR, EAGAIN
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from posix.uio cimport iovec

from splayc.uv cimport *
from splayc.hub cimport Hub, get_hub, runnable_mark, stop_poll_if_runnable
from splayc.addr cimport fill_sockaddr, error_message, sockaddr_to_tuple
from splayc.sockbase cimport close_handle
from splayc.udp cimport UDP


cdef extern from "sys/socket.h" nogil:
    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int sendmmsg(int sockfd, mmsghdr* msgvec, unsigned int vlen, int flags)


cdef enum:
    QUEUE_MAX = 64                 # datagrams queued before they are sent at once
    FIRST_CAP = 4


cdef void _prepare_cb(uv_prepare_t* handle) noexcept with gil:
    cdef Outbox box
    cdef Hub hub
    cdef Py_ssize_t mark
    if handle.data == NULL:
        return
    box = <Outbox>handle.data
    hub = box.hub
    mark = runnable_mark(hub)          # a failed call's caller may become runnable: poll at once
    try:
        box.flush()
    except BaseException as exc:       # nothing in flush raises but MemoryError; never lose it
        if hub.callback_error is None:
            hub.callback_error = exc
        uv_stop(hub.loop)
    stop_poll_if_runnable(hub, mark)


cdef class Outbox:
    """The queued datagrams of one UDP socket (see the module docstring).

    ``on_failure(owner, message, (ip, port))`` is called for a queued datagram the kernel refused
    (``owner`` as given to ``add``)."""

    def __cinit__(self, UDP sock, on_failure):
        self.sock = sock
        self.hub = get_hub()
        self.datas = []
        self.owners = []
        self.on_failure = on_failure

    def __dealloc__(self):
        if self.prepare != NULL:
            close_handle(<uv_handle_t*>self.prepare)
            self.prepare = NULL
        free(self.messages)
        self.messages = NULL

    @property
    def queued(self):
        """How many datagrams wait to be sent."""
        return self.count

    cdef int add(self, bytes data, const sockaddr_storage* addr, object owner) except -1:
        """Queue ``data`` for ``addr``; sent before the loop next polls (or now, when full)."""
        cdef OutboxMessage* grown
        cdef Py_ssize_t cap
        if self.count == QUEUE_MAX:
            self.flush()
        if self.count == self.cap:
            cap = FIRST_CAP if self.cap == 0 else self.cap * 2
            grown = <OutboxMessage*>realloc(self.messages, cap * sizeof(OutboxMessage))
            if grown == NULL:
                raise MemoryError()
            self.messages, self.cap = grown, cap
        if self.prepare == NULL:
            self.prepare = <uv_prepare_t*>malloc(sizeof(uv_prepare_t))
            if self.prepare == NULL:
                raise MemoryError()
            uv_prepare_init(self.hub.loop, self.prepare)
            uv_unref(<uv_handle_t*>self.prepare)   # it never keeps the loop alive by itself
            self.prepare.data = <void*>self
        if self.count == 0:
            uv_prepare_start(self.prepare, _prepare_cb)
        memcpy(&self.messages[self.count].addr, addr, sizeof(sockaddr_storage))
        self.messages[self.count].addrlen = (sizeof(sockaddr_in) if addr.ss_family == AF_INET
                                             else sizeof(sockaddr_in6))
        self.datas.append(data)
        self.owners.append(owner)
        self.count += 1
        return 0

    cdef int flush(self) except -1:
        """Send every queued datagram now (see the module docstring for failures)."""
        cdef Py_ssize_t n = self.count, start = 0, i
        cdef mmsghdr* vec
        cdef iovec* iov
        cdef bytes data
        cdef int fd = -1, sent, err
        cdef list datas = self.datas, owners = self.owners
        if n == 0:
            return 0
        self.count = 0
        self.datas, self.owners = [], []
        if self.prepare != NULL:
            uv_prepare_stop(self.prepare)
        if self.sock.closed or self.sock.handle == NULL or \
                uv_fileno(<uv_handle_t*>self.sock.handle, &fd) != 0:
            return 0                   # closed meanwhile: its callers were told already
        vec = <mmsghdr*>malloc(n * (sizeof(mmsghdr) + sizeof(iovec)))
        if vec == NULL:
            raise MemoryError()
        iov = <iovec*>(vec + n)
        memset(vec, 0, n * sizeof(mmsghdr))
        for i in range(n):
            data = <bytes>datas[i]
            iov[i].iov_base = PyBytes_AS_STRING(data)
            iov[i].iov_len = <size_t>PyBytes_GET_SIZE(data)
            vec[i].msg_hdr.msg_name = &self.messages[i].addr
            vec[i].msg_hdr.msg_namelen = self.messages[i].addrlen
            vec[i].msg_hdr.msg_iov = &iov[i]
            vec[i].msg_hdr.msg_iovlen = 1
        try:
            while start < n:
                sent = sendmmsg(fd, vec + start, <unsigned int>(n - start), 0)
                if sent > 0:
                    for i in range(start, start + sent):
                        self.sock._count_sent(iov[i].iov_len)
                    start += sent
                    continue
                err = errno
                if err == EINTR:
                    continue
                if err == EAGAIN:                # (EWOULDBLOCK on Linux)
                    # The socket buffer is full: libuv queues the rest until it drains.
                    for i in range(start, n):
                        if self.sock._sendto(datas[i], &self.messages[i].addr) is None:
                            self._failed(owners[i], self.sock.error, i)
                    return 0
                self._failed(owners[start], error_message(-err), start)   # that one alone
                start += 1
        finally:
            free(vec)
        return 0

    cdef int _failed(self, object owner, str message, Py_ssize_t i) except -1:
        self.on_failure(owner, message,
                        sockaddr_to_tuple(<const sockaddr*>&self.messages[i].addr))
        return 0

    cdef void close(self):
        """Drop what is queued and release the prepare handle (the socket is closing)."""
        self.count = 0
        self.datas, self.owners = [], []
        if self.prepare != NULL:
            close_handle(<uv_handle_t*>self.prepare)
            self.prepare = NULL


cdef bint _fill_target(UDP s, object ip, object port, sockaddr_storage* ss) except -1:
    """``ss`` = the address of ``ip:port``, or False with the reason on ``s.error``."""
    cdef int err = fill_sockaddr(ip, <int>port, ss)
    if err < 0:
        s.error = error_message(err)
        return False
    return True


cdef object send_now(UDP s, bytes data, object ip, object port):
    """Send one datagram to ``ip:port`` now: True, or None with the reason on ``s.error``.

    A plain socket with no emulated links takes the short way to its ``_sendto`` (no Python-level
    address parsing); a simulated socket or one with emulated links goes through its ``sendto``."""
    cdef sockaddr_storage ss
    if type(s) is UDP and (s.policy is None or s.policy.links is None):
        if not _fill_target(s, ip, port, &ss):
            return None
        return s._sendto(data, &ss)
    return s.sendto(data, ip, port)


cdef object send_soon(Outbox box, bytes data, object ip, object port, object owner):
    """Queue ``data`` for ``ip:port`` in ``box``, or send it now where the socket may not queue
    (see the module docstring): True, or None with the reason on the socket's ``error``."""
    cdef UDP s = box.sock
    cdef sockaddr_storage ss
    cdef int fd
    if type(s) is not UDP or s.policy is not None or s.closed or s.handle == NULL or \
            uv_fileno(<uv_handle_t*>s.handle, &fd) != 0:
        return send_now(s, data, ip, port)
    if not _fill_target(s, ip, port, &ss):
        return None
    box.add(data, &ss, owner)
    return True

"""The client side of splay.rpcq: one persistent, pipelined connection per peer.

A :class:`Connection` keeps a FIFO of messages for its peer. At most ``window`` of them are in
flight (sent, reply not yet read); replies are matched to messages by their number ``n``.

There is no reader thread. The calling threads take turns as the connection's *driver*: the
driver connects when needed and reads replies, handing each one to its caller (a wake, no extra
thread); when the driver's own reply has arrived it passes the role to the oldest caller still
waiting. A sequential call therefore costs one send and one read in the caller's own thread.

Writes are coalesced: a call made while others are in flight only queues its message and, if none
is pending, starts a short *flusher* thread that yields once (so every caller woken in the same
scheduler round queues first) and then sends the whole queue, up to the window, in one write. The
driver likewise refills the window in one write once it has read every reply already buffered.

When the connection is lost while messages remain, the driver reconnects and sends the messages
that had no reply again (at least once, as the original rpcq). A connect failure fails at once the
messages that were never sent; messages that were in flight are retried every
``reconnect_interval`` seconds until their own timeouts, except when the peer refuses the
connection (nothing listens there any more): then every message fails at once.

The socket keeps reading while the connection is idle, so an end of stream or a reset from the
peer is recorded as it arrives (:attr:`Connection.peer_gone`). A call on such a connection never
writes to it: the connection is dropped and the call goes out on a fresh one, which fails at once
with "connection refused" when the peer's server is gone.
"""
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from splayc.tcp cimport TCP, tcp_new
from splayc.hub cimport Hub, Task, get_hub, node_of_current
from splayc.benc cimport encode_framed_c
from splayc.rpc_fast cimport (read_block_value, block_buffered, READ_OK, READ_TIMEOUT, READ_CLOSED,
                              READ_UNDECODABLE)
from splayc.sockbase cimport deadline_after, remaining

from collections import deque

cdef enum ConnState:
    DISCONNECTED = 0
    CONNECTING = 1
    CONNECTED = 2
    CLOSED = 3


cdef class Message:
    """One request on its way: its block, its caller, and once done its outcome."""
    cdef object n
    cdef bytes block
    cdef Task task
    cdef unsigned long token
    cdef bint waiting          # the caller is blocked, waiting for a wake
    cdef bint done
    cdef bint ok
    cdef bint was_sent         # sent at least once (its fate on a lost connection is unknown)
    cdef object outcome        # the reply value, or the error message
    cdef uint64_t deadline


cdef class Connection:
    """A persistent rpcq connection to one peer (see the module docstring)."""
    cdef readonly object ip
    cdef readonly int port
    cdef TCP sock
    cdef ConnState state
    cdef object queue                 # deque of Message not sent yet
    cdef dict in_flight               # n -> Message
    cdef Task driver
    cdef bint flush_pending           # a flusher thread will send the queue at the next round
    cdef long next_n
    cdef public int window
    cdef public double reconnect_interval
    cdef public Py_ssize_t max_length
    cdef public double last_used      # time.monotonic() of the last call (the pool's LRU)
    cdef public object log
    cdef public object on_close       # called with the connection when it is closed for good
    cdef public object _splay_node    # set by hub.track(): closed when that node exits

    def __cinit__(self, ip, int port, int window, double reconnect_interval,
                  Py_ssize_t max_length, log):
        self.ip = ip
        self.port = port
        self.window = window if window > 0 else 1
        self.reconnect_interval = reconnect_interval
        self.max_length = max_length
        self.log = log
        self.queue = deque()
        self.in_flight = {}
        self.next_n = 1
        self.state = DISCONNECTED

    def __repr__(self):
        state = ("disconnected", "connecting", "connected", "closed")[<int>self.state]
        return (f"<rpcq connection to {self.ip}:{self.port} {state}, {len(self.in_flight)} in "
                f"flight, {len(self.queue)} queued>")

    @property
    def idle(self):
        """True when no message is queued or in flight (the connection may be closed)."""
        return not self.queue and not self.in_flight

    @property
    def connected(self):
        """True while the TCP connection is up."""
        return self.state == CONNECTED

    @property
    def peer_gone(self):
        """True when the peer closed or reset the open connection (seen by its idle reader)."""
        return self._peer_gone()

    cdef bint _peer_gone(self):
        return self.state == CONNECTED and self.sock is not None and \
            (self.sock.eof or self.sock.read_err != 0)

    def call(self, dict request, double timeout):
        """Send ``request`` (a dict; its ``"n"`` is set here) and wait for its reply.

        Returns ``(True, reply dict)`` or ``(False, "message")``. ``timeout`` < 0: no timeout.
        """
        cdef Hub hub = get_hub()
        cdef Message m = Message.__new__(Message)
        cdef Task me
        if self.state == CLOSED:
            return (False, "closed")
        me = hub.current
        if me is None:
            hub.begin_block()            # raises NotInThread with the standard message
        m.n = self.next_n
        self.next_n += 1
        request["n"] = m.n
        try:
            m.block = encode_framed_c(request)
        except (TypeError, ValueError) as exc:
            return (False, f"cannot encode the call: {exc}")
        m.deadline = deadline_after(timeout)
        m.task = me
        if not self.in_flight and self._peer_gone():
            # The request was never written on the dead connection: it goes out on a fresh one.
            self._lost("closed by the peer")
        self.queue.append(m)
        try:
            if self.state == CONNECTED:
                if not self.in_flight:
                    self._pump()             # nothing else going on: send now
                elif not self.flush_pending and len(self.in_flight) < self.window:
                    # Other calls are in flight: callers woken in this round queue their messages
                    # too, and one write at the next round carries them all.
                    self.flush_pending = True
                    hub.spawn(self._flush_later, ())
            return self._wait(m, hub)
        except BaseException:
            self._forget(m)
            raise

    cdef _wait(self, Message m, Hub hub):
        cdef double left
        cdef Task t
        while True:
            if m.done:
                return (m.ok, m.outcome)
            left = remaining(m.deadline)
            if left == 0.0:
                self._forget(m)
                return (False, "timeout")
            if self.driver is None and self.state != CLOSED:
                self.driver = m.task
                try:
                    self._drive(m)
                finally:
                    self.driver = None
                    self._hand_over()
                continue
            if self.state == CLOSED:
                self._forget(m)
                return (False, "closed")
            t = hub.begin_block()
            m.token = t.token
            m.waiting = True
            try:
                hub.block(t, left)
            finally:
                m.waiting = False

    cdef void _forget(self, Message m):
        """Drop a message whose caller gave up (a late reply is then ignored)."""
        if m.done:
            return
        m.done = True
        m.ok = False
        m.outcome = "timeout"
        if self.in_flight.get(m.n) is m:
            del self.in_flight[m.n]
            self._pump()
        else:
            try:
                self.queue.remove(m)
            except ValueError:
                pass

    cdef void _hand_over(self):
        """Wake the oldest waiting caller so that it becomes the driver."""
        cdef Message m
        for m in self.in_flight.values():
            if m.waiting and not m.done:
                get_hub().wake(m.task, m.token, None)
                return
        for m in self.queue:
            if m.waiting and not m.done:
                get_hub().wake(m.task, m.token, None)
                return

    cdef void _finish(self, Message m, bint ok, object outcome):
        m.done = True
        m.ok = ok
        m.outcome = outcome
        if m.waiting:
            get_hub().wake(m.task, m.token, None)

    def _flush_later(self):
        get_hub().yield_now()               # after every thread woken in this round
        self.flush_pending = False
        self._pump()

    cdef int _pump(self) except -1:
        """Send queued messages while the window has room, in one write."""
        cdef Message m
        cdef list blocks = None
        cdef bytes first = None
        while self.state == CONNECTED and self.queue and len(self.in_flight) < self.window:
            m = self.queue.popleft()
            if m.done:
                continue
            self.in_flight[m.n] = m
            m.was_sent = True
            if first is None:
                first = m.block
            else:
                if blocks is None:
                    blocks = [first]
                blocks.append(m.block)
        if first is None:
            return 0
        self.sock.settimeout_c(-1.0)
        if not self.sock.send_data(first if blocks is None else b"".join(blocks)):
            self._lost(self.sock.error)
        return 0

    cdef int _drive(self, Message m) except -1:
        """Connect and read replies until ``m`` is done or its deadline passes."""
        cdef int status = READ_OK
        cdef TCP s
        while not m.done:
            if remaining(m.deadline) == 0.0:
                return 0
            if self.state == DISCONNECTED:
                if not self._connect(m):
                    return 0
                continue
            if self.state != CONNECTED:
                return 0
            if not self.in_flight:
                self._pump()
                if not self.in_flight:
                    return 0
            s = self.sock
            value = read_block_value(s, self.max_length, m.deadline, &status)
            if status == READ_OK:
                self._on_reply(value)
                if not block_buffered(s):
                    self._pump()             # the window moved: refill it in one write
            elif status == READ_TIMEOUT:
                return 0
            elif status == READ_UNDECODABLE:
                self.log.debug(f"rpcq: skipped a reply from {self.ip}:{self.port}: {value}")
            elif s is self.sock:
                self._lost(value)
        return 0

    cdef int _on_reply(self, object value) except -1:
        cdef Message m
        if type(value) is not dict:
            self.log.debug(f"rpcq: skipped a reply that is not a dict: {value!r:.200}")
            return 0
        m = self.in_flight.pop(value.get("n"), None)
        if m is None:
            return 0                     # the reply of a call that timed out
        if "reply" in value:
            self._finish(m, True, value)
        else:
            self._finish(m, False, value.get("error") or "the remote call failed")
        return 0

    cdef int _connect(self, Message m) except -1:
        """Open the connection for the driver ``m``: True when connected (or worth retrying)."""
        cdef TCP s = tcp_new()
        cdef Message q
        cdef double left = remaining(m.deadline)
        self.state = CONNECTING
        s.settimeout_c(left)
        try:
            ok = s.connect_c(self.ip, self.port)
        except BaseException:
            self.state = DISCONNECTED
            raise
        if self.state == CLOSED:
            s.close_c()
            return False
        if ok:
            self.sock = s
            self.state = CONNECTED
            self._pump()
            return True
        self.state = DISCONNECTED
        error = s.error
        # Messages never sent fail now; messages whose fate is unknown wait for a reconnection,
        # unless nothing listens at the peer's address any more.
        refused = error == "connection refused"
        retry = False
        for q in list(self.queue):
            if q.done:
                continue
            if q.was_sent and not refused:
                retry = True
            else:
                self.queue.remove(q)
                self._finish(q, False, error)
        if not retry:
            return False
        self.log.debug(f"rpcq: reconnecting to {self.ip}:{self.port} failed ({error}); retrying")
        left = remaining(m.deadline)
        get_hub().sleep(self.reconnect_interval if left < 0 or left > self.reconnect_interval
                        else left)
        return True

    cdef int _lost(self, object error) except -1:
        """The connection broke: requeue the messages in flight (in order) and drop the socket."""
        cdef Message m
        cdef list pending
        if self.sock is not None:
            self.sock.close_c()
            self.sock = None
        if self.state == CLOSED:
            return 0
        self.state = DISCONNECTED
        pending = [m for m in self.in_flight.values() if not m.done]
        self.in_flight.clear()
        self.queue.extendleft(reversed(pending))
        self.log.debug(f"rpcq: connection to {self.ip}:{self.port} lost ({error}); "
                       f"{len(self.queue)} message(s) left")
        if self.driver is None:
            self._hand_over()            # somebody must reconnect for the messages left
        return 0

    def close(self):
        """Close the connection for good: waiting callers get ``(False, "closed")``."""
        cdef Message m
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if self.sock is not None:
            self.sock.close_c()
            self.sock = None
        for m in list(self.in_flight.values()) + list(self.queue):
            if not m.done:
                self._finish(m, False, "closed")
        self.in_flight.clear()
        self.queue.clear()
        if self.on_close is not None:
            cb, self.on_close = self.on_close, None
            cb(self)

    def close_if_idle(self):
        """Close the connection when nothing is queued or in flight: True if it was closed."""
        if self.queue or self.in_flight or self.driver is not None:
            return False
        self.close()
        return True


# ---------------------------------------------------------------------------- the pool's fast path

cdef double _monotonic() noexcept:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)    # the clock of time.monotonic()
    return t.tv_sec + t.tv_nsec * 1e-9


def pooled_transport(object pool, dict settings, object open_connection):
    """splay.rpcq's ``transport(ip, port, request, timeout)`` over its connection ``pool``.

    ``pool`` is the module's ``OrderedDict`` ``(id(node) or None, ip, port) -> Connection``, least
    recently used first, and ``open_connection(ip, port)`` the module's own way to get a
    connection (which also closes idle ones and makes room). A call whose connection is in the
    pool and alive takes it here without entering the interpreter; the others, and one call each
    second (so that the module's cleaning keeps its pace), go through ``open_connection``.
    """
    cdef double next_slow = 0.0
    # The connection of the previous call, and its key: a loop of calls to one peer finds it
    # without building the key or touching the pool (it is already the most recently used entry:
    # every other call to the pool goes through here and replaces it).
    cdef Connection last = None
    cdef object last_node = None, last_ip = None, last_port = None

    def transport(ip, port, request, timeout):
        nonlocal next_slow, last, last_node, last_ip, last_port
        cdef Hub hub = get_hub()
        cdef object node = node_of_current(hub)
        cdef double now = _monotonic()
        cdef Connection conn = None
        if now < next_slow:
            if last is not None and node is last_node and port == last_port and \
                    (ip is last_ip or ip == last_ip) and last.state != CLOSED:
                conn = last
            else:
                key = (None if node is None else id(node), ip, port)
                conn = pool.get(key)
                if conn is not None:
                    pool.move_to_end(key)
            if conn is not None and not conn._peer_gone():
                conn.window = int(settings["window_size"])
                conn.last_used = now
            else:
                conn = None
        if conn is None:
            next_slow = now + 1.0
            conn = open_connection(ip, port)
        last, last_node, last_ip, last_port = conn, node, ip, port
        ok, value = conn.call(request, timeout)
        if not ok:
            return False, value
        return True, value["reply"]
    return transport

"""The calling side of splay.urpc: one shared UDP socket per node, replies matched by key.

Every call of a node goes out through the same UDP socket (no socket per call). There is no reader
thread: as in splay.rpcq, the waiting callers take turns as the *driver*, which reads the socket and
hands each reply to the call with that key (a wake). Each caller sends its own datagram again every
``timeout / (retry_number + 1)`` seconds until its reply arrives or its timeout passes; datagrams
that are not a reply to a pending key (late replies, garbage) are dropped.

Calls, retries and frees leave through the socket's :class:`splayc.udp_outbox.Outbox`: together,
in one ``sendmmsg``, once the round's runnable threads have run (a sequential caller's free leaves
with its next call). A datagram the kernel refuses fails its call with the kernel's reason.
"""
from libc.stdint cimport uint64_t

from splayc.hub cimport Hub, Task, get_hub, clock_ns, node_of_current
from splayc.benc cimport encode_c, decode_c
from splayc.sockbase cimport deadline_after, remaining
from splayc.uv cimport uv_recv_buffer_size, uv_handle_t

from splayc.udp cimport UDP, udp_new
from splayc.udp_outbox cimport Outbox, send_soon

from splayc.errors import DecodeError


#: Receive buffer asked for urpc sockets: a burst of replies (or of calls, on a server) to
#: one socket must not overflow the default ~200 KB, where each small datagram costs ~2 KB.
RECEIVE_BUFFER = 4 * 1024 * 1024


def enlarge_receive_buffer(UDP s, int size=RECEIVE_BUFFER):
    """Ask the kernel for a ``size``-byte receive buffer on a bound UDP socket (capped by
    net.core.rmem_max): True if it was set."""
    cdef int value = size
    if s.handle == NULL:
        return False
    return uv_recv_buffer_size(<uv_handle_t*>s.handle, &value) == 0


cdef class Pending:
    """One call waiting for its reply."""
    cdef object key
    cdef object ip
    cdef int port
    cdef bytes data
    cdef Task task
    cdef unsigned long token
    cdef bint waiting
    cdef bint done
    cdef object reply               # the reply dict, or None while waiting
    cdef uint64_t deadline
    cdef uint64_t next_send         # clock_ns() of the next retry (0: no more retries)
    cdef uint64_t interval_ns
    cdef int sends_left             # -1: unlimited (no timeout)


cdef class Client:
    """The shared socket of one node and its pending calls (see the module docstring)."""
    cdef readonly UDP sock
    cdef Outbox outbox              # what this node's calls send, sent together
    cdef dict pending               # key -> Pending
    cdef Task driver
    cdef object log
    cdef bint buffer_set
    cdef public object _splay_node  # set by hub.track(): closed when that node exits

    def __cinit__(self, log):
        self.sock = udp_new()
        self.outbox = Outbox(self.sock, self._send_failed)
        self.pending = {}
        self.log = log

    @property
    def closed(self):
        """True once the socket is closed (the node exited): make a new client."""
        return self.sock.closed

    def close(self):
        """Close the socket (what is queued leaves first); waiting calls fail with "closed"."""
        cdef Pending m
        self.outbox.flush()
        self.outbox.close()
        self.sock.close()
        for m in list(self.pending.values()):
            self._finish(m, {"error": "closed"})
        self.pending.clear()

    def call(self, ip, int port, key, bytes data, double timeout, int retry_number):
        """Send ``data`` (the encoded request carrying ``key``) and wait for the reply dict:
        ``(True, reply)`` or ``(False, "message")``."""
        return self.call_c(ip, port, key, data, timeout, retry_number)

    cdef tuple call_c(self, object ip, int port, object key, bytes data, double timeout,
                      int retry_number):
        cdef Hub hub = get_hub()
        cdef Pending m = Pending.__new__(Pending)
        cdef int tries = retry_number + 1 if retry_number >= 0 else 1
        if hub.current is None:
            hub.begin_block()            # raises NotInThread with the standard message
        m.key = key
        m.ip = ip
        m.port = port
        m.data = data
        m.task = hub.current
        m.deadline = deadline_after(timeout)
        m.interval_ns = <uint64_t>((timeout / tries if timeout >= 0 else 1.0) * 1e9)
        m.sends_left = tries if timeout >= 0 else -1
        self.pending[key] = m
        try:
            error = self._send(m)
            if error is not None:
                return (False, error)
            return self._wait(m, hub)
        finally:
            if self.pending.get(key) is m:
                del self.pending[key]

    cdef object _send(self, Pending m):
        if send_soon(self.outbox, m.data, m.ip, m.port, m) is None:
            return self.sock.error
        if not self.buffer_set:             # bound by its first send
            self.buffer_set = True
            enlarge_receive_buffer(self.sock)
        if m.sends_left > 0:
            m.sends_left -= 1
        m.next_send = clock_ns() + m.interval_ns if m.sends_left != 0 else 0
        return None

    cdef object _wait(self, Pending m, Hub hub):
        cdef uint64_t wake_at, now
        cdef Task t
        while True:
            if m.done:
                if isinstance(m.reply, dict) and "error" in m.reply and "reply" not in m.reply:
                    return (False, m.reply["error"])       # our own failure ("closed")
                return (True, m.reply)
            now = clock_ns()
            if m.deadline and now >= m.deadline:
                return (False, "timeout")
            if m.next_send and now >= m.next_send:
                error = self._send(m)
                if error is not None:
                    return (False, error)
                continue
            wake_at = m.deadline
            if m.next_send and (wake_at == 0 or m.next_send < wake_at):
                wake_at = m.next_send
            if self.driver is None:
                self.driver = m.task
                try:
                    self._drive(m, wake_at)
                finally:
                    self.driver = None
                    self._hand_over()
                continue
            t = hub.begin_block()
            m.token = t.token
            m.waiting = True
            try:
                hub.block(t, remaining(wake_at))
            finally:
                m.waiting = False

    def _send_failed(self, owner, message, address):
        # The outbox's report of a datagram the kernel refused: its call fails with the reason.
        if type(owner) is Pending and not (<Pending>owner).done:
            self._finish(<Pending>owner, {"error": message})

    cdef void _hand_over(self):
        cdef Pending m
        for m in self.pending.values():
            if m.waiting and not m.done:
                get_hub().wake(m.task, m.token, None)
                return

    cdef void _finish(self, Pending m, object reply):
        m.done = True
        m.reply = reply
        if m.waiting:
            get_hub().wake(m.task, m.token, None)

    cdef int _drive(self, Pending m, uint64_t wake_at) except -1:
        """Read replies until ``m`` is answered or ``wake_at`` comes."""
        cdef Pending other
        cdef double left
        cdef bytes data
        while not m.done:
            left = remaining(wake_at)
            if left == 0.0:
                return 0
            self.sock.timeout = left if left > 0 else -1.0
            got = self.sock._receive(65536, True)
            if got is None:
                if self.sock.error == "timeout":
                    return 0
                for other in list(self.pending.values()):
                    self._finish(other, {"error": self.sock.error})
                return 0
            data = got[0]
            try:
                reply = decode_c(data, len(data), False, False)
            except DecodeError as exc:
                self.log.debug(f"ignored an undecodable datagram from {got[1]}:{got[2]}: {exc}")
                continue
            if type(reply) is not dict or not reply.get("reply"):
                continue
            other = self.pending.get(reply.get("key"))
            if other is None or other.done:
                continue                   # a late or repeated reply
            self._finish(other, reply)
        return 0


cdef Client _client_of_current_node(dict clients, object log):
    """The shared client of the running thread's node (a new one when it has none or its socket
    closed), registered with the node so that its exit closes it."""
    cdef Hub hub = get_hub()
    cdef object node = node_of_current(hub)
    cdef object key = None if node is None else id(node)
    cdef Client c = clients.get(key)
    if c is None or c.sock.closed:
        c = Client(log)
        clients[key] = c
        hub.track(c)                   # a node's exit closes it before its socket
    return c


def urpc_transport(dict clients, dict settings, str key_prefix, object log):
    """splay.urpc's transport ``transport(ip, port, request, timeout) -> (ok, value)``.

    Gives the request the next key (``key_prefix`` + a counter), encodes it (at most
    ``URPC_MAX_DATAGRAM`` bytes: else ``(False, "call length (N)")``), sends it through the node's
    shared :class:`Client` (kept in ``clients``, by node) with ``settings["retry_number"]``
    retries, and after a call's reply sends the ``free`` message. The value is the result list
    of a call, True for a ping, or the error message."""
    cdef unsigned long long counter = 0

    def transport(ip, port, dict request, double timeout):
        nonlocal counter
        cdef bytes data
        cdef Client client
        cdef bint is_call
        counter += 1
        key = f"{key_prefix}{counter}"
        request["key"] = key
        try:
            data = encode_c(request)
        except (TypeError, ValueError) as exc:
            return (False, f"cannot encode the call: {exc}")
        if len(data) > URPC_MAX_DATAGRAM:
            return (False, f"call length ({len(data)})")
        client = _client_of_current_node(clients, log)
        ok, reply = client.call_c(ip, port, key, data, timeout, int(settings["retry_number"]))
        if not ok:
            return (False, reply)
        kind = request.get("type")
        is_call = type(kind) is str and <str>kind == "call"
        if is_call:
            send_soon(client.outbox, _free_message(key), ip, port, None)
        if "error" in reply:
            return (False, str(reply["error"]))
        if not is_call:
            return (True, True)
        return (True, reply.get("call"))
    return transport


cdef bytes _free_message(object key):
    # Our own keys are ASCII: the benc of {"free": true, "key": key} written directly (the same
    # bytes as encode_c, keys in sorted order), without building and sorting a dict.
    cdef bytes k
    if type(key) is str and (<str>key).isascii():
        k = (<str>key).encode("ascii")
        return b"d4:freet3:key%d:%se" % (len(k), k)
    return encode_c({"free": True, "key": key})


def free_message(key):
    """The benc ``{"free": true, "key": key}`` datagram."""
    return _free_message(key)

# cython: language_level=3, boundscheck=False, wraparound=False
"""The serving side of splay.urpc, compiled: datagram in, duplicate check, dispatch, reply out.

:class:`splay.urpc.UDPServer` binds the socket and owns the server's life; :class:`Server` is its
receiving loop and its calls (run in the receiving thread, below). Per datagram, without a Python
frame:

* a datagram over ``MAX_DATAGRAM`` bytes, one that is not benc, or one that is not a dict is
  logged (debug) and dropped; any other failure handling one is logged (notice) and the loop goes
  on: no datagram ends a server;
* ``{"free": t, "key": K}`` drops the cached reply of ``K`` (recognised without decoding in its
  canonical form, ``_free_key``);
* a ping is answered at once, by the receiving thread;
* a call whose key is in the reply cache is a retry: answered from the cache, or not at all while
  the first copy still runs (that one answers when done), so a call runs at most once;
* any other call runs through ``answer`` (splayc.rpcstats.MeasuredAnswer: the compiled dispatch
  of splayc.rpc_answer, the Python dispatcher for the rest); its encoded reply is cached under its
  key and sent. A reply over ``MAX_DATAGRAM`` bytes becomes the error ``"reply length (N)"``; a
  result benc cannot encode becomes ``"cannot encode the result: ..."``;
* replies leave through the socket's :class:`splayc.udp_outbox.Outbox`: the replies of a round's
  calls together, in one ``sendmmsg``, before the loop polls again.

A call runs inside the receiving thread, in a contextvars copy of its own (as a thread of its own
would), as splayc.rpc_fast's rpcq server does: that spares a thread start and a switch per call
(~7,000 of the ~50,000 instructions a sequential call took on both sides). If the call suspends
(it blocks or yields), the hub tells us first (``Hub.suspend_watch``) and a new thread takes over
the receiving, so a slow call never holds up the others; the suspended thread ends with its call.
``reader`` is the thread receiving now.

The cache keeps a reply at least ``settings["cleaning_after"]`` seconds (read at each cleaning);
it is cleaned on the arrival of a call, at most every quarter of that (and every second), from the
oldest entry on (a dict keeps insertion order; entries are never moved).
"""
from libc.stdint cimport uint64_t
from libc.string cimport memcmp
from cpython.unicode cimport PyUnicode_DecodeUTF8

from splayc.hub cimport Hub, Task, get_hub, clock_ns
from splayc.benc cimport encode_c, decode_c
from splayc.udp cimport UDP
from splayc.urpc_client cimport URPC_MAX_DATAGRAM
from splayc.udp_outbox cimport Outbox, send_soon
from splayc.rpc_fast cimport begin_in_place, end_in_place, killed_itself, take_over_thread

from splayc.errors import DecodeError
from splayc.hub import TaskKilled

#: The largest datagram (bytes) urpc sends or accepts, as the original.
MAX_DATAGRAM = URPC_MAX_DATAGRAM
DEF RECEIVE_SIZE = 65536           # larger than any datagram, so an oversized one is seen whole


cdef extern from "Python.h":
    object PyContext_CopyCurrent()


cdef object _free_key(bytes data):
    """The key of a free datagram in the canonical form every caller sends (Lua's and ours:
    ``d4:freet3:key<len>:<key>e``), or None: any other datagram goes through the decoder. Half of
    the datagrams a busy server receives are frees; this skips building a dict for each."""
    cdef const char* p = data
    cdef Py_ssize_t n = len(data)
    cdef Py_ssize_t i = 13, klen = 0
    if n < 17 or memcmp(p, b"d4:freet3:key", 13) != 0 or p[n - 1] != b'e':
        return None
    if p[i] == b'0' and p[i + 1] != b':':
        return None                           # a leading zero: the decoder's to judge
    while i < n and i < 19 and b'0' <= p[i] <= b'9':
        klen = klen * 10 + (p[i] - 48)
        i += 1
    if i == 13 or p[i] != b':' or i + 1 + klen != n - 1:
        return None
    try:
        return PyUnicode_DecodeUTF8(p + i + 1, klen, NULL)     # as the decoder makes keys
    except UnicodeDecodeError:
        return None


cdef class Entry:
    """A cached reply: its datagram (None while the call runs) and when the call arrived."""
    cdef bytes data
    cdef uint64_t born


cdef class Server:
    """The loop and calls of one urpc server (see the module docstring).

    ``sock``: the bound UDP socket; ``answer(request) -> reply dict`` (must not raise);
    ``settings``: splay.urpc.settings (``cleaning_after``); ``log``: the module's logger.
    """
    cdef readonly UDP sock
    cdef Outbox outbox                # the replies, sent together (splayc/udp_outbox.pyx)
    cdef readonly dict cache          # key -> Entry, oldest first
    cdef readonly int port
    cdef public bint closed
    cdef object answer
    cdef dict settings
    cdef object log
    cdef uint64_t next_clean          # clock_ns() from which the next cleaning may run
    cdef readonly Task reader         # the thread receiving now (None before start())
    cdef object reader_context        # its contextvars: each call runs in a copy
    cdef object moved                 # self._moved, made once

    def __cinit__(self, UDP sock, int port, answer, dict settings, log):
        self.sock = sock
        self.outbox = Outbox(sock, self._send_failed)
        self.port = port
        self.answer = answer
        self.settings = settings
        self.log = log
        self.cache = {}

    def flush(self):
        """Send the queued replies now (before the server closes its socket)."""
        self.outbox.flush()

    def start(self):
        """Start the receiving thread (the calling thread's node owns it) and return it."""
        self.reader = get_hub().spawn(self.serve, ())
        return self.reader

    def serve(self):
        """Receive and handle datagrams until the socket closes (the receiving thread's body).
        Returns early when a call of this thread suspended and another thread took over."""
        self.moved = self._moved
        self._receive_loop()

    def _take_over(self):
        """Body of a new receiving thread, started when the previous one's call suspended."""
        self._receive_loop()

    def _moved(self):
        # Called by the hub as the reader's call suspends: a new thread receives from now on.
        self.reader = take_over_thread(self._take_over, self.reader_context)

    cdef _receive_loop(self):
        cdef Hub hub = get_hub()
        cdef Task me = hub.current
        cdef UDP s = self.sock
        cdef bytes data
        self.reader = me
        self.reader_context = PyContext_CopyCurrent()
        while not self.closed and self.reader is me:
            got = s._receive(RECEIVE_SIZE, True)
            if got is None:
                if self.closed or s.error == "closed":
                    return
                self.log.debug(f"urpc server on port {self.port}: receive failed: {s.error}")
                continue
            data = <bytes>(<tuple>got)[0]
            try:
                self._handle(data, (<tuple>got)[1], (<tuple>got)[2])
            except Exception as exc:            # a hostile datagram must never end the server
                self.log.notice(f"urpc server on port {self.port}: ignored a datagram from "
                                f"{got[1]}:{got[2]}: {type(exc).__name__}: {exc}")

    cdef int _handle(self, bytes data, object ip, object port) except -1:
        cdef object request, key, kind
        cdef Entry entry
        cdef uint64_t now
        if len(data) > URPC_MAX_DATAGRAM:
            self.log.debug(f"ignored a datagram of {len(data)} bytes from {ip}:{port} "
                           f"(more than {MAX_DATAGRAM})")
            return 0
        key = _free_key(data)
        if key is not None:
            self.cache.pop(key, None)
            return 0
        try:
            request = decode_c(data, len(data), False, False)
        except DecodeError as exc:
            self.log.debug(f"ignored an undecodable datagram from {ip}:{port}: {exc}")
            return 0
        if type(request) is not dict:
            self.log.debug(f"ignored a datagram that is not a dict from {ip}:{port}")
            return 0
        key = (<dict>request).get("key")
        if not isinstance(key, (str, bytes)):
            key = None
        if (<dict>request).get("free"):
            if key is not None:
                self.cache.pop(key, None)
            return 0
        kind = (<dict>request).get("type")
        if type(kind) is str and <str>kind == "ping":
            self._send(encode_c(self.answer(request)), ip, port)
            return 0
        now = clock_ns()
        if now >= self.next_clean:
            self._clean(now)
        if key is None:
            entry = None
        else:
            entry = <Entry>self.cache.get(key)
            if entry is not None:
                if entry.data is not None:         # a retry: answer from the cache
                    self._send(entry.data, ip, port)
                return 0                           # still running: it answers when done
            entry = Entry.__new__(Entry)
            entry.born = now
            self.cache[key] = entry
        self._run_here(request, ip, port, entry)
        return 0

    cdef int _run_here(self, dict request, object ip, object port, Entry entry) except -1:
        """Run one call in this (the receiving) thread; if it suspends, another thread receives
        from then on (``_moved``) and this one ends after the call; if it kills this thread, the
        call ends unanswered and another thread receives."""
        cdef Hub hub = get_hub()
        cdef Task me = hub.current
        cdef object ctx = begin_in_place(hub, me, self.reader_context, self.moved)
        try:
            self._run(request, ip, port, entry)
        except TaskKilled:
            # The call killed its own thread: that ends the call, not the server -- a new thread
            # receives from here on.
            if killed_itself(hub, me) and self.reader is me and not self.closed:
                self.reader = take_over_thread(self._take_over, self.reader_context)
            raise
        finally:
            end_in_place(hub, me, ctx)
        return 0

    cdef int _clean(self, uint64_t now) except -1:
        cdef double keep = float(self.settings["cleaning_after"])
        cdef uint64_t keep_ns = <uint64_t>(keep * 1e9) if keep > 0 else 0
        cdef uint64_t limit = now - keep_ns if now > keep_ns else 0
        cdef list expired = []
        cdef Entry entry
        self.next_clean = now + min(keep_ns // 4, <uint64_t>1000000000)
        for key, value in self.cache.items():
            entry = <Entry>value
            if entry.born >= limit:
                break
            expired.append(key)
        for key in expired:
            del self.cache[key]
        return 0

    cdef int _run(self, dict request, object ip, object port, Entry entry) except -1:
        """Run one call and send its reply."""
        cdef bytes data
        reply = self.answer(request)
        try:
            data = encode_c(reply)
        except (TypeError, ValueError) as exc:
            reply.pop("call", None)
            reply["error"] = f"cannot encode the result: {exc}"
            data = encode_c(reply)
        if len(data) > URPC_MAX_DATAGRAM:
            reply.pop("call", None)
            reply["error"] = f"reply length ({len(data)})"
            data = encode_c(reply)
        if entry is not None:
            entry.data = data
        if not self.closed:
            self._send(data, ip, port)
        return 0

    cdef int _send(self, bytes data, object ip, object port) except -1:
        if send_soon(self.outbox, data, ip, port, None) is None:
            self._send_failed(None, self.sock.error, (ip, port))
        return 0

    def _send_failed(self, owner, message, address):
        self.log.debug(f"urpc server on port {self.port}: could not reply to "
                       f"{address[0]}:{address[1]}: {message}")

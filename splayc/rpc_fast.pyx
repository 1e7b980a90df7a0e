"""The compiled fast path of splay.rpc and the server side of splay.rpcq.

What lives here, and why it is compiled:

* :func:`read_block_value` (cdef, see rpc_fast.pxd): one llenc block decoded straight out of the
  socket's receive buffer: no intermediate ``bytes`` per block, and a timeout consumes nothing.
* :func:`rpc_call`: one call of splay.rpc (connect, send one block, read one block, close) in the
  calling thread, with one deadline for the whole call.
* :func:`rpc_serve_connection`, :func:`rpcq_serve_connection`: the per-connection loops of the
  rpc and rpcq servers (decode, dispatch to the Python call runner, encode, reply).
* :func:`track`, :func:`untrack`, :func:`spawn`: the hub's node bookkeeping for Python modules.

The Python side (python/splay/rpc_core) decides *what* a request means (name resolution, the call,
error capture); this module only moves bytes. Every failure of a peer is a return value or a log
line, never an exception that would end a server.
"""
from libc.stdint cimport uint64_t
from libc.string cimport memchr

from splayc.tcp cimport TCP, tcp_new, WANT_BYTES, R_WOKEN, R_TIMEOUT, R_BUSY
from splayc.sockbase cimport deadline_after, remaining
from splayc.hub cimport Hub, Task, get_hub
from splayc.benc cimport encode_framed_c, decode_c
from splayc.addr cimport error_message

from splayc.errors import DecodeError
from splayc.hub import TaskKilled

cdef enum:
    MAX_LENGTH_DIGITS = 18

#: Largest request or reply block accepted by default on rpc and rpcq connections (64 MiB).
DEFAULT_MAX_LENGTH = 64 * 1024 * 1024


cdef object _read_failure(TCP s, int r, int* status):
    if r == R_TIMEOUT:
        status[0] = READ_TIMEOUT
        return "timeout"
    status[0] = READ_CLOSED
    if r == R_BUSY:
        return "busy: another thread is already receiving on this connection"
    if s.read_err:
        return error_message(s.read_err)
    return "closed"


cdef object read_block_value(TCP s, Py_ssize_t max_length, uint64_t deadline, int* status):
    cdef size_t avail, i, header
    cdef Py_ssize_t length
    cdef char* p
    cdef char c
    cdef int r
    cdef object value
    while True:
        avail = s.rend - s.rstart
        header = 0
        length = 0
        if avail:
            p = s.rbuf + s.rstart
            i = 0
            while i < avail:
                c = p[i]
                if c'0' <= c <= c'9':
                    if i >= MAX_LENGTH_DIGITS:
                        break
                    length = length * 10 + (c - c'0')
                elif c == c'\n' and i > 0:
                    header = i + 1
                    break
                elif c == c'\r' and i > 0 and (i + 1 == avail or p[i + 1] == c'\n'):
                    if i + 1 < avail:
                        header = i + 2
                        break
                else:
                    break
                i += 1
            if header == 0 and i < avail:
                status[0] = READ_BAD_FRAME
                return (f"invalid llenc block length {(<bytes>p[:min(avail, 24)])!r}: "
                        f"expected a decimal length line")
            if header:
                if max_length >= 0 and length > max_length:
                    status[0] = READ_BAD_FRAME
                    return f"block too long ({length} bytes, the maximum is {max_length})"
                if avail >= header + <size_t>length:  # whole block buffered
                    try:
                        value = decode_c(p + header, length, False, False)
                    except DecodeError as exc:
                        s.consume(header + <size_t>length)
                        status[0] = READ_UNDECODABLE
                        return f"undecodable block: {exc}"
                    s.consume(header + <size_t>length)
                    status[0] = READ_OK
                    return value
                r = s._wait_read(WANT_BYTES, header + <size_t>length, deadline)
                if r != R_WOKEN:
                    return _read_failure(s, r, status)
                continue
        r = s._wait_read(WANT_BYTES, avail + 1, deadline)
        if r != R_WOKEN:
            return _read_failure(s, r, status)


cdef bint block_buffered(TCP s):
    cdef size_t avail = s.rend - s.rstart
    cdef size_t i = 0
    cdef Py_ssize_t length = 0
    cdef char* p
    cdef char c
    if avail == 0:
        return False
    p = s.rbuf + s.rstart
    while i < avail:
        c = p[i]
        if c'0' <= c <= c'9' and i < MAX_LENGTH_DIGITS:
            length = length * 10 + (c - c'0')
        elif c == c'\n' and i > 0:
            return avail >= i + 1 + <size_t>length
        elif c != c'\r' or i == 0:
            return True                  # malformed: read_block_value reports it at once
        i += 1
    return False


# ---------------------------------------------------------------------------- hub helpers

def track(obj):
    """Register ``obj`` with the calling node: its ``close()`` runs when the node exits."""
    get_hub().track(obj)


def untrack(obj):
    """Undo :func:`track` (the object was closed by other means)."""
    get_hub().untrack(obj)


def spawn(fn, *args):
    """A new thread running ``fn(*args)`` in the calling thread's node."""
    return get_hub().spawn(fn, args)


cdef extern from "Python.h":
    object PyContext_CopyCurrent()
    object PyContext_Copy(object ctx)
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1


cdef Task take_over_thread(object fn, object context):
    """A new thread running ``fn()`` in a copy of ``context`` (see rpc_fast.pxd)."""
    cdef Task t = get_hub().spawn(fn, ())
    t.context = PyContext_Copy(context)
    return t


cdef object begin_in_place(Hub hub, Task me, object reader_context, object on_suspend):
    """Start running a call in place in ``me`` (see rpc_fast.pxd): the context entered."""
    cdef object ctx = PyContext_CopyCurrent() if reader_context is None \
        else PyContext_Copy(reader_context)
    hub.suspend_watch = me
    hub.suspend_callback = on_suspend
    PyContext_Enter(ctx)
    return ctx


cdef int end_in_place(Hub hub, Task me, object ctx) except -1:
    """The call run in place by ``me`` returned (or raised): leave its context, stop watching."""
    PyContext_Exit(ctx)
    if hub.suspend_watch is me:
        hub.suspend_watch = None
        hub.suspend_callback = None
    return 0


cdef bint killed_itself(Hub hub, Task me):
    """A TaskKilled that reached ``me`` came from ``me`` killing itself, not from the loop's stop."""
    return me.killed and not hub.stopping


def run_here(fn, arg, on_suspend):
    """Run ``fn(arg)`` in the calling thread, in a contextvars copy of its own (as a thread of its
    own would run it), and return what it returns. If ``fn`` blocks or yields before returning,
    the hub calls ``on_suspend()`` first, once: the caller hands its other duties to a new thread
    there (what a served call does in the rpcq server, below). Not to be nested: the hub watches
    one thread for one callback."""
    cdef Hub hub = get_hub()
    cdef Task me = hub.current
    cdef object ctx
    if me is None:
        hub.begin_block()            # raises NotInThread with the standard message
    ctx = begin_in_place(hub, me, None, on_suspend)
    try:
        return fn(arg)
    finally:
        end_in_place(hub, me, ctx)


# ---------------------------------------------------------------------------- splay.rpc client

#: The largest request written as one TCP segment on any usual path (Ethernet's MSS is 1,448 to
#: 1,460 bytes): a larger one gets TCP_NODELAY, so that Nagle does not hold its last segment.
DEF ONE_SEGMENT = 1400


def rpc_call(ip, int port, object request, double timeout, Py_ssize_t max_length=DEFAULT_MAX_LENGTH):
    """One splay.rpc exchange: ``(True, decoded reply)`` or ``(False, "message")``.

    Connects to ``ip:port``, sends ``request`` as one llenc block of benc, reads one block back and
    closes. ``timeout`` (seconds, < 0: none) bounds the whole exchange. Transport errors give
    LuaSocket's messages ("connection refused", "timeout", "closed").
    """
    cdef uint64_t deadline = deadline_after(timeout)
    cdef bytes block
    cdef TCP s
    cdef int status = READ_OK
    cdef double left
    try:
        block = encode_framed_c(request)
    except (TypeError, ValueError) as exc:
        return (False, f"cannot encode the call: {exc}")
    s = tcp_new()
    try:
        s.settimeout_c(timeout)
        # the request is written at once; one segment needs no TCP_NODELAY (connect_now)
        if not s.connect_now(ip, port, len(block) > ONE_SEGMENT):
            return (False, s.error)
        left = remaining(deadline)
        if left == 0.0:
            return (False, "timeout")
        s.settimeout_c(left)
        if not s.send_data(block):
            return (False, s.error)
        value = read_block_value(s, max_length, deadline, &status)
    finally:
        s.close_c()
    if status != READ_OK:
        return (False, value)
    return (True, value)


def rpc_transport(dict settings):
    """splay.rpc's ``transport(ip, port, request, timeout)``: :func:`rpc_call` with the
    ``max_length`` of ``settings`` (the module's settings dict, read at each call)."""

    def transport(ip, int port, object request, double timeout):
        return rpc_call(ip, port, request, timeout, settings["max_length"])
    return transport


# ---------------------------------------------------------------------------- servers

cdef object _encode_reply(object reply, object error_reply):
    try:
        return encode_framed_c(reply)
    except (TypeError, ValueError) as exc:
        return encode_framed_c(error_reply(f"cannot encode the result: {exc}"))


def _rpc_error(message):
    return {"error": message}


cdef class RpcConnectionServer:
    """splay.rpc's ``serve_connection(sock, dispatcher)`` (what its TCP server runs for each
    connection), compiled: no Python frame between accepting a connection and serving it.

    The dispatcher's answer is made at its first connection (``counted_answer``:
    :func:`splayc.rpcstats.counted_answer`) and kept in ``dispatcher.answers``, where later
    connections find it; ``settings`` (splay.rpc's) is read at each connection, so a change
    applies to the next one.
    """
    cdef dict settings
    cdef object log
    cdef object counted_answer

    def __init__(self, dict settings, log, counted_answer):
        self.settings = settings
        self.log = log
        self.counted_answer = counted_answer

    def __call__(self, TCP sock, dispatcher):
        answer = (<dict>dispatcher.answers).get("rpc")
        if answer is None:
            answer = self.counted_answer(dispatcher, "rpc")
        _rpc_serve(sock, answer, float(self.settings["server_timeout"]),
                   self.settings["max_length"], self.log)


cdef int _rpc_serve(TCP c, object answer, double timeout, Py_ssize_t max_length,
                    object log) except -1:
    """Serve the one request of a splay.rpc connection, then close it.

    ``answer(request)`` returns the reply object (the result list, ``True`` for a ping, or
    ``{"error": message}``); it must not raise. A request that does not arrive within ``timeout``
    seconds, is too long or is not benc is logged and the connection closed without a reply.
    """
    cdef int status = READ_OK
    try:
        request = read_block_value(c, max_length, deadline_after(timeout), &status)
        if status != READ_OK:
            log.debug(f"rpc server: dropped a connection: {request}")
            return 0
        c.settimeout_c(timeout)
        if not c.send_data(_encode_reply(answer(request), _rpc_error)):
            log.debug(f"rpc server: could not send a reply: {c.error}")
    finally:
        c.close_c()
    return 0


cdef class RpcqServerConnection:
    """One accepted splay.rpcq connection: a reader thread that runs each call itself.

    A call runs inside the reader thread (in a contextvars copy of its own, as a thread of its
    own would), which spares a thread start and two switches per call. If the call suspends (it
    blocks or yields), the hub tells us first (``Hub.suspend_watch``): a new reader thread takes
    over the connection and the suspended one ends with its call. Replies to the requests of one
    read leave in one write, just before the reader waits for more.
    """
    cdef TCP sock
    cdef object answer
    cdef object log
    cdef int busy                 # calls running
    cdef int cap                  # the reader stops reading while this many run
    cdef Task reader
    cdef unsigned long reader_token
    cdef bint reader_parked
    cdef list out                 # reply blocks waiting for the reader's next wait (one write)
    cdef Task owner               # the thread running the read loop now
    cdef object owner_context     # that thread's contextvars (each call runs in a copy)
    cdef object moved             # self._moved, made once
    cdef Py_ssize_t max_length
    cdef bint ended               # the read loop has ended and closed the connection
    cdef Task server_thread       # the thread in serve(), waiting for that end (after a move)
    cdef unsigned long server_token

    def __cinit__(self, TCP sock, answer, int cap, log):
        self.sock = sock
        self.answer = answer
        self.cap = cap if cap > 0 else 1
        self.log = log
        self.out = []

    def serve(self, Py_ssize_t max_length):
        """Read requests until the connection ends; a call that suspends hands the reading over
        to a new thread (see the class docstring). Returns once the connection has ended, whichever
        thread read last (the server closes the connection when this returns)."""
        cdef Hub hub = get_hub()
        cdef Task t
        self.max_length = max_length
        self.moved = self._moved
        self._read_loop()
        while not self.ended:            # this thread's call suspended; another one reads now
            t = hub.begin_block()
            self.server_thread = t
            self.server_token = t.token
            hub.block(t, -1.0)

    def _take_over(self):
        """Body of a new reader thread, started when the previous reader's call suspended."""
        self._read_loop()

    def _moved(self):
        # Called by the hub as the owner's call suspends: a new thread reads from now on.
        self.owner = take_over_thread(self._take_over, self.owner_context)

    cdef _read_loop(self):
        cdef int status = READ_OK
        cdef Hub hub = get_hub()
        cdef Task t
        cdef Task me = hub.current
        self.owner = me
        self.owner_context = PyContext_CopyCurrent()
        try:
            while True:
                while self.busy >= self.cap:
                    t = hub.begin_block()
                    self.reader = t
                    self.reader_token = t.token
                    self.reader_parked = True
                    try:
                        hub.block(t, -1.0)
                    finally:
                        self.reader_parked = False
                request = read_block_value(self.sock, self.max_length, 0, &status)
                if status == READ_UNDECODABLE:
                    self.log.debug(f"rpcq server: skipped a block: {request}")
                    continue
                if status != READ_OK:
                    if status != READ_CLOSED:
                        self.log.debug(f"rpcq server: closing a connection: {request}")
                    return
                if type(request) is not dict or "n" not in request:
                    self.log.debug(f"rpcq server: skipped a request without a message number: "
                                   f"{request!r:.200}")
                    continue
                if request.get("type") == "ping":
                    self._reply({"reply": True, "n": request["n"]}, request["n"])
                elif not self._run_here(hub, me, request):
                    return                   # the call suspended: another thread reads now
                if self.out and not block_buffered(self.sock):
                    self._write_out()        # about to wait for more requests
        finally:
            if self.owner is me:
                self.ended = True
                self.sock.close_c()
                if self.server_thread is not None:
                    hub.wake(self.server_thread, self.server_token, None)

    cdef bint _run_here(self, Hub hub, Task me, dict request) except -1:
        """Answer ``request`` in this thread: True when it is still the reader afterwards."""
        cdef object ctx
        n = request["n"]
        self.busy += 1
        ctx = begin_in_place(hub, me, self.owner_context, self.moved)
        try:
            reply = self.answer(request)
        except TaskKilled:
            if not killed_itself(hub, me) or self.owner is not me or self.ended:
                raise
            # The call killed its own thread, without suspending: that ends the call, unanswered
            # (as its own thread's end would), not the connection. A new thread reads from here
            # on; this one, like a suspended call's, ends its part now (serve() then waits for the
            # connection's end: the connection must not close with the thread that served it).
            self._write_out()
            self.owner = take_over_thread(self._take_over, self.owner_context)
            return False
        finally:
            end_in_place(hub, me, ctx)
            self.busy -= 1
            if self.reader_parked and self.busy < self.cap:
                hub.wake(self.reader, self.reader_token, None)
        self._reply(reply, n)
        if self.owner is not me:
            self._write_out()            # this thread ends: nothing of its must stay queued
            return False
        return True

    cdef _reply(self, object reply, object n):
        cdef bytes block
        try:
            block = encode_framed_c(reply)
        except (TypeError, ValueError) as exc:
            block = encode_framed_c({"n": n, "error": f"cannot encode the result: {exc}"})
        self.out.append(block)

    cdef _write_out(self):
        if not self.out:
            return
        data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
        self.out.clear()
        self.sock.settimeout_c(-1.0)
        if not self.sock.send_data(data):
            self.log.debug(f"rpcq server: could not send a reply: {self.sock.error}")


def rpcq_serve_connection(TCP c, object answer, Py_ssize_t max_length, int cap, object log):
    """Serve a splay.rpcq connection until the peer closes it (or the server stops).

    ``answer(request)`` returns the whole reply dict (``{"reply": ..., "n": n}`` or
    ``{"n": n, "error": message}``) and must not raise. At most ``cap`` calls of this connection
    run at once; the reader waits for one to end before reading more.
    """
    RpcqServerConnection(c, answer, cap, log).serve(max_length)

# llenc: blocks on a byte stream, "<decimal length>\n<payload>" (a CR before the LF is tolerated).
#
# BlockParser is the incremental parser the RPC layer feeds with whatever the socket delivered;
# frame_c/frame build blocks for sending. Hostile input (a non-numeric or overlong length line, a
# block above the receiver's maximum) raises DecodeError; the parser never allocates memory for
# payload bytes that have not arrived.
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.string cimport memcpy, memchr

from splayc.errors import DecodeError

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t newsize) except -1
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef enum:
    MAX_LENGTH_DIGITS = 20          # more digits than any real block could need
    FIRST_CHUNK = 65536             # initial capacity of a payload that arrives in pieces


cdef Py_ssize_t parse_length_line(const char* line, Py_ssize_t n) except -2:
    """The block length of a header line (without its LF); -1 when it is not a decimal number."""
    cdef Py_ssize_t value = 0, i
    if n > 0 and line[n - 1] == b'\r':
        n -= 1
    if n == 0 or n > MAX_LENGTH_DIGITS - 2:
        return -1
    for i in range(n):
        if line[i] < b'0' or line[i] > b'9':
            return -1
        value = value * 10 + (line[i] - 48)
    return value


def parse_length(line):
    """Parse a block's length line (bytes or str, LF already removed, CR tolerated).

    Returns the length, or raises :class:`splay.DecodeError` when the line is not a decimal number.
    """
    cdef Py_buffer view
    cdef Py_ssize_t n
    if isinstance(line, str):
        line = (<str>line).encode("utf-8", "replace")
    PyObject_GetBuffer(line, &view, PyBUF_SIMPLE)
    try:
        n = parse_length_line(<const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    if n < 0:
        raise DecodeError(f"block length line is not a decimal number: {bytes(line[:40])!r}", 0)
    return n


cdef bytes frame_c(object block):
    cdef Py_buffer view
    cdef char head[24]
    cdef int k = 23
    cdef Py_ssize_t n
    cdef unsigned long long u
    cdef const char* p
    cdef bytes out
    cdef char* dst
    if isinstance(block, str):
        p = PyUnicode_AsUTF8AndSize(block, &n)
        view.buf = NULL
    else:
        try:
            PyObject_GetBuffer(block, &view, PyBUF_SIMPLE)
        except TypeError:
            raise TypeError(f"an llenc block is bytes or str, got {type(block).__name__}") from None
        p = <const char*>view.buf
        n = view.len
    try:
        head[k] = b'\n'
        u = <unsigned long long>n
        while True:
            k -= 1
            head[k] = <char>(48 + u % 10)
            u //= 10
            if u == 0:
                break
        out = PyBytes_FromStringAndSize(NULL, (24 - k) + n)
        dst = PyBytes_AS_STRING(out)
        memcpy(dst, head + k, 24 - k)
        memcpy(dst + 24 - k, p, n)
        return out
    finally:
        if view.buf != NULL:
            PyBuffer_Release(&view)


def frame(block):
    """One llenc block: ``b"<length>\\n" + block`` (a str block is sent as UTF-8)."""
    return frame_c(block)


def frame_many(blocks):
    """Several blocks concatenated, ready for a single send."""
    return b"".join([frame_c(b) for b in blocks])


cdef class BlockParser:
    """Incremental llenc parser: ``feed(data)`` returns the blocks (bytes) completed by ``data``.

    ``max_length`` (``None``: no limit) refuses longer blocks. After an error the parser stays
    failed (``failure`` holds the error) and every later ``feed`` raises it again: the stream has
    lost its framing and the connection should be closed.
    """

    def __cinit__(self, max_length=None):
        self.header_len = 0
        self.pending = NULL
        self.need = -1
        self.max_length = -1 if max_length is None else max_length
        if self.max_length < -1:
            raise ValueError(f"max_length must be None or >= 0, got {max_length}")
        self.consumed = 0
        self.failure = None

    def __dealloc__(self):
        self.drop_pending()

    cdef void drop_pending(self) noexcept:
        Py_XDECREF(self.pending)
        self.pending = NULL

    @property
    def needed(self):
        """Bytes still missing to complete the block in progress (0 between blocks)."""
        if self.need < 0:
            return 0
        return self.need - self.filled

    @property
    def idle(self):
        """True between blocks: no partial header or payload is buffered."""
        return self.need < 0 and self.header_len == 0

    cdef int _fail(self, str message, Py_ssize_t offset) except -1:
        self.failure = DecodeError(message, offset)
        self.drop_pending()
        raise self.failure

    cdef int feed_c(self, const char* p, Py_ssize_t n, list out) except -1:
        cdef const char* nl
        cdef Py_ssize_t take, length, cap
        if self.failure is not None:
            raise self.failure
        while n > 0:
            if self.need < 0:
                nl = <const char*>memchr(p, b'\n', n)
                take = (nl - p + 1) if nl != NULL else n
                if self.header_len + take > MAX_LENGTH_DIGITS:
                    self._fail("block length line too long: expected at most "
                               f"{MAX_LENGTH_DIGITS - 2} digits and a newline",
                               self.consumed - self.header_len)
                memcpy(self.header + self.header_len, p, take)
                self.header_len += take
                self.consumed += take
                p += take
                n -= take
                if nl == NULL:
                    break
                length = parse_length_line(self.header, self.header_len - 1)
                if length < 0:
                    self._fail("block length line is not a decimal number: "
                               f"{PyBytes_FromStringAndSize(self.header, self.header_len)!r}",
                               self.consumed - self.header_len)
                if self.max_length >= 0 and length > self.max_length:
                    self._fail(f"block of {length} bytes exceeds the maximum of "
                               f"{self.max_length}", self.consumed - self.header_len)
                self.header_len = 0
                if n >= length:          # whole payload present: one copy, straight out
                    out.append(PyBytes_FromStringAndSize(p, length))
                    self.consumed += length
                    p += length
                    n -= length
                    continue
                # Part of the payload: capacity grows with the bytes that actually arrive.
                cap = n if n > FIRST_CHUNK else FIRST_CHUNK
                if cap > length:
                    cap = length
                fresh = PyBytes_FromStringAndSize(NULL, cap)
                Py_INCREF(fresh)                   # the parser owns this reference
                self.pending = <PyObject*>fresh
                fresh = None
                self.pending_cap = cap
                self.filled = 0
                self.need = length
            else:
                take = self.need - self.filled
                if take > n:
                    take = n
                if self.filled + take > self.pending_cap:
                    cap = self.pending_cap * 2
                    if cap < self.filled + take:
                        cap = self.filled + take
                    if cap > self.need:
                        cap = self.need
                    _PyBytes_Resize(&self.pending, cap)   # frees and NULLs it on failure
                    self.pending_cap = cap
                memcpy(PyBytes_AS_STRING(<object>self.pending) + self.filled, p, take)
                self.filled += take
                self.consumed += take
                p += take
                n -= take
                if self.filled == self.need:
                    out.append(<object>self.pending)
                    self.drop_pending()
                    self.need = -1
        return 0

    def feed(self, data):
        """Take the next bytes of the stream; return the list of blocks they complete."""
        cdef Py_buffer view
        cdef list out = []
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self.feed_c(<const char*>view.buf, view.len, out)
        finally:
            PyBuffer_Release(&view)
        return out

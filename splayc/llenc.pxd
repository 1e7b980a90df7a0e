from cpython.ref cimport PyObject

# llenc framing core, for core modules (the RPC layer) that cimport it:
#
#     from splayc.llenc cimport BlockParser, frame_c
#     cdef BlockParser parser = BlockParser(max_length)
#     cdef list blocks = []
#     parser.feed_c(ptr, n, blocks)     # appends every block completed by these bytes
#
# Each payload is copied exactly once: from the bytes handed to feed_c into the bytes object that
# is appended to `blocks` (a block that arrives whole in one chunk is sliced straight out of it).

cdef class BlockParser:
    cdef char header[24]             # the length line being collected (digits, optional CR, LF)
    cdef Py_ssize_t header_len
    cdef PyObject* pending           # bytes object receiving the current payload (owned), or NULL
    cdef Py_ssize_t pending_cap
    cdef Py_ssize_t filled
    cdef Py_ssize_t need             # payload length of the current block; -1 while in a header
    cdef readonly Py_ssize_t max_length     # -1: no limit
    cdef readonly Py_ssize_t consumed       # bytes of the stream accepted so far
    cdef readonly object failure            # the DecodeError that stopped the parser, or None

    cdef void drop_pending(self) noexcept
    cdef int _fail(self, str message, Py_ssize_t offset) except -1
    cdef int feed_c(self, const char* data, Py_ssize_t n, list out) except -1

cdef bytes frame_c(object block)
cdef Py_ssize_t parse_length_line(const char* line, Py_ssize_t n) except -2

# SPLAY's extended bencoding (WIRE.md), compiled.
#
# Encoding writes into a stack buffer that moves into the result bytes object when it outgrows it
# (no Python-level concatenation, one copy), dispatches on exact types first, formats integers in
# C and sorts dict keys in C; decoding scans the input buffer with a pointer, checks UTF-8 itself,
# shares repeated short dict keys and makes small dicts of keys seen before by copying a template. The path of an unencodable value ("at [2]['peers']") is
# worked out only after a failure, by a second, slow walk (locate_failure), so the fast path
# carries no bookkeeping.
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.dict cimport PyDict_Copy, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_Append, PyList_New, PyList_SET_ITEM
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.long cimport PyLong_FromLongLong, PyLong_FromUnsignedLongLong
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.object cimport PyObject_RichCompareBool, Py_LT
from libc.string cimport memcpy, memcmp, memmove
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

from splayc.errors import DecodeError
import sys

cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    PyObject* PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyLong_FromString(const char* s, char** pend, int base)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0
    Py_ssize_t PyDict_GET_SIZE(object d)
    void PyErr_Clear()
    PyObject* PyErr_Occurred()
    unsigned long long PyLong_AsUnsignedLongLong(object o)
    int _PyBytes_Resize(PyObject** b, Py_ssize_t n)
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

MAX_DEPTH = BENC_MAX_DEPTH

# ----------------------------------------------------------------------------------------------
# Output buffer: small results are built in a C array inside `Out` (on the caller's stack) and
# copied once into their bytes object. A larger result moves into a bytes object that is filled in
# place, grown geometrically (realloc) and shrunk to its length at the end, so its bytes are never
# copied out of a scratch buffer (a 64 KiB value costs one memcpy). Each encode owns its buffer, so a
# nested encode (from a user's to_dict hook) needs no special case. Writers reserve room once
# (out_reserve) and then store bytes directly, without a capacity check per byte.

#
# Results beyond SCRATCH_FROM move once more, into a module-level scratch buffer kept between calls
# (up to SCRATCH_KEEP), and are copied out at the end: a fresh multi-megabyte block on every call
# makes glibc trim the heap and fault the pages in again each time (measured: a 1 MB document
# took 850 µs instead of 375 µs).

cdef enum:
    OUT_STACK = 512
    SCRATCH_FROM = 256 * 1024
    SCRATCH_KEEP = 4 * 1024 * 1024
    HINT_MAX = 64 * 1024

# The size of the last result that outgrew the stack buffer (at most HINT_MAX, below glibc's mmap
# threshold): the next one that outgrows it starts at that size instead of doubling up to it from
# 512 bytes, each doubling a realloc that copies (measured: 4 reallocs, ~4 % of encoding a 200-node
# list). The extra room is given back by the final resize, which shrinks in place.
cdef Py_ssize_t out_hint = 0

cdef char* scratch = NULL
cdef Py_ssize_t scratch_cap = 0
cdef bint scratch_busy = False

cdef struct Out:
    PyObject* buf        # NULL while the data fits in `stack`, else a bytes object of size cap
    bint in_scratch      # the data is in the module's scratch buffer (buf is NULL)
    char* data
    Py_ssize_t len
    Py_ssize_t cap
    char stack[OUT_STACK]

cdef inline int out_init(Out* o, Py_ssize_t headroom) noexcept:
    o.buf = NULL
    o.in_scratch = False
    o.data = o.stack
    o.cap = OUT_STACK
    o.len = headroom
    return 0

cdef int out_to_scratch(Out* o, Py_ssize_t cap) except -1:
    # Moves (or grows) the data into the scratch buffer; a separate block rather than realloc,
    # which would extend the heap top that a later trim gives back.
    global scratch, scratch_cap, scratch_busy
    cdef char* p
    if scratch_cap < cap:
        p = <char*>PyMem_Malloc(cap)
        if p == NULL:
            raise MemoryError()
        memcpy(p, o.data, o.len)
        PyMem_Free(scratch)
        scratch = p
        scratch_cap = cap
    elif not o.in_scratch:
        memcpy(scratch, o.data, o.len)
    scratch_busy = True
    o.in_scratch = True
    Py_XDECREF(o.buf)
    o.buf = NULL
    o.data = scratch
    o.cap = scratch_cap
    return 0

cdef int out_grow(Out* o, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = o.cap * 2
    cdef bytes b
    if o.buf == NULL and not o.in_scratch and cap < out_hint:
        cap = out_hint
    if cap < o.len + extra:
        # one large write (a big byte string): room for it and a sixteenth more, not the next
        # power of two (64 KiB would take 128 KiB, an allocation at glibc's mmap threshold)
        cap = o.len + extra + ((o.len + extra) >> 4) + 64
    if o.in_scratch or (cap > SCRATCH_FROM and not scratch_busy):
        return out_to_scratch(o, cap)
    if o.buf == NULL:
        b = PyBytes_FromStringAndSize(NULL, cap)
        memcpy(PyBytes_AS_STRING(b), o.stack, o.len)
        Py_INCREF(b)
        o.buf = <PyObject*>b
    elif _PyBytes_Resize(&o.buf, cap) < 0:     # frees the buffer and sets it to NULL on failure
        o.data = NULL
        raise MemoryError()
    o.data = PyBytes_AS_STRING(<object>o.buf)
    o.cap = cap
    return 0

cdef inline char* out_reserve(Out* o, Py_ssize_t n) except NULL:
    # Room for n more bytes at o.data + o.len (the caller stores them and advances o.len).
    if o.len + n > o.cap:
        out_grow(o, n)
    return o.data + o.len

cdef void out_release_scratch(Out* o) noexcept:
    global scratch, scratch_cap, scratch_busy
    if o.in_scratch:
        if scratch_cap > SCRATCH_KEEP:
            PyMem_Free(scratch)
            scratch = NULL
            scratch_cap = 0
        scratch_busy = False
        o.in_scratch = False

cdef extern from *:
    """
    static inline void benc_bytes_shrink(PyObject* b, Py_ssize_t n) {
        Py_SET_SIZE(b, n);
        PyBytes_AS_STRING(b)[n] = 0;
    }
    """
    void benc_bytes_shrink(PyObject* b, Py_ssize_t n) noexcept

cdef bytes out_finish(Out* o):
    global out_hint
    cdef bytes result
    if o.in_scratch:
        try:
            return bytes_of(o.data, o.len)
        finally:
            out_release_scratch(o)
    if o.buf == NULL:
        return PyBytes_FromStringAndSize(o.stack, o.len)
    out_hint = o.len + (o.len >> 3) if o.len <= HINT_MAX else 0
    if o.cap - o.len <= (o.len >> 3):
        # Little room left over: the bytes object keeps it (at most an eighth of its size) rather
        # than a realloc that splits and frees the rest (measured: ~200 instructions, 3 % of a 64
        # KiB result). The object is new and never hashed, so its size and end are all there is.
        benc_bytes_shrink(o.buf, o.len)
    elif _PyBytes_Resize(&o.buf, o.len) < 0:
        raise MemoryError()
    result = <bytes>o.buf
    Py_DECREF(result)           # the reference held since out_grow passes to `result`
    o.buf = NULL
    return result

cdef void out_discard(Out* o) noexcept:
    out_release_scratch(o)
    Py_XDECREF(o.buf)
    o.buf = NULL
    o.data = NULL

cdef inline int out_put(Out* o, const char* s, Py_ssize_t n) except -1:
    memcpy(out_reserve(o, n), s, n)
    o.len += n
    return 0

cdef inline int out_char(Out* o, char c) except -1:
    out_reserve(o, 1)[0] = c
    o.len += 1
    return 0

# ----------------------------------------------------------------------------------------------
# Encoding

# Decimal formatting in C: eight digits at a time in the lanes of one 64-bit word (a multiply and a
# shift for each split, instead of a division and a table lookup per pair of digits: the pairs were
# a fifth of encoding a node list). Numbers of up to 8 digits are one such word, 9 to 10 digits a
# head of one or two digits and a word; larger ones a head and 8-digit groups. The words are stored
# whole, so a number's formatting may write up to 20 bytes at dst however short it is (every caller
# reserves room for the longest number); the bytes after its digits are overwritten by what follows.
# Little-endian only, as the decoder's eight-digit reads (the first digit is the lowest byte).
cdef extern from *:
    """
    static const char benc_pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    static const uint32_t benc_pow10_32[10] = {1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u,
                                               10000000u, 100000000u, 1000000000u};

    static inline int benc_len32(uint32_t v) {
        int t = ((32 - __builtin_clz(v | 1)) * 1233) >> 12;   /* about log10: the digits or one less */
        return t + 1 - (v < benc_pow10_32[t]);
    }

    /* The 8 digits of x < 10**8 (leading zeros included) as ASCII, the first digit in the lowest
       byte: x splits into two 4-digit halves (32-bit lanes), each into two 2-digit parts (16-bit
       lanes), each into two digits (bytes). A lane's division by 100 is (v * 10486) >> 20 and by 10
       (v * 103) >> 10, exact for the values a lane holds (below 10,000 and 100), whose products
       stay inside the lane. */
    static inline uint64_t benc_ascii8(uint32_t x) {
        uint64_t v = (uint64_t)(x / 10000) | ((uint64_t)(x % 10000) << 32);
        uint64_t q = ((v * 10486) >> 20) & 0x0000007F0000007Full;
        v = q | ((v - q * 100) << 16);
        q = ((v * 103) >> 10) & 0x000F000F000F000Full;
        v = q | ((v - q * 10) << 8);
        return v | 0x3030303030303030ull;
    }

    /* u < 10**8 at dst; returns the number of digits. */
    static inline Py_ssize_t benc_write_below_1e8(char* dst, uint32_t u) {
        int n = benc_len32(u);
        uint64_t a = benc_ascii8(u) >> (8 * (8 - n));        /* drop the leading zeros */
        memcpy(dst, &a, 8);
        return n;
    }

    /* 1 <= h < 10**4 at dst (the head of a number of 17 to 20 digits); returns its digits. */
    static inline Py_ssize_t benc_write_below_1e4(char* dst, uint32_t h) {
        if (h < 10) { dst[0] = (char)('0' + h); return 1; }
        if (h < 100) { memcpy(dst, benc_pairs + h * 2, 2); return 2; }
        if (h < 1000) {
            dst[0] = (char)('0' + h / 100);
            memcpy(dst + 1, benc_pairs + (h % 100) * 2, 2);
            return 3;
        }
        memcpy(dst, benc_pairs + (h / 100) * 2, 2);
        memcpy(dst + 2, benc_pairs + (h % 100) * 2, 2);
        return 4;
    }

    /* u >= 100 at dst; returns the number of digits. Straight-line code for each size class (no
       loop over a group array): 9 to 16 digits are a head below 10**8 and one eight-digit group,
       17 to 20 digits a head below 10**4 (2**64 - 1 has 20 digits) and two groups. */
    static Py_ssize_t benc_write_u64_from_100(char* dst, unsigned long long u) {
        Py_ssize_t n;
        uint64_t a, b;
        if (u < 100000000ull) return benc_write_below_1e8(dst, (uint32_t)u);
        if (u < 10000000000000000ull) {
            uint32_t head = (uint32_t)(u / 100000000u);
            if (head < 10) { dst[0] = (char)('0' + head); n = 1; }
            else if (head < 100) { memcpy(dst, benc_pairs + head * 2, 2); n = 2; }
            else n = benc_write_below_1e8(dst, head);
            a = benc_ascii8((uint32_t)(u - (uint64_t)head * 100000000u));
            memcpy(dst + n, &a, 8);
            return n + 8;
        }
        {
            uint32_t top = (uint32_t)(u / 10000000000000000ull);
            uint64_t rest = u - (uint64_t)top * 10000000000000000ull;
            uint32_t mid = (uint32_t)(rest / 100000000u);
            n = benc_write_below_1e4(dst, top);
            a = benc_ascii8(mid);
            b = benc_ascii8((uint32_t)(rest - (uint64_t)mid * 100000000u));
            memcpy(dst + n, &a, 8);
            memcpy(dst + n + 8, &b, 8);
            return n + 16;
        }
    }

    /* Writes u in decimal at dst (room for 20 bytes); returns the number of digits. The one- and
       two-digit numbers (string lengths, keys, counters) are inlined in every caller. */
    static inline __attribute__((always_inline)) Py_ssize_t benc_write_u64(char* dst,
                                                                           unsigned long long u) {
        if (u < 10) { dst[0] = (char)('0' + u); return 1; }
        if (u < 100) { memcpy(dst, benc_pairs + u * 2, 2); return 2; }
        return benc_write_u64_from_100(dst, u);
    }
    """
    Py_ssize_t benc_write_u64(char* dst, unsigned long long u) noexcept

cdef inline Py_ssize_t write_u64(char* dst, unsigned long long u) noexcept:
    # Writes u in decimal at dst (room for 20 bytes: see above); returns the number of digits.
    return benc_write_u64(dst, u)

cdef inline char* write_digits(char* end, unsigned long long u) noexcept:
    # Writes u in decimal so that its last digit is just before `end`; returns its first digit.
    while True:
        end -= 1
        end[0] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            return end

# Copies of 4 KiB and more (a bytes value's payload) may go through a vector loop instead of
# memcpy: see csrc/large_copy.h (glibc's rep movsb on AMD Zen 3/4 when source and destination are
# differently aligned; a backward loop when the destination is a little past the source modulo
# 4 KiB, where a forward copy meets 4 KiB aliasing). LARGE_COPY_LOOP says whether this machine
# uses them.
cdef extern from "large_copy.h":
    int splay_large_copy_init() noexcept
    int splay_loop_copy_supported() noexcept
    void splay_loop_copy(char* dst, const char* src, size_t n) noexcept
    void splay_loop_copy_backward(char* dst, const char* src, size_t n) noexcept
    void splay_large_copy(char* dst, const char* src, size_t n) noexcept
    int splay_large_copy_path(const char* dst, const char* src, size_t n) noexcept
    enum: SPLAY_LOOP_COPY_MIN
    enum: SPLAY_LOOP_COPY_MAX
    enum: SPLAY_ALIAS_WINDOW

LARGE_COPY_LOOP = bool(splay_large_copy_init())

# A new bytes object holding p[:n] (a decoded byte string, a result copied out of the scratch
# buffer), a large one copied by splay_large_copy.
cdef extern from *:
    """
    static inline PyObject* benc_bytes_of(const char* p, Py_ssize_t n) {
        PyObject* b;
        if (n < SPLAY_LOOP_COPY_MIN) return PyBytes_FromStringAndSize(p, n);
        b = PyBytes_FromStringAndSize(NULL, n);
        if (b != NULL) splay_large_copy(PyBytes_AS_STRING(b), p, (size_t)n);
        return b;
    }
    """
    object bytes_of "benc_bytes_of" (const char* p, Py_ssize_t n)

# Copies of at most 16 bytes (keys, addresses, short names: most strings on the wire) as two
# overlapping loads and stores, without a call into libc's memcpy.
cdef extern from *:
    """
    static inline void benc_copy(char* dst, const char* src, Py_ssize_t n) {
        if (n > 16) {
            splay_large_copy(dst, src, (size_t)n);
        } else if (n >= 8) {
            uint64_t a, b;
            memcpy(&a, src, 8); memcpy(&b, src + n - 8, 8);
            memcpy(dst, &a, 8); memcpy(dst + n - 8, &b, 8);
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, src, 4); memcpy(&b, src + n - 4, 4);
            memcpy(dst, &a, 4); memcpy(dst + n - 4, &b, 4);
        } else if (n > 0) {
            dst[0] = src[0]; dst[n >> 1] = src[n >> 1]; dst[n - 1] = src[n - 1];
        }
    }
    """
    void benc_copy(char* dst, const char* src, Py_ssize_t n) noexcept

cdef inline int put_bytes(Out* o, const char* s, Py_ssize_t n) except -1:
    # <length>:<bytes>, with one capacity check
    cdef char* p = out_reserve(o, n + 21)
    cdef Py_ssize_t k = write_u64(p, <unsigned long long>n)
    p[k] = b':'
    benc_copy(p + k + 1, s, n)
    o.len += k + 1 + n
    return 0

cdef inline int put_small_int(Out* o, long long x) except -1:
    cdef char* p = out_reserve(o, 22)        # i - 19 digits e
    cdef Py_ssize_t k = 1
    cdef unsigned long long u
    p[0] = b'i'
    if x < 0:
        p[1] = b'-'
        k = 2
        u = <unsigned long long>(-(x + 1)) + 1
    else:
        u = <unsigned long long>x
    k += write_u64(p + k, u)
    p[k] = b'e'
    o.len += k + 1
    return 0

# An int of at most two internal digits (|x| < 2**60 on 64-bit builds: ports, ids, counters) is read
# straight from the int's digits, without the general conversion call (measured: a third of the
# instructions of encoding a node table were spent there). CPython 3.12 changed the layout and
# offers the same through _PyLong_IsCompact / _PyLong_CompactValue.
cdef extern from *:
    """
    static inline int benc_small_long(PyObject* v, long long* out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (_PyLong_IsCompact((PyLongObject*)v)) {
            *out = (long long)_PyLong_CompactValue((PyLongObject*)v);
            return 1;
        }
        return 0;
    #else
        const digit* d = ((PyLongObject*)v)->ob_digit;
        switch (Py_SIZE(v)) {
        case 0: *out = 0; return 1;
        case 1: *out = (long long)d[0]; return 1;
        case -1: *out = -(long long)d[0]; return 1;
        case 2: *out = (long long)(((unsigned long long)d[1] << PyLong_SHIFT) | d[0]); return 1;
        case -2: *out = -(long long)(((unsigned long long)d[1] << PyLong_SHIFT) | d[0]); return 1;
        }
        return 0;
    #endif
    }
    """
    bint benc_small_long(object v, long long* out) noexcept

# The two leaf values of node tables and messages, tested on a borrowed pointer (no reference
# counting): an exact str in compact ASCII form (its own UTF-8) and an exact int of the small form.
cdef extern from *:
    """
    static inline Py_ssize_t benc_ascii_len(PyObject* v) {
        return (Py_TYPE(v) == &PyUnicode_Type && PyUnicode_IS_COMPACT_ASCII(v))
               ? PyUnicode_GET_LENGTH(v) : -1;
    }
    static inline int benc_exact_small_int(PyObject* v, long long* x) {
        return Py_TYPE(v) == &PyLong_Type && benc_small_long(v, x);
    }
    /* i<x>e at p (at most 22 bytes); returns its length. */
    static inline Py_ssize_t benc_small_int_text(char* p, long long x) {
        Py_ssize_t k = 1;
        unsigned long long u = (unsigned long long)x;
        p[0] = 'i';
        if (x < 0) { p[1] = '-'; k = 2; u = (unsigned long long)(-(x + 1)) + 1; }
        k += benc_write_u64(p + k, u);
        p[k] = 'e';
        return k + 1;
    }
    """
    Py_ssize_t benc_ascii_len(PyObject* v) noexcept
    bint benc_exact_small_int(PyObject* v, long long* x) noexcept
    Py_ssize_t benc_small_int_text(char* p, long long x) noexcept

# An int below 2**64 in magnitude (ids, hashes, offsets) is read from its digits too, instead of
# two conversion calls (signed, which overflows, then unsigned).
cdef extern from *:
    """
    static inline int benc_u64_magnitude(PyObject* v, unsigned long long* mag, int* neg) {
        unsigned long long m = 0;
        Py_ssize_t nd, i;
        const digit* d;
    #if PY_VERSION_HEX >= 0x030C0000
        uintptr_t tag = ((PyLongObject*)v)->long_value.lv_tag;
        nd = (Py_ssize_t)(tag >> _PyLong_NON_SIZE_BITS);
        d = ((PyLongObject*)v)->long_value.ob_digit;
        *neg = (tag & 3) == 2;
    #else
        nd = Py_SIZE(v);
        d = ((PyLongObject*)v)->ob_digit;
        *neg = nd < 0;
        if (nd < 0) nd = -nd;
    #endif
        if (nd > 64 / PyLong_SHIFT + 1) return 0;
        for (i = nd - 1; i >= 0; i--) {
            if (m >> (64 - PyLong_SHIFT)) return 0;
            m = (m << PyLong_SHIFT) | d[i];
        }
        *mag = m;
        return 1;
    }
    """
    bint benc_u64_magnitude(object v, unsigned long long* mag, int* neg) noexcept

cdef inline int put_int(Out* o, object v) except -1:
    cdef int overflow = 0
    cdef long long x
    cdef unsigned long long mag
    cdef char* p
    cdef Py_ssize_t k
    if benc_small_long(v, &x):
        return put_small_int(o, x)
    if benc_u64_magnitude(v, &mag, &overflow):       # (overflow: here the sign)
        p = out_reserve(o, 23)
        p[0] = b'i'
        k = 1
        if overflow:
            p[1] = b'-'
            k = 2
        k += write_u64(p + k, mag)
        p[k] = b'e'
        o.len += k + 1
        return 0
    overflow = 0
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if not overflow:
        return put_small_int(o, x)
    return put_big_int(o, v, overflow)

cdef int put_big_int(Out* o, object v, int overflow) except -1:
    # An int beyond 64-bit signed range: up to 2**64-1 in C, larger ones through int.__repr__.
    cdef unsigned long long u
    cdef Py_ssize_t n, k
    cdef const char* s
    cdef char* p
    if overflow > 0:
        u = PyLong_AsUnsignedLongLong(v)
        if u != <unsigned long long>-1 or PyErr_Occurred() == NULL:
            p = out_reserve(o, 22)
            p[0] = b'i'
            k = 1 + write_u64(p + 1, u)
            p[k] = b'e'
            o.len += k + 1
            return 0
        PyErr_Clear()
    text = int.__repr__(v)      # exact for any size (up to the interpreter's digit limit)
    s = PyUnicode_AsUTF8AndSize(text, &n)
    out_char(o, b'i')
    out_put(o, s, n)
    return out_char(o, b'e')

cdef int put_float(Out* o, double x) except -1:
    # The shortest decimal that reads back to the same double (repr's digits), written without
    # exponent: 1e20 -> i100000000000000000000.0e, 1e-07 -> i0.0000001e.
    cdef char* r
    cdef char buf[400]
    cdef char digits[32]
    cdef int nd = 0, intdigits = -1, exp10 = 0, point, k = 0, i
    cdef bint neg = 0, seen_e = 0, exp_neg = 0
    cdef char* p
    if not isfinite(x):
        raise ValueError(f"cannot encode float {x!r}: NaN and infinities have no benc form")
    r = PyOS_double_to_string(x, b'r', 0, 0, NULL)
    try:
        p = r
        if p[0] == b'-':
            neg = 1
            p += 1
        while p[0] != 0:
            if p[0] == b'.':
                intdigits = nd
            elif p[0] == b'e' or p[0] == b'E':
                seen_e = 1
                p += 1
                break
            else:
                digits[nd] = p[0]
                nd += 1
            p += 1
        if seen_e:
            if p[0] == b'-':
                exp_neg = 1
                p += 1
            elif p[0] == b'+':
                p += 1
            while p[0] != 0:
                exp10 = exp10 * 10 + (p[0] - 48)
                p += 1
            if exp_neg:
                exp10 = -exp10
    finally:
        PyMem_Free(r)
    if intdigits < 0:
        intdigits = nd
    point = intdigits + exp10          # digits before the decimal point
    buf[k] = b'i'
    k += 1
    if neg:
        buf[k] = b'-'
        k += 1
    if point <= 0:
        buf[k] = b'0'
        buf[k + 1] = b'.'
        k += 2
        for i in range(-point):
            buf[k] = b'0'
            k += 1
        for i in range(nd):
            buf[k] = digits[i]
            k += 1
    elif point >= nd:
        for i in range(nd):
            buf[k] = digits[i]
            k += 1
        for i in range(point - nd):
            buf[k] = b'0'
            k += 1
        buf[k] = b'.'
        buf[k + 1] = b'0'
        k += 2
    else:
        for i in range(point):
            buf[k] = digits[i]
            k += 1
        buf[k] = b'.'
        k += 1
        for i in range(point, nd):
            buf[k] = digits[i]
            k += 1
    buf[k] = b'e'
    return out_put(o, buf, k + 1)

cdef inline const char* str_utf8(object s, Py_ssize_t* n) except NULL:
    # The UTF-8 bytes of a str: a compact ASCII str is its own UTF-8, read in place.
    if PyUnicode_IS_COMPACT_ASCII(s):
        n[0] = PyUnicode_GET_LENGTH(s)
        return <const char*>PyUnicode_DATA(s)
    return PyUnicode_AsUTF8AndSize(s, n)

cdef inline int put_str(Out* o, object s) except -1:
    cdef Py_ssize_t n
    cdef const char* p = str_utf8(s, &n)
    return put_bytes(o, p, n)

# Dict entries are sorted in C. Kinds order the key types: byte strings (str and bytes, by raw
# bytes) first, then numbers by value, then False < True, then None.
cdef enum:
    KIND_STRING = 0
    KIND_NUMBER = 1
    KIND_BOOL = 2
    KIND_NONE = 3

cdef struct Entry:
    PyObject* key
    PyObject* value
    const char* kb
    Py_ssize_t kl
    int kind

cdef inline int raw_cmp(const char* a, Py_ssize_t al, const char* b, Py_ssize_t bl) noexcept:
    # Byte-wise order of two byte strings (a prefix first). Dict keys are short and usually differ
    # in their first bytes, so a plain loop beats a call to memcmp.
    cdef Py_ssize_t n = al if al < bl else bl, i
    if n > 16:
        i = memcmp(a, b, n)
        if i != 0:
            return i
    else:
        for i in range(n):
            if a[i] != b[i]:
                return <int>(<unsigned char>a[i]) - <int>(<unsigned char>b[i])
    return (al > bl) - (al < bl)

cdef inline int entry_cmp(const Entry* a, const Entry* b) noexcept:
    if a.kind == KIND_STRING and b.kind == KIND_STRING:
        return raw_cmp(a.kb, a.kl, b.kb, b.kl)
    return entry_cmp_mixed(a, b)

cdef int entry_cmp_mixed(const Entry* a, const Entry* b) noexcept:
    cdef int c
    if a.kind != b.kind:
        return a.kind - b.kind
    if a.kind == KIND_NUMBER:
        # int/float comparisons cannot fail (NaN keys are refused later, when encoded)
        c = PyObject_RichCompareBool(<object>a.key, <object>b.key, Py_LT)
        if c < 0:
            PyErr_Clear()
            return 0
        if c:
            return -1
        c = PyObject_RichCompareBool(<object>b.key, <object>a.key, Py_LT)
        if c < 0:
            PyErr_Clear()
            return 0
        return c
    if a.kind == KIND_BOOL:
        return (a.key == <PyObject*>True) - (b.key == <PyObject*>True)
    return 0

cdef int sort_entries(Entry* e, Py_ssize_t n) except -1:
    cdef Py_ssize_t i, j, width, lo, mid, hi, a, b, k
    cdef Entry tmp
    cdef Entry* scratch
    cdef Entry* src
    cdef Entry* dst
    if n <= 16:
        for i in range(1, n):           # insertion sort: small dicts are the common case
            tmp = e[i]
            j = i - 1
            while j >= 0 and entry_cmp(&e[j], &tmp) > 0:
                e[j + 1] = e[j]
                j -= 1
            e[j + 1] = tmp
        return 0
    # Bottom-up merge sort (the comparison may call into Python for numbers, so no libc qsort).
    scratch = <Entry*>PyMem_Malloc(n * sizeof(Entry))
    if scratch == NULL:
        raise MemoryError()
    src, dst = e, scratch
    width = 1
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b, k = lo, mid, lo
            while a < mid and b < hi:
                if entry_cmp(&src[b], &src[a]) < 0:
                    dst[k] = src[b]
                    b += 1
                else:
                    dst[k] = src[a]
                    a += 1
                k += 1
            while a < mid:
                dst[k] = src[a]
                a += 1
                k += 1
            while b < hi:
                dst[k] = src[b]
                b += 1
                k += 1
            lo = hi
        src, dst = dst, src
        width *= 2
    if src != e:
        memcpy(e, src, n * sizeof(Entry))
    PyMem_Free(scratch)
    return 0

cdef inline int classify_key(Entry* e) except -1:
    cdef object k = <object>e.key
    cdef type t = type(k)
    if t is str:
        e.kind = KIND_STRING
        e.kb = str_utf8(k, &e.kl)
    elif t is bytes:
        e.kind = KIND_STRING
        e.kb = PyBytes_AS_STRING(k)
        e.kl = PyBytes_GET_SIZE(k)
    elif k is True or k is False:
        e.kind = KIND_BOOL
    elif k is None:
        e.kind = KIND_NONE
    elif isinstance(k, (int, float)):
        e.kind = KIND_NUMBER
    elif isinstance(k, str):
        e.kind = KIND_STRING
        e.kb = PyUnicode_AsUTF8AndSize(k, &e.kl)
    elif isinstance(k, bytes):
        e.kind = KIND_STRING
        e.kb = PyBytes_AS_STRING(k)
        e.kl = PyBytes_GET_SIZE(k)
    else:
        raise TypeError(f"cannot use {type(k).__name__} as a dict key: benc keys are str, bytes, "
                        "int, float, bool or None")
    return 0

# Reading a dict's entries straight from its table (CPython 3.11 to 3.13 share one layout of the
# keys object) instead of one PyDict_Next call per entry (measured: ~50 instructions each, a tenth of
# encoding a node list). Other versions, split tables (an instance's __dict__) and a failed check
# at import (dict_layout_check below) use PyDict_Next.
cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
    #define BENC_DICT_LAYOUT 1
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;              /* 0: general entries, 1: str keys only, 2: split */
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } benc_dictkeys;
    #else
    #define BENC_DICT_LAYOUT 0
    #endif
    static int benc_dict_layout_ok = BENC_DICT_LAYOUT;

    /* The first `max` (key, value) pairs of dict d in iteration order, borrowed; returns how many. */
    static inline Py_ssize_t benc_dict_items(PyObject* d, PyObject** keys, PyObject** vals,
                                             Py_ssize_t max, int direct) {
        Py_ssize_t c = 0, pos = 0;
        PyObject *k, *v;
    #if BENC_DICT_LAYOUT
        PyDictObject* mp = (PyDictObject*)d;
        if (direct && benc_dict_layout_ok && mp->ma_values == NULL) {
            benc_dictkeys* dk = (benc_dictkeys*)mp->ma_keys;
            PyObject** e = (PyObject**)(dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes));
            Py_ssize_t i, n = dk->dk_nentries;
            if (dk->dk_kind == 1) {                   /* {me_key, me_value} */
                for (i = 0; i < n && c < max; i++, e += 2) {
                    if (e[1] != NULL) { keys[c] = e[0]; vals[c] = e[1]; c++; }
                }
                return c;
            }
            if (dk->dk_kind == 0) {                   /* {me_hash, me_key, me_value} */
                for (i = 0; i < n && c < max; i++, e += 3) {
                    if (e[2] != NULL) { keys[c] = e[1]; vals[c] = e[2]; c++; }
                }
                return c;
            }
        }
    #endif
        while (c < max && PyDict_Next(d, &pos, &k, &v)) {
            keys[c] = k; vals[c] = v; c++;
        }
        return c;
    }
    static inline int benc_is_exact_str(PyObject* o) { return Py_TYPE(o) == &PyUnicode_Type; }
    static inline int benc_is_exact_bytes(PyObject* o) { return Py_TYPE(o) == &PyBytes_Type; }
    static inline int benc_is_exact_int(PyObject* o) { return Py_TYPE(o) == &PyLong_Type; }
    """
    int benc_dict_layout_ok
    Py_ssize_t benc_dict_items(object d, PyObject** keys, PyObject** vals, Py_ssize_t max,
                               int direct) noexcept
    bint benc_is_exact_str(PyObject* o) noexcept
    bint benc_is_exact_bytes(PyObject* o) noexcept
    bint benc_is_exact_int(PyObject* o) noexcept

cdef bint dict_layout_check():
    # The direct read gives exactly PyDict_Next's entries, on dicts of every table kind and with
    # deleted entries; otherwise it is switched off.
    cdef PyObject* k1[64]
    cdef PyObject* v1[64]
    cdef PyObject* k2[64]
    cdef PyObject* v2[64]
    cdef Py_ssize_t n1, n2, i
    class Slots:
        pass
    inst = Slots()
    inst.a, inst.b = 1, 2
    samples = [{}, {"a": 1}, {"b": 2, "a": 1, "c": 3}, {1: "x", "y": 2.5, None: 3},
               {f"k{i}": i for i in range(40)}, {i: i for i in range(50)}, inst.__dict__]
    holes = {f"k{i}": i for i in range(20)}
    for i in range(0, 20, 3):
        del holes[f"k{i}"]
    samples.append(holes)
    for d in samples:
        n1 = benc_dict_items(d, k1, v1, 64, 1)
        n2 = benc_dict_items(d, k2, v2, 64, 0)
        if n1 != n2 or n1 != len(d):
            return False
        for i in range(n1):
            if k1[i] != k2[i] or v1[i] != v2[i]:
                return False
    return True

if not dict_layout_check():
    benc_dict_layout_ok = 0
DICT_LAYOUT_DIRECT = bool(benc_dict_layout_ok)

# Dicts with up to SHAPE_MAX_KEYS str keys: the sorted order of their keys and the keys' encoded
# form are kept in a small direct-mapped cache, found by the identity of the key objects in the
# dict's order. Dicts built by the same code (node tables, RPC messages, decoded replies, whose keys
# the decoder shares) have the very same key objects, so encoding one is: read the entries, compare
# the key pointers with the cached ones, then copy each encoded key and encode its value, with no
# sorting and no key encoding. An entry holds references to its keys, so a cached pointer cannot be
# reused by another object while it is there. An entry in use by an encode under way is "busy":
# a nested dict that maps to the same slot is then encoded from a private copy, not put in the cache.
cdef enum:
    SHAPE_SLOTS = 256              # a power of two
    SHAPE_MAX_KEYS = 8
    SHAPE_BLOB = 120               # room for the encoded keys of one dict

cdef struct Shape:
    Py_ssize_t n                           # 0: the slot is empty
    int busy
    PyObject* keys[SHAPE_MAX_KEYS]         # in the dict's order, each held
    unsigned char order[SHAPE_MAX_KEYS]    # order[i]: the dict position of the i-th key when sorted
    unsigned char start[SHAPE_MAX_KEYS + 1]    # encoded sorted key i: blob[start[i]:start[i + 1]]
    char blob[SHAPE_BLOB + 8]              # (+ 8: a key length's digits are stored 8 bytes at a time)

cdef Shape shapes[SHAPE_SLOTS]

cdef bint shape_build(Shape* s, PyObject** keys, Py_ssize_t n) except -1:
    # Fills s (without holding the keys) for these keys; False if their encoding is too long.
    cdef const char* kb[SHAPE_MAX_KEYS]
    cdef Py_ssize_t kl[SHAPE_MAX_KEYS]
    cdef Py_ssize_t i, j, at = 0, total = 0
    cdef unsigned char t
    for i in range(n):
        kb[i] = str_utf8(<object>keys[i], &kl[i])
        total += kl[i] + 3 + (kl[i] >= 10)        # "<len>:" is 2 or 3 bytes for keys this short
        if total > SHAPE_BLOB:
            return False
        s.order[i] = <unsigned char>i
    for i in range(1, n):                          # insertion sort of the positions by key bytes
        t = s.order[i]
        j = i - 1
        while j >= 0 and raw_cmp(kb[s.order[j]], kl[s.order[j]], kb[t], kl[t]) > 0:
            s.order[j + 1] = s.order[j]
            j -= 1
        s.order[j + 1] = t
    for i in range(n):
        j = s.order[i]
        s.start[i] = <unsigned char>at
        at += write_u64(s.blob + at, <unsigned long long>kl[j])
        s.blob[at] = b':'
        memcpy(s.blob + at + 1, kb[j], kl[j])
        at += 1 + kl[j]
    s.start[n] = <unsigned char>at
    for i in range(n):
        s.keys[i] = keys[i]
    s.n = n
    return True

cdef void shape_clear(Shape* s) noexcept:
    cdef Py_ssize_t i
    cdef Py_ssize_t n = s.n
    s.n = 0
    for i in range(n):
        Py_DECREF(<object>s.keys[i])

cdef int put_dict_entries(Out* o, Shape* s, PyObject** vals, int depth) except -1:
    # 'd', each cached key followed by its value, 'e'. ASCII str, small int and bytes values are
    # written with their key under one capacity check. Exact bytes and ints run no user code;
    # any other value may (a to_dict hook deep inside it) and so change the dict, so from the
    # first such value on, every value is held until the end.
    cdef Py_ssize_t i, n = s.n, kl, sl, k
    cdef PyObject* v
    cdef const char* kp
    cdef char* p
    cdef long long x
    cdef bint held = False
    out_char(o, b'd')
    try:
        for i in range(n):
            v = vals[s.order[i]]
            kp = s.blob + s.start[i]
            kl = s.start[i + 1] - s.start[i]
            sl = benc_ascii_len(v)
            if sl >= 0:
                p = out_reserve(o, kl + sl + 21)
                benc_copy(p, kp, kl)
                k = kl + write_u64(p + kl, <unsigned long long>sl)
                p[k] = b':'
                benc_copy(p + k + 1, <const char*>PyUnicode_DATA(<object>v), sl)
                o.len += k + 1 + sl
            elif benc_exact_small_int(v, &x):
                p = out_reserve(o, kl + 22)
                benc_copy(p, kp, kl)
                o.len += kl + benc_small_int_text(p + kl, x)
            elif benc_is_exact_bytes(v):
                # (exact bytes and ints run no user code: no need to hold the values for them)
                sl = PyBytes_GET_SIZE(<object>v)
                p = out_reserve(o, kl + sl + 21)
                benc_copy(p, kp, kl)
                k = kl + write_u64(p + kl, <unsigned long long>sl)
                p[k] = b':'
                benc_copy(p + k + 1, PyBytes_AS_STRING(<object>v), sl)
                o.len += k + 1 + sl
            elif benc_is_exact_int(v):
                p = out_reserve(o, kl)
                benc_copy(p, kp, kl)
                o.len += kl
                put_int(o, <object>v)
            else:
                if not held:
                    for k in range(n):
                        Py_INCREF(<object>vals[k])
                    held = True
                p = out_reserve(o, kl)
                benc_copy(p, kp, kl)
                o.len += kl
                put_value(o, <object>v, depth)
        out_char(o, b'e')
    finally:
        if held:
            for i in range(n):
                Py_DECREF(<object>vals[i])
    return 0

cdef int put_dict_unshared(Out* o, PyObject** keys, PyObject** vals, Py_ssize_t n,
                           int depth) except -1:
    # The slot is busy: the same work from a private entry (its own frame, so that the common
    # path's frames stay small for deep nesting). Returns 0 if the keys are too long for an entry.
    cdef Shape local
    if not shape_build(&local, keys, n):
        return 0
    put_dict_entries(o, &local, vals, depth)
    return 1

cdef int put_dict_shaped(Out* o, object d, Py_ssize_t n, int depth) except -1:
    # A dict of 1..SHAPE_MAX_KEYS entries through the shape cache; returns 0 (nothing written) when
    # a key is not an exact str or the keys are too long, for put_dict's general path.
    cdef PyObject* keys[SHAPE_MAX_KEYS]
    cdef PyObject* vals[SHAPE_MAX_KEYS]
    cdef Py_ssize_t i
    cdef size_t h = <size_t>n
    cdef Shape* s
    if benc_dict_items(d, keys, vals, n, 1) != n:
        return 0
    for i in range(n):
        if not benc_is_exact_str(keys[i]):
            return 0
        h = (h ^ (<size_t>keys[i] >> 4)) * <size_t>0x9E3779B97F4A7C15ULL
    s = &shapes[(h >> 40) & (SHAPE_SLOTS - 1)]
    if s.n == n:
        i = 0
        while i < n and s.keys[i] == keys[i]:
            i += 1
        if i == n:
            s.busy += 1
            try:
                put_dict_entries(o, s, vals, depth)
            finally:
                s.busy -= 1
            return 1
    if s.busy:
        return put_dict_unshared(o, keys, vals, n, depth)
    shape_clear(s)
    s.busy += 1             # (busy while it is built too: building may allocate, and so run a GC)
    try:
        if not shape_build(s, keys, n):
            return 0
        for i in range(n):
            Py_INCREF(<object>keys[i])
        put_dict_entries(o, s, vals, depth)
    finally:
        s.busy -= 1
    return 1

cdef int put_dict(Out* o, object d, int depth) except -1:
    cdef Entry small[16]
    cdef Entry* e = small
    cdef Py_ssize_t n = PyDict_GET_SIZE(d), count = 0, pos = 0, i
    cdef PyObject* k
    cdef PyObject* v
    if n == 0:
        return out_put(o, b"de", 2)
    if n <= SHAPE_MAX_KEYS and put_dict_shaped(o, d, n, depth):
        return 0
    if n > 16:
        e = <Entry*>PyMem_Malloc(n * sizeof(Entry))
        if e == NULL:
            raise MemoryError()
    try:
        while count < n and PyDict_Next(d, &pos, &k, &v):
            Py_INCREF(<object>k)    # hold them: user hooks (to_dict) could mutate the dict
            Py_INCREF(<object>v)
            e[count].key = k
            e[count].value = v
            count += 1
            classify_key(&e[count - 1])
        sort_entries(e, count)
        for i in range(1, count):
            if (e[i].kind == KIND_STRING and e[i - 1].kind == KIND_STRING and e[i].kl == e[i - 1].kl
                    and raw_cmp(e[i].kb, e[i].kl, e[i - 1].kb, e[i - 1].kl) == 0):
                raise ValueError(f"dict keys {<object>e[i - 1].key!r} and {<object>e[i].key!r} "
                                 "encode to the same bytes")
        out_char(o, b'd')
        for i in range(count):
            if e[i].kind == KIND_STRING:
                put_bytes(o, e[i].kb, e[i].kl)
            else:
                put_value(o, <object>e[i].key, depth)
            put_item(o, <object>e[i].value, depth)
        out_char(o, b'e')
    finally:
        for i in range(count):
            Py_DECREF(<object>e[i].key)
            Py_DECREF(<object>e[i].value)
        if e != small:
            PyMem_Free(e)
    return 0

cdef int put_list(Out* o, object lst, int depth) except -1:
    cdef Py_ssize_t i = 0
    cdef object item
    out_char(o, b'l')
    while i < PyList_GET_SIZE(lst):       # re-read: a user's to_dict hook could shrink the list
        item = <object>PyList_GET_ITEM(lst, i)     # a strong reference while it is encoded
        put_item(o, item, depth)
        i += 1
    return out_char(o, b'e')

cdef int put_tuple(Out* o, object tup, int depth) except -1:
    cdef Py_ssize_t i
    out_char(o, b'l')
    for i in range(PyTuple_GET_SIZE(tup)):
        put_item(o, <object>PyTuple_GET_ITEM(tup, i), depth)
    return out_char(o, b'e')

cdef inline int put_item(Out* o, object v, int depth) except -1:
    # A container's item: the two commonest types (node tables are strings and ints) without the
    # call to the full dispatch.
    cdef type t = type(v)
    if t is str:
        return put_str(o, v)
    if t is int:
        return put_int(o, v)
    return put_value(o, v, depth)

cdef int put_value(Out* o, object v, int depth) except -1:
    cdef type t = type(v)
    if t is str:
        return put_str(o, v)
    if t is int:
        return put_int(o, v)
    if t is bytes:
        return put_bytes(o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
    if t is dict:
        if depth >= BENC_MAX_DEPTH:
            raise_too_deep()
        return put_dict(o, v, depth + 1)
    if t is list:
        if depth >= BENC_MAX_DEPTH:
            raise_too_deep()
        return put_list(o, v, depth + 1)
    if t is float:
        return put_float(o, <double>v)
    if v is None:
        return out_char(o, b'n')
    if v is True:
        return out_char(o, b't')
    if v is False:
        return out_char(o, b'f')
    if t is tuple:
        if depth >= BENC_MAX_DEPTH:
            raise_too_deep()
        return put_tuple(o, v, depth + 1)
    return put_other(o, v, depth)

class NestingTooDeep(ValueError):
    """Encoding gave up: the value nests deeper than the limit (often: it contains itself)."""


cdef int raise_too_deep() except -1:
    raise NestingTooDeep(f"cannot encode: nesting deeper than {BENC_MAX_DEPTH} levels "
                     "(does the structure contain itself?)")

cdef int put_other(Out* o, object v, int depth) except -1:
    # Subclasses of the supported types and other byte buffers: the rare, slower path.
    cdef Py_buffer view
    if isinstance(v, bool):
        return out_char(o, b't' if v else b'f')
    if isinstance(v, int):
        return put_int(o, int(v))
    if isinstance(v, float):
        return put_float(o, <double>v)
    if isinstance(v, str):
        return put_str(o, v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        PyObject_GetBuffer(v, &view, PyBUF_SIMPLE)
        try:
            put_bytes(o, <const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0
    if depth >= BENC_MAX_DEPTH:
        raise_too_deep()
    if isinstance(v, dict):
        return put_dict(o, v, depth + 1)
    if isinstance(v, tuple) and hasattr(v, "to_dict"):
        return put_value(o, v.to_dict(), depth + 1)       # splay.Node travels as {ip=, port=}
    if isinstance(v, list):
        return put_list(o, v, depth + 1)
    if isinstance(v, tuple):
        return put_tuple(o, tuple(v), depth + 1)
    raise TypeError(f"cannot encode {type(v).__name__}: benc encodes str, bytes, int, float, bool, "
                    "None, list, tuple and dict")

# The slow walk that names where an encoding failed.

cdef str path_text(list path):
    if not path:
        return "top level"
    return "".join([f"[{p!r}]" for p in path])

cdef object locate_failure(object v, list path, int depth):
    """Returns (path, exception) of the first value that cannot be encoded, or None."""
    cdef Out o
    if depth > BENC_MAX_DEPTH:
        return None
    if isinstance(v, dict) or (isinstance(v, tuple) and hasattr(v, "to_dict")):
        items = v.to_dict() if not isinstance(v, dict) else v
        for k, item in items.items():
            try:
                if not (k is None or isinstance(k, (str, bytes, int, float))):
                    raise TypeError(f"cannot use {type(k).__name__} as a dict key: benc keys are str, "
                                    "bytes, int, float, bool or None")
                encode_c_fast(k)
            except (TypeError, ValueError) as exc:
                return (path + [k], exc, True, k)
            found = locate_failure(item, path + [k], depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            found = locate_failure(item, path + [i], depth + 1)
            if found is not None:
                return found
        return None
    try:
        encode_c_fast(v)
    except (TypeError, ValueError) as exc:
        return (path, exc, False, v)
    return None

cdef int encode_into(Out* o, object obj, Py_ssize_t headroom) except -1:
    # Encodes obj into a fresh buffer after `headroom` bytes left free; on failure the buffer is
    # released and the fast path's exception (which names no path) propagates.
    out_init(o, headroom)
    try:
        put_value(o, obj, 0)
    except BaseException:
        out_discard(o)
        raise
    return 0

cdef bytes encode_c_fast(object obj):
    cdef Out o
    encode_into(&o, obj, 0)
    return out_finish(&o)

cdef int explain_failure(object obj, BaseException original) except -1:
    if not isinstance(original, (TypeError, ValueError)):
        raise original
    found = locate_failure(obj, [], 0)
    if found is None:
        raise original
    path, exc, is_key, value = found
    kind = TypeError if isinstance(exc, TypeError) else ValueError   # UnicodeEncodeError -> ValueError
    message = str(exc)
    if is_key:
        # "cannot use tuple as a dict key: ..." or "cannot encode float nan: ..." for a key
        raise kind(f"{message} (the key {path[len(path) - 1]!r} of the dict at "
                   f"{path_text(path[:len(path) - 1])})") from None
    if message.startswith("cannot encode "):
        head, _, reason = message.partition(": ")
    else:
        head, reason = f"cannot encode {type(value).__name__}", message
    raise kind(f"{head} at {path_text(path)}: {reason}") from None

cdef int encode_explained(Out* o, object obj, Py_ssize_t headroom) except -1:
    # encode_into, with a TypeError or ValueError raised again naming where the value sits. (The
    # same work as calling encode_into, in one try block: entering each costs ~20 instructions.)
    out_init(o, headroom)
    try:
        put_value(o, obj, 0)
    except BaseException as exc:
        out_discard(o)
        if isinstance(exc, NestingTooDeep) or not isinstance(exc, (TypeError, ValueError)):
            raise
        explain_failure(obj, exc)
    return 0

cdef bytes encode_c(object obj):
    cdef Out o
    encode_explained(&o, obj, 0)
    return out_finish(&o)

cdef bytes encode_framed_c(object obj):
    # One llenc block: b"<len>\n" followed by the benc payload, built in the same buffer (the
    # length line is written into the headroom, then moved to the front).
    cdef Out o
    cdef Py_ssize_t headroom = 21, payload, hl
    encode_explained(&o, obj, headroom)
    payload = o.len - headroom
    o.data[headroom - 1] = b'\n'
    hl = o.data + headroom - write_digits(o.data + headroom - 1, <unsigned long long>payload)
    memmove(o.data, o.data + headroom - hl, hl + payload)
    o.len = hl + payload
    return out_finish(&o)

def encode(obj):
    """Encode ``obj`` as canonical benc bytes.

    str and bytes become byte strings, int and float ``i...e`` (floats without exponent), bool and
    None ``t``/``f``/``n``, list and tuple ``l...e``, dict ``d...e`` with keys sorted (byte strings
    by their raw bytes, then numbers, booleans, None). A value that has no benc form raises
    ``TypeError`` (a set, an object) or ``ValueError`` (NaN, infinities) naming its type and where
    it sits: ``cannot encode set (at [2]['peers'])``.
    """
    return encode_c(obj)

def encode_framed(obj):
    """``encode(obj)`` as one llenc block, ``b"<length>\\n<payload>"``, without an extra copy."""
    return encode_framed_c(obj)

# ----------------------------------------------------------------------------------------------
# Decoding

cdef struct Dec:
    const char* start
    const char* p
    const char* end
    bint raw
    bint lists

cdef str describe(Dec* d, const char* at):
    if at >= d.end:
        return "the end of the data"
    return repr(PyBytes_FromStringAndSize(at, 1))

cdef int fail(Dec* d, const char* at, str message) except -1:
    raise DecodeError(message, <Py_ssize_t>(at - d.start))

cdef inline bint is_digit(char c) noexcept:
    return c >= b'0' and c <= b'9'

# Byte strings become str when they are valid UTF-8. The check is done here rather than by letting
# the UTF-8 decoder fail: a failed decode raises and builds an exception holding a copy of the input
# (for a 64 KiB binary value that cost ten times the copy itself). Pure ASCII, the usual case, is
# copied straight into a new str.

cdef inline Py_ssize_t ascii_prefix(const unsigned char* p, Py_ssize_t n) noexcept:
    # The length of the leading run of ASCII bytes, eight at a time.
    cdef Py_ssize_t i = 0
    cdef uint64_t w
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        if w & 0x8080808080808080ULL:
            break
        i += 8
    while i < n and p[i] < 0x80:
        i += 1
    return i

cdef bint utf8_valid(const unsigned char* p, Py_ssize_t n) noexcept:
    # Well-formed UTF-8 exactly as Python's strict decoder accepts it (Unicode table 3-7): no
    # overlong forms, no surrogates (U+D800..U+DFFF), nothing beyond U+10FFFF.
    cdef Py_ssize_t i = 0
    cdef unsigned char c, lo, hi
    cdef int more
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
            continue
        lo, hi = 0x80, 0xBF
        if c < 0xC2:
            return False
        elif c < 0xE0:
            more = 1
        elif c < 0xF0:
            more = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif c < 0xF5:
            more = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if n - i <= more or p[i + 1] < lo or p[i + 1] > hi:
            return False
        for c in range(2, more + 1):
            if p[i + c] < 0x80 or p[i + c] > 0xBF:
                return False
        i += more + 1
    return True

cdef object text_or_bytes(const char* p, Py_ssize_t n):
    # str when p[:n] is valid UTF-8, else bytes.
    cdef Py_ssize_t k = ascii_prefix(<const unsigned char*>p, n)
    cdef PyObject* s
    if k == n:
        text = PyUnicode_New(n, 127)
        benc_copy(<char*>PyUnicode_DATA(text), p, n)
        return text
    if not utf8_valid(<const unsigned char*>p + k, n - k):
        return bytes_of(p, n)
    s = PyUnicode_DecodeUTF8(p, n, NULL)
    if s == NULL:            # (not expected: the check above is the decoder's own rule)
        PyErr_Clear()
        return bytes_of(p, n)
    result = <object>s
    Py_DECREF(result)
    return result

cdef object dec_string(Dec* d, bint as_bytes):
    cdef Py_ssize_t n = 0
    cdef const char* p = benc_length8(d.p, d.end, &n)    # up to 7 digits, read at once
    cdef const char* stop
    if p == NULL:
        p = d.p
        stop = d.end if d.end - d.p <= 15 else d.p + 15
        while p < stop and is_digit(p[0]):       # 15 digits cannot overflow: no check per digit
            n = n * 10 + (p[0] - 48)
            p += 1
        while p < d.end and is_digit(p[0]):      # (more digits: leading zeros, or too large)
            if n > <Py_ssize_t>100000000000000LL:    # 10^14: more than any buffer; stops overflow
                fail(d, d.p, "string length too large")
            n = n * 10 + (p[0] - 48)
            p += 1
    if p >= d.end:
        fail(d, p, "truncated: expected ':' after the string length, found the end of the data")
    if p[0] != b':':
        fail(d, p, f"expected ':' after the string length, found {describe(d, p)}")
    p += 1
    if n > d.end - p:
        fail(d, d.p, f"truncated: the string claims {n} bytes but only {d.end - p} remain")
    d.p = p + n
    if as_bytes:
        return bytes_of(p, n)
    return text_or_bytes(p, n)

cdef object dec_number(Dec* d):
    # i<decimal>e: integers exactly; a '.', an exponent ('E', or Lua's 1e+20) makes it a float.
    cdef const char* begin = d.p + 1
    cdef const char* q = begin
    cdef Py_ssize_t ndigits = 0, fdigits = 0, textlen
    cdef bint is_float = 0
    cdef long long acc = 0
    cdef char small[64]
    cdef char* text
    cdef bint neg = False
    if q < d.end and q[0] == b'-':
        neg = True
        q += 1
    # Fast path: up to 18 digits then an 'e' that ends the number (not Lua's "e+20" exponent).
    while q < d.end and is_digit(q[0]) and ndigits < 18:
        acc = acc * 10 + (q[0] - 48)
        ndigits += 1
        q += 1
    if (ndigits > 0 and q < d.end and q[0] == b'e'
            and not (q + 2 < d.end and (q[1] == b'+' or q[1] == b'-') and is_digit(q[2]))):
        d.p = q + 1
        return PyLong_FromLongLong(-acc if neg else acc)
    while q < d.end and is_digit(q[0]):
        acc = acc * 10 + (q[0] - 48) if ndigits < 18 else acc
        ndigits += 1
        q += 1
    if q < d.end and q[0] == b'.':
        is_float = 1
        q += 1
        while q < d.end and is_digit(q[0]):
            fdigits += 1
            q += 1
    if ndigits + fdigits == 0:
        if q >= d.end:
            fail(d, q, "truncated: expected the digits of a number, found the end of the data")
        fail(d, q, f"expected the digits of a number, found {describe(d, q)}")
    if q < d.end and q[0] == b'E':
        is_float = 1
        q += 1
        if q < d.end and (q[0] == b'+' or q[0] == b'-'):
            q += 1
        if q >= d.end or not is_digit(q[0]):
            fail(d, q, f"expected the digits of an exponent, found {describe(d, q)}")
        while q < d.end and is_digit(q[0]):
            q += 1
    elif (q + 2 < d.end and q[0] == b'e' and (q[1] == b'+' or q[1] == b'-') and is_digit(q[2])):
        # Lua's tostring writes 1e+20 / 1e-07; '+' or '-' cannot start a value, so this 'e' is
        # an exponent and not the end of the number.
        is_float = 1
        q += 2
        while q < d.end and is_digit(q[0]):
            q += 1
    if q >= d.end:
        fail(d, q, "truncated: expected 'e' to end the number, found the end of the data")
    if q[0] != b'e':
        fail(d, q, f"expected 'e' to end the number, found {describe(d, q)}")
    d.p = q + 1
    if not is_float and ndigits <= 18:
        return PyLong_FromLongLong(-acc if begin[0] == b'-' else acc)
    textlen = q - begin
    if textlen < 64:
        text = small
    else:
        text = <char*>PyMem_Malloc(textlen + 1)
    if text == NULL:
        raise MemoryError()
    try:
        memcpy(text, begin, textlen)
        text[textlen] = 0
        if is_float:
            return PyOS_string_to_double(text, NULL, NULL)
        try:
            return PyLong_FromString(text, NULL, 10)
        except ValueError as exc:       # the interpreter's limit on int digits
            fail(d, begin, f"integer not accepted: {exc}")
    finally:
        if text != small:
            PyMem_Free(text)

# Dict keys repeat (every reply has "type", a list of nodes repeats "ip" and "port"), so short
# string keys are kept in a small direct-mapped cache and shared instead of built again. Strings and
# bytes are immutable, so sharing them is invisible to callers.
cdef enum:
    KEY_CACHE_SLOTS = 512
    KEY_CACHE_MAX_LEN = 24

cdef PyObject* key_cache_str[KEY_CACHE_SLOTS]
cdef PyObject* key_cache_bytes[KEY_CACHE_SLOTS]

# The keys of the RPC messages and node tables (WIRE.md), as the interpreter's interned strings.
# The first time one is decoded the key cache keeps this very object, so the lookups of the RPC
# layer -- compiled and Python code use interned constants such as "n" -- find it by identity
# instead of hashing and comparing characters (~100 instructions per lookup; an rpcq call makes
# about ten). Other keys are not interned: a peer could send any number of them.
cdef dict WIRE_KEYS = {k: k for k in map(sys.intern, (
    "type", "call", "n", "reply", "error", "free", "retry_number", "ip", "port", "id", "key"))}

# Decoding fast paths in C: short keys hashed from their first and last eight bytes and compared
# eight bytes at a time (the byte-by-byte hash and libc's memcmp were a tenth of decoding a node
# list); a plain integer of up to 18 digits and a string whose length has one or two digits, read
# without the general parsers' checks for exponents, long lengths and errors.
cdef extern from *:
    """
    static inline size_t benc_key_hash(const char* p, Py_ssize_t n) {
        uint64_t a = 0, b = 0, h;
        if (n >= 8) { memcpy(&a, p, 8); memcpy(&b, p + n - 8, 8); }
        else if (n >= 4) {
            uint32_t x, y;
            memcpy(&x, p, 4); memcpy(&y, p + n - 4, 4);
            a = x; b = y;
        } else if (n > 0) {
            a = (uint64_t)(unsigned char)p[0] | ((uint64_t)(unsigned char)p[n >> 1] << 8)
                | ((uint64_t)(unsigned char)p[n - 1] << 16);
        }
        h = (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full) ^ (uint64_t)n;
        return (size_t)(h >> 40);
    }
    static inline int benc_same_bytes(const char* a, const char* b, Py_ssize_t n) {
        Py_ssize_t i = 0;
        uint64_t x, y;
        if (n >= 8) {
            for (; i + 8 < n; i += 8) {
                memcpy(&x, a + i, 8); memcpy(&y, b + i, 8);
                if (x != y) return 0;
            }
            memcpy(&x, a + n - 8, 8); memcpy(&y, b + n - 8, 8);
            return x == y;
        }
        if (n >= 4) {
            uint32_t x1, y1, x2, y2;
            memcpy(&x1, a, 4); memcpy(&y1, b, 4); memcpy(&x2, a + n - 4, 4); memcpy(&y2, b + n - 4, 4);
            return x1 == y1 && x2 == y2;
        }
        for (; i < n; i++) if (a[i] != b[i]) return 0;
        return 1;
    }
    /* The number of leading decimal digits in the 8 bytes of x (first byte lowest). A byte
       >= 0xFA carries into the next one, but only after a byte already known not to be a digit. */
    static inline int benc_digit_count8(uint64_t x) {
        uint64_t t = ((x & 0xF0F0F0F0F0F0F0F0ull) ^ 0x3030303030303030ull)
                   | (((x + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) ^ 0x3030303030303030ull);
        return t ? (__builtin_ctzll(t) >> 3) : 8;
    }
    /* The value of 8 digit bytes less '0' each (first digit lowest), in a few multiplications. */
    static inline uint32_t benc_value8(uint64_t v) {
        v = (v * 10) + (v >> 8);
        v = (((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32)))
             + (((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >> 32;
        return (uint32_t)v;
    }
    /* Up to 16 digits at q, eight bytes at a time (needs q + 16 <= end); returns how many. */
    static inline int benc_digits16(const char* q, unsigned long long* acc) {
        uint64_t x;
        int n, m;
        memcpy(&x, q, 8);
        n = benc_digit_count8(x);
        if (n == 0) return 0;
        x -= 0x3030303030303030ull;
        if (n < 8) { *acc = benc_value8(x << (8 * (8 - n))); return n; }
        *acc = benc_value8(x);
        memcpy(&x, q + 8, 8);
        m = benc_digit_count8(x);
        if (m == 0) return 8;
        x -= 0x3030303030303030ull;
        if (m < 8) *acc = *acc * benc_pow10_32[m] + benc_value8(x << (8 * (8 - m)));
        else *acc = *acc * 100000000ull + benc_value8(x);
        return 8 + m;
    }
    /* p[0] == 'i': the end of "i[-]<1..18 digits>e" (not Lua's "e+20" exponent) with its value
       in *out, or NULL for anything else (the general parser decides). */
    static inline const char* benc_plain_int(const char* p, const char* end, unsigned long long* mag,
                                             int* neg) {
        const char* q = p + 1;
        const char* first;
        unsigned long long acc = 0;
        *neg = 0;
        if (q < end && *q == '-') { *neg = 1; q++; }
        first = q;
        if (end - q >= 16) {
            int n = benc_digits16(q, &acc);
            q += n;
            if (n < 16) goto digits_done;
        }
        /* (the rest of a longer number, or all of one near the end) digit by digit: 19 digits
           cannot overflow, a 20th is checked, a 21st is for the general parser */
        while (q < end && (unsigned char)(*q - '0') < 10 && q - first < 19) {
            acc = acc * 10 + (unsigned)(*q - '0');
            q++;
        }
        if (q < end && (unsigned char)(*q - '0') < 10) {
            if (__builtin_mul_overflow(acc, 10ull, &acc)
                    || __builtin_add_overflow(acc, (unsigned long long)(*q - '0'), &acc))
                return NULL;
            q++;
        }
    digits_done:
        if (q == first || q >= end || *q != 'e') return NULL;
        if (end - q > 2 && (q[1] == '+' || q[1] == '-') && (unsigned char)(q[2] - '0') < 10) return NULL;
        if (*neg && acc > 9223372036854775808ull) return NULL;
        *mag = acc;
        return q + 1;
    }
    /* "<1 to 7 digits>:" at p, with eight bytes there to read: the ':' (the length in *n), or
       NULL (fewer bytes left, no digit, eight digits or more, or no ':' after them). */
    static inline const char* benc_length8(const char* p, const char* end, Py_ssize_t* n) {
        uint64_t x;
        int m;
        if (end - p < 8) return NULL;
        memcpy(&x, p, 8);
        m = benc_digit_count8(x);
        if (m == 0 || m == 8 || p[m] != ':') return NULL;
        *n = (Py_ssize_t)benc_value8((x - 0x3030303030303030ull) << (8 * (8 - m)));
        return p + m;
    }
    /* "<1 or 2 digits>:" at p with all its bytes present: the first byte of the string (its
       length in *n), or NULL. */
    static inline const char* benc_short_string(const char* p, const char* end, Py_ssize_t* n) {
        Py_ssize_t len;
        if (end - p >= 2 && p[1] == ':') { len = p[0] - '0'; p += 2; }
        else if (end - p >= 3 && (unsigned char)(p[1] - '0') < 10 && p[2] == ':') {
            len = (p[0] - '0') * 10 + (p[1] - '0'); p += 3;
        } else return NULL;
        if (len > end - p) return NULL;
        *n = len;
        return p;
    }
    """
    size_t benc_key_hash(const char* p, Py_ssize_t n) noexcept
    bint benc_same_bytes(const char* a, const char* b, Py_ssize_t n) noexcept
    const char* benc_plain_int(const char* p, const char* end, unsigned long long* mag,
                               int* neg) noexcept
    const char* benc_short_string(const char* p, const char* end, Py_ssize_t* n) noexcept
    const char* benc_length8(const char* p, const char* end, Py_ssize_t* n) noexcept

cdef inline size_t key_slot(const char* p, Py_ssize_t n) noexcept:
    return benc_key_hash(p, n) % KEY_CACHE_SLOTS

cdef object cached_key(const char* p, Py_ssize_t n, bint as_bytes):
    cdef size_t slot = key_slot(p, n)
    cdef PyObject* hit
    cdef const char* data
    cdef Py_ssize_t length
    if as_bytes:
        hit = key_cache_bytes[slot]
        if (hit != NULL and PyBytes_GET_SIZE(<object>hit) == n
                and benc_same_bytes(PyBytes_AS_STRING(<object>hit), p, n)):
            return <object>hit
        key = PyBytes_FromStringAndSize(p, n)
        Py_INCREF(key)
        Py_XDECREF(hit)
        key_cache_bytes[slot] = <PyObject*>key
        return key
    hit = key_cache_str[slot]
    if hit != NULL:
        data = str_utf8(<object>hit, &length)
        if length == n and benc_same_bytes(data, p, n):
            return <object>hit
    key = text_or_bytes(p, n)
    if type(key) is not str:
        return key                     # not UTF-8: a bytes key, not cached
    known = WIRE_KEYS.get(key)
    if known is not None:
        key = known
    Py_INCREF(key)
    Py_XDECREF(hit)
    key_cache_str[slot] = <PyObject*>key
    return key

cdef int fail_unexpected(Dec* d, str expected) except -1:
    fail(d, d.p, f"expected {expected}, found {describe(d, d.p)}")

cdef int fail_truncated(Dec* d, str expected) except -1:
    fail(d, d.p, f"truncated: expected {expected}, found the end of the data")

cdef inline object int_of(unsigned long long mag, int neg):
    # The int of benc_plain_int's result (a magnitude up to 2**64 - 1; up to 2**63 if negative).
    if mag <= 9223372036854775807ULL:
        return PyLong_FromLongLong(-<long long>mag if neg else <long long>mag)
    if not neg:
        return PyLong_FromUnsignedLongLong(mag)
    return PyLong_FromLongLong(<long long>(0 - mag))    # -2**63

cdef inline object dec_atom(Dec* d, char c, str expected):
    # A number, true, false or nil at d.p (c is d.p[0]); anything else fails, saying what was
    # `expected` there.
    cdef const char* q
    cdef unsigned long long mag
    cdef int neg
    if c == b'i':
        q = benc_plain_int(d.p, d.end, &mag, &neg)
        if q != NULL:
            d.p = q
            return int_of(mag, neg)
        return dec_number(d)
    if c == b't':
        d.p += 1
        return True
    if c == b'f':
        d.p += 1
        return False
    if c == b'n':
        d.p += 1
        return None
    fail_unexpected(d, expected)

cdef inline bint container_ends(Dec* d, str expected) except -1:
    # True (the 'e' consumed) at the end of a list or dict; `expected` names what may come.
    if d.p >= d.end:
        fail_truncated(d, expected)
    if d.p[0] == b'e':
        d.p += 1
        return True
    return False

cdef object dec_key(Dec* d):
    # (the caller, dec_value, has checked that a byte other than 'e' is there)
    cdef char c = d.p[0]
    cdef const char* p
    cdef Py_ssize_t n
    if is_digit(c):
        # fast path: a short key "<1 or 2 digits>:<bytes>" that is wholly present
        p = d.p
        if p + 1 < d.end and p[1] == b':':
            n = p[0] - 48
            p += 2
        elif p + 2 < d.end and is_digit(p[1]) and p[2] == b':':
            n = (p[0] - 48) * 10 + (p[1] - 48)
            p += 3
        else:
            return dec_string(d, d.raw)
        if n > KEY_CACHE_MAX_LEN or n > d.end - p:
            return dec_string(d, d.raw)
        d.p = p + n
        return cached_key(p, n, d.raw)
    return dec_atom(d, c, "a dict key (a string, a number, t, f or n) or 'e'")

# Decoded dicts of up to DEC_SHAPE_MAX_KEYS keys are made by copying a template. Building a dict key
# by key (an empty dict, then one insert per key: hashing into the table, growing it from nothing)
# was a third of decoding a node list. Dicts that arrive with the same key objects in the same order
# (the key cache above shares them) are the usual case: node tables, RPC messages. For those a
# template {key: None, ...} is kept in a small direct-mapped cache found by the key objects'
# addresses, and the decoded dict is PyDict_Copy(template) (one allocation and a copy of its table)
# with the values stored straight into the copy's entries. A template is made the second time in a
# row that a slot sees the same keys, so dicts whose keys are never shared (long keys, numbers) do
# not pay for templates they would not reuse. A template holds its keys, so their addresses cannot
# be reused by other objects while it is cached.
#
# A template also keeps its keys' wire form. The next dict at the same depth is guessed to have the
# keys of the last one there (a node list, the nodes of a finger table): each of its keys is first
# compared with the guessed key's bytes, and on a match the template's key object is taken as it
# is, without the key cache's hashing and lookup; on a mismatch the key is read as usual.
cdef enum:
    DEC_SHAPE_SLOTS = 256              # a power of two
    DEC_SHAPE_MAX_KEYS = 8
    DEC_SHAPE_BLOB = 120               # room for the wire form of one template's keys
    GUESS_DEPTHS = 16                  # depths at which the next dict's keys are guessed

cdef struct DecShape:
    Py_ssize_t n                           # 0: no template here
    size_t seen                            # the signature of the last keys that missed here
    PyObject* keys[DEC_SHAPE_MAX_KEYS]     # in wire order, held by the template
    PyObject* template                     # {key: None, ...}, held
    bint raw                               # the keys were read with raw=True
    Py_ssize_t wire_n                      # how many keys have their wire form below (0..n)
    unsigned char start[DEC_SHAPE_MAX_KEYS + 1]   # key i is blob[start[i]:start[i + 1]]
    char blob[DEC_SHAPE_BLOB]

cdef DecShape dec_shapes[DEC_SHAPE_SLOTS]
cdef int dec_guess[GUESS_DEPTHS]           # the slot of the last dict at each depth, or -1
for _i in range(GUESS_DEPTHS):
    dec_guess[_i] = -1

cdef extern from *:
    """
    /* Stores vals[0..n) (new references) as the values of the n entries of dict d, a fresh copy of
       a template, in order, replacing its placeholders. Returns 0, having done nothing, when d is
       not laid out as expected (the caller then sets the items one by one). */
    static inline int benc_dict_fill(PyObject* d, PyObject** vals, Py_ssize_t n) {
    #if BENC_DICT_LAYOUT
        PyDictObject* mp = (PyDictObject*)d;
        if (benc_dict_layout_ok && mp->ma_values == NULL && mp->ma_used == n) {
            benc_dictkeys* dk = (benc_dictkeys*)mp->ma_keys;
            if (dk->dk_refcnt == 1 && dk->dk_nentries == n && dk->dk_kind <= 1) {
                Py_ssize_t stride = dk->dk_kind == 1 ? 2 : 3, i;   /* {key, value} or {hash, key, value} */
                PyObject** e = (PyObject**)(dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes))
                               + stride - 1;
                for (i = 0; i < n; i++, e += stride) {
                    PyObject* old = *e;
                    Py_INCREF(vals[i]);
                    *e = vals[i];
                    Py_DECREF(old);
                }
                return 1;
            }
        }
    #endif
        return 0;
    }
    /* The template was not tracked by the garbage collector (its values are None): the copy must
       be as soon as it holds a container, as inserting the values would have made it. */
    static inline void benc_dict_track(PyObject* d, PyObject** vals, Py_ssize_t n) {
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            if (PyType_IS_GC(Py_TYPE(vals[i]))) {
                if (!PyObject_GC_IsTracked(d)) PyObject_GC_Track(d);
                return;
            }
        }
    }
    static int benc_dict_fill_ok = BENC_DICT_LAYOUT;
    """
    bint benc_dict_fill(object d, PyObject** vals, Py_ssize_t n) noexcept
    void benc_dict_track(object d, PyObject** vals, Py_ssize_t n) noexcept
    int benc_dict_fill_ok

cdef bint dict_fill_check():
    # A template's copy filled directly equals, item by item and in order, the dict built by
    # inserting the same entries, for every key kind; otherwise templates are switched off.
    cdef PyObject* vals[DEC_SHAPE_MAX_KEYS]
    cdef Py_ssize_t i
    samples = [[("ip", "10.0.0.1"), ("port", 20001), ("id", [1, {"a": 2}])],
               [(b"a", 1), (b"b", b"\xff")], [(1, "one"), ("k", None), (2.5, True)],
               [(f"key{i}", i * 1000) for i in range(DEC_SHAPE_MAX_KEYS)]]
    for entries in samples:
        template = dict.fromkeys([k for k, _ in entries])
        for i in range(len(entries)):
            vals[i] = <PyObject*>entries[i][1]
        copy = PyDict_Copy(template)
        if not benc_dict_fill(copy, vals, len(entries)):
            return False
        if (list(copy.items()) != entries or copy != dict(entries)
                or template != dict.fromkeys(template)):
            return False
    return True

if not dict_fill_check():
    benc_dict_fill_ok = 0
DICT_TEMPLATES = bool(benc_dict_fill_ok)

cdef dict dict_of_entries(Dec* d, PyObject** keys, PyObject** vals, const char** at, Py_ssize_t n):
    # The dict of n decoded entries, inserted one by one; a repeated key fails at its offset.
    cdef dict dct = {}
    cdef Py_ssize_t i
    for i in range(n):
        PyDict_SetItem(dct, <object>keys[i], <object>vals[i])
        if PyDict_GET_SIZE(dct) == i:
            fail(d, at[i], f"duplicate dict key {<object>keys[i]!r}")
    return dct

cdef int remember_template(DecShape* s, PyObject** keys, Py_ssize_t n, bint raw) except -1:
    cdef Py_ssize_t i, kl, at = 0, wire_n = 0
    cdef const char* kb
    cdef unsigned char start[DEC_SHAPE_MAX_KEYS + 1]
    cdef char blob[DEC_SHAPE_BLOB]
    cdef PyObject* old = s.template
    template = {}
    for i in range(n):
        PyDict_SetItem(template, <object>keys[i], None)
    # the wire form of the leading str (or bytes) keys, as they were read
    for i in range(n):
        if benc_is_exact_str(keys[i]):
            kb = str_utf8(<object>keys[i], &kl)
        elif type(<object>keys[i]) is bytes:
            kb = PyBytes_AS_STRING(<object>keys[i])
            kl = PyBytes_GET_SIZE(<object>keys[i])
        else:
            break
        if at + kl + 21 > DEC_SHAPE_BLOB:
            break
        start[i] = <unsigned char>at
        at += write_u64(blob + at, <unsigned long long>kl)
        blob[at] = b':'
        memcpy(blob + at + 1, kb, kl)
        at += 1 + kl
        wire_n = i + 1
    start[wire_n] = <unsigned char>at
    # (no allocation from here on: nothing can run and look at the slot half updated)
    Py_INCREF(template)
    s.template = <PyObject*>template
    for i in range(n):
        s.keys[i] = keys[i]
    s.n = n
    s.raw = raw
    s.wire_n = wire_n
    memcpy(s.start, start, wire_n + 1)
    memcpy(s.blob, blob, at)
    Py_XDECREF(old)
    return 0

cdef object dict_from_template(Dec* d, PyObject** keys, PyObject** vals, const char** at,
                               Py_ssize_t n, int depth):
    # The dict of n decoded entries (1 <= n <= DEC_SHAPE_MAX_KEYS): a copy of the template of these
    # keys when the cache has it, else inserted one by one. The slot becomes the guess at `depth`.
    cdef size_t h = <size_t>n
    cdef Py_ssize_t i
    cdef DecShape* s
    cdef int slot
    for i in range(n):
        h = (h ^ (<size_t>keys[i] >> 4)) * <size_t>0x9E3779B97F4A7C15ULL
    slot = <int>((h >> 40) & (DEC_SHAPE_SLOTS - 1))
    s = &dec_shapes[slot]
    if depth < GUESS_DEPTHS:
        dec_guess[depth] = slot
    if s.n == n:
        i = 0
        while i < n and s.keys[i] == keys[i]:
            i += 1
        if i == n:
            # (the template is held while it is copied: the copy allocates, which may run a
            # finalizer that decodes and replaces this slot's template)
            template = <object>s.template
            dct = PyDict_Copy(template)
            if not benc_dict_fill(dct, vals, n):
                for i in range(n):
                    PyDict_SetItem(dct, <object>keys[i], <object>vals[i])
            benc_dict_track(dct, vals, n)
            return dct
    dct = dict_of_entries(d, keys, vals, at, n)
    if benc_dict_fill_ok:
        if s.seen == h:
            remember_template(s, keys, n, d.raw)
        s.seen = h
    return dct

cdef dict dec_dict_rest(Dec* d, dict dct, int depth):
    # The entries of a dict beyond its first DEC_SHAPE_MAX_KEYS, inserted as they are read.
    cdef const char* at
    cdef Py_ssize_t before
    while not container_ends(d, "a dict key or 'e'"):
        at = d.p
        key = dec_key(d)
        before = PyDict_GET_SIZE(dct)
        PyDict_SetItem(dct, key, dec_item(d, depth + 1))
        if PyDict_GET_SIZE(dct) == before:
            fail(d, at, f"duplicate dict key {key!r}")
    return dct

cdef object dec_dict(Dec* d, int depth):
    # A dict's entries (d.p just after its 'd'): the first DEC_SHAPE_MAX_KEYS are read into arrays,
    # then made into a dict at once; a larger dict goes on entry by entry. A repeated key is
    # reported when the dict is made, at the offset of the repeat.
    cdef PyObject* keys[DEC_SHAPE_MAX_KEYS]
    cdef PyObject* vals[DEC_SHAPE_MAX_KEYS]
    cdef const char* at[DEC_SHAPE_MAX_KEYS]
    cdef Py_ssize_t n = 0, i, kl
    cdef DecShape* guess = NULL
    if depth < GUESS_DEPTHS and dec_guess[depth] >= 0:
        guess = &dec_shapes[dec_guess[depth]]
        if guess.raw != d.raw:
            guess = NULL
    try:
        while not container_ends(d, "a dict key or 'e'"):
            if n == DEC_SHAPE_MAX_KEYS:
                return dec_dict_rest(d, dict_of_entries(d, keys, vals, at, n), depth)
            at[n] = d.p
            # (the guess is read afresh each time: a decode run by a garbage collection between
            # two keys may have replaced it, always whole)
            if guess != NULL and n < guess.wire_n:
                kl = guess.start[n + 1] - guess.start[n]
                if kl <= d.end - d.p and benc_same_bytes(d.p, guess.blob + guess.start[n], kl):
                    key = <object>guess.keys[n]
                    d.p += kl
                else:
                    guess = NULL
                    key = dec_key(d)
            else:
                key = dec_key(d)
            value = dec_item(d, depth + 1)
            Py_INCREF(key)
            keys[n] = <PyObject*>key
            Py_INCREF(value)
            vals[n] = <PyObject*>value
            n += 1
        if n == 0:
            return {}
        return dict_from_template(d, keys, vals, at, n, depth)
    finally:
        for i in range(n):
            Py_DECREF(<object>keys[i])
            Py_DECREF(<object>vals[i])

cdef object as_list_if_sequence(dict dct):
    # lists=True: a dict whose keys are exactly 1..n (a Lua array with its keys written out).
    cdef Py_ssize_t n = len(dct), i
    if n == 0:
        return dct
    for k in dct:
        if type(k) is not int or k < 1 or k > n:
            return dct
    result = PyList_New(n)
    for i in range(n):
        item = dct[i + 1]
        Py_INCREF(item)
        PyList_SET_ITEM(result, i, item)
    return result

cdef inline object dec_item(Dec* d, int depth):
    # A list item or dict value: a plain integer or a short text string is read here, in the
    # container's loop, without the call to dec_value (whose entry and exit cost ~80 instructions,
    # a tenth of decoding a node list); anything else goes to dec_value.
    cdef const char* q
    cdef Py_ssize_t n
    cdef unsigned long long mag
    cdef int neg
    cdef char c
    if d.p < d.end:
        c = d.p[0]
        if c == b'i':
            q = benc_plain_int(d.p, d.end, &mag, &neg)
            if q != NULL:
                d.p = q
                return int_of(mag, neg)
        elif is_digit(c) and not d.raw:
            q = benc_short_string(d.p, d.end, &n)
            if q != NULL:
                d.p = q + n
                return text_or_bytes(q, n)
    return dec_value(d, depth)

cdef object dec_value(Dec* d, int depth):
    cdef char c
    cdef const char* at
    cdef const char* q
    cdef Py_ssize_t before, n
    if d.p >= d.end:
        fail_truncated(d, "a value")
    c = d.p[0]
    if is_digit(c):
        q = benc_short_string(d.p, d.end, &n)
        if q == NULL:
            return dec_string(d, d.raw)
        d.p = q + n
        if d.raw:
            return bytes_of(q, n)
        return text_or_bytes(q, n)
    if c != b'l' and c != b'd':
        return dec_atom(d, c, "a value (a digit, 'i', 'l', 'd', 't', 'f' or 'n')")
    if depth >= BENC_MAX_DEPTH:
        fail(d, d.p, f"nesting deeper than {BENC_MAX_DEPTH} levels")
    d.p += 1
    if c == b'l':
        lst = []
        while not container_ends(d, "a list item or 'e'"):
            PyList_Append(lst, dec_item(d, depth + 1))
        return lst
    dct = dec_dict(d, depth)
    return as_list_if_sequence(dct) if d.lists else dct

cdef inline void dec_start(Dec* d, const char* data, Py_ssize_t length, bint raw,
                           bint lists) noexcept:
    d.start = data
    d.p = data
    d.end = data + length
    d.raw = raw
    d.lists = lists

cdef object decode_prefix_c(const char* data, Py_ssize_t length, Py_ssize_t* end, bint raw,
                            bint lists):
    cdef Dec d
    dec_start(&d, data, length, raw, lists)
    value = dec_value(&d, 0)
    end[0] = d.p - data
    return value

cdef inline object decode_whole(const char* data, Py_ssize_t length, bint raw, bint lists):
    # The value that the whole buffer holds (decode_c, written out for decode() as well: two nested
    # calls were a tenth of decoding a small message).
    cdef Dec d
    if length == 0:
        raise DecodeError("empty input: expected a value", 0)
    dec_start(&d, data, length, raw, lists)
    value = dec_value(&d, 0)
    if d.p != d.end:
        raise DecodeError(f"trailing data after the value ({d.end - d.p} bytes)", d.p - data)
    return value

cdef object decode_c(const char* data, Py_ssize_t length, bint raw, bint lists):
    return decode_whole(data, length, raw, lists)

def decode(data, bint raw=False, bint lists=False, bint strict=True):
    """Decode one benc value from ``data`` (bytes, bytearray, memoryview; a str is read as UTF-8).

    Byte strings become ``str`` when they are valid UTF-8 and ``bytes`` otherwise; ``raw=True``
    keeps every byte string (dict keys too) as ``bytes``, as BitTorrent data needs. ``lists=True``
    turns a dict whose keys are exactly 1..n into a list (what a Lua array with holes filled looks
    like). With ``strict`` (the default) bytes after the value are an error. Malformed input raises
    :class:`splay.DecodeError` with the offset and what was expected there.
    """
    cdef Py_buffer view
    cdef Py_ssize_t end = 0
    if isinstance(data, str):
        data = (<str>data).encode("utf-8")
    if type(data) is bytes:
        if strict:
            return decode_whole(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), raw, lists)
        return decode_prefix_c(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &end, raw, lists)
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"benc.decode expects bytes, bytearray or memoryview, got "
                        f"{type(data).__name__}") from None
    try:
        if strict:
            return decode_c(<const char*>view.buf, view.len, raw, lists)
        if view.len == 0:
            raise DecodeError("empty input: expected a value", 0)
        return decode_prefix_c(<const char*>view.buf, view.len, &end, raw, lists)
    finally:
        PyBuffer_Release(&view)

# The module's `decode` is a C function of the fast-call convention in front of the function above:
# a call with a single bytes argument (nearly every call) goes straight to the decoder, without the
# keyword parsing of a four-parameter Python function (a tenth of decoding a small message); any
# other call is passed on to the function above unchanged, with its errors.
cdef extern from *:
    """
    static PyObject* (*benc_decode_bytes)(PyObject* data) = NULL;
    static PyObject* benc_decode_any = NULL;

    static PyObject* benc_decode_fastcall(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                          PyObject* kwnames) {
        if (nargs == 1 && kwnames == NULL && PyBytes_CheckExact(args[0]))
            return benc_decode_bytes(args[0]);
        return PyObject_Vectorcall(benc_decode_any, args, (size_t)nargs, kwnames);
    }

    static PyMethodDef benc_decode_def = {
        "decode", (PyCFunction)(void(*)(void))benc_decode_fastcall, METH_FASTCALL | METH_KEYWORDS,
        NULL};
    """
    object (*benc_decode_bytes)(object data)
    PyObject* benc_decode_any
    ctypedef struct PyMethodDef:
        const char* ml_doc
    PyMethodDef benc_decode_def
    object PyCFunction_NewEx(PyMethodDef* ml, PyObject* self, object module)

cdef object decode_bytes(object data):
    return decode_whole(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), False, False)

benc_decode_bytes = decode_bytes
_decode_any = decode
benc_decode_any = <PyObject*>_decode_any      # (held by the module global)
_decode_doc = _decode_any.__doc__
if _decode_doc.startswith("decode("):         # (the signature line Cython may put first)
    _decode_doc = _decode_doc.partition("\n")[2]
_decode_doc = "decode(data, raw=False, lists=False, strict=True)\n--\n\n" + _decode_doc.lstrip("\n")
benc_decode_def.ml_doc = PyUnicode_AsUTF8AndSize(_decode_doc, NULL)
decode = PyCFunction_NewEx(&benc_decode_def, NULL, __name__)


def decode_prefix(data, Py_ssize_t offset=0, raw=False, lists=False):
    """Decode the value starting at ``offset``; returns ``(value, offset just after it)``.

    For streams of concatenated values; errors report offsets within ``data``.
    """
    cdef Py_buffer view
    cdef Py_ssize_t end = 0
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if offset < 0 or offset > view.len:
            raise ValueError(f"offset {offset} outside the data (0..{view.len})")
        try:
            value = decode_prefix_c(<const char*>view.buf + offset, view.len - offset, &end, raw,
                                    lists)
        except DecodeError as exc:
            if exc.offset is None:
                raise
            raise DecodeError(str(exc).rsplit(" (at offset ", 1)[0], exc.offset + offset) from None
        return value, offset + end
    finally:
        PyBuffer_Release(&view)


def _loop_copy(bytes data, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t shift, bint backward=False):
    """Test support for csrc/large_copy.h: ``data[start:stop]`` copied by its forward vector loop
    (or its backward one) to an address ``shift`` bytes (0..31) past a 32-byte boundary, returned
    as bytes; ``None`` where the CPU cannot run the loops. (Every machine can thus check the loops,
    whether or not its encode and decode use them: ``LARGE_COPY_LOOP``.)"""
    cdef Py_ssize_t n = stop - start
    cdef char* block
    cdef char* dst
    if not splay_loop_copy_supported():
        return None
    if not (0 <= start and start + 64 <= stop <= len(data) and 0 <= shift < 32):
        raise ValueError("need 0 <= start, start + 64 <= stop <= len(data) and 0 <= shift < 32")
    block = <char*>PyMem_Malloc(n + 64)
    if block == NULL:
        raise MemoryError()
    try:
        dst = <char*>((<size_t>block + 31) & ~(<size_t>31)) + shift
        if backward:
            splay_loop_copy_backward(dst, PyBytes_AS_STRING(data) + start, <size_t>n)
        else:
            splay_loop_copy(dst, PyBytes_AS_STRING(data) + start, <size_t>n)
        return PyBytes_FromStringAndSize(dst, n)
    finally:
        PyMem_Free(block)


#: Sizes and the 4 KiB-aliasing window of csrc/large_copy.h, for its tests.
LARGE_COPY_LIMITS = (SPLAY_LOOP_COPY_MIN, SPLAY_LOOP_COPY_MAX, SPLAY_ALIAS_WINDOW)
_COPY_PATHS = ("memcpy", "forward", "backward")


def _large_copy(bytes data, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t distance):
    """Test support for csrc/large_copy.h: ``data[start:stop]`` copied by ``splay_large_copy``
    (what encode and decode use) to an address ``distance`` bytes (0..4095) past the source modulo
    4 KiB, as ``(copy, path)``: the bytes written and the copy taken ("memcpy", "forward" or
    "backward")."""
    cdef Py_ssize_t n = stop - start
    cdef const char* src
    cdef char* block
    cdef char* dst
    cdef int path
    if not (0 <= start <= stop <= len(data) and 0 <= distance < 4096):
        raise ValueError("need 0 <= start <= stop <= len(data) and 0 <= distance < 4096")
    src = PyBytes_AS_STRING(data) + start
    block = <char*>PyMem_Malloc(n + 4096)
    if block == NULL:
        raise MemoryError()
    try:
        dst = block + ((<size_t>src + <size_t>distance - <size_t>block) & 4095)
        path = splay_large_copy_path(dst, src, <size_t>n)
        splay_large_copy(dst, src, <size_t>n)
        return PyBytes_FromStringAndSize(dst, n), _COPY_PATHS[path]
    finally:
        PyMem_Free(block)

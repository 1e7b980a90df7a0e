# Bit tables (SPLAY's splay.bits) for Bloom filters and bitmaps, compiled.
#
# A BitTable stores its bits packed, most significant bit of each byte first, which is exactly the
# order of SPLAY's ascii_to_bits/bits_to_ascii: bit 0 is the high bit of the first byte. Python
# indices are 0-based (Lua's bit tables start at 1). Every read-only function also accepts bytes,
# bytearray or memoryview, read as len(data) * 8 bits.
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.string cimport memcpy, memcmp, memset
from libc.stdint cimport uint64_t

cdef extern from *:
    int __builtin_popcountll(unsigned long long x) nogil


cdef inline Py_ssize_t nbytes_for(Py_ssize_t nbits) noexcept:
    return (nbits + 7) >> 3


cdef Py_ssize_t popcount_bytes(const unsigned char* p, Py_ssize_t nbits) noexcept:
    cdef Py_ssize_t nb = nbits >> 3, i = 0, total = 0
    cdef uint64_t word
    while i + 8 <= nb:
        memcpy(&word, p + i, 8)
        total += __builtin_popcountll(word)
        i += 8
    while i < nb:
        total += __builtin_popcountll(p[i])
        i += 1
    if nbits & 7:       # only the bits that belong to the table in the last, partial byte
        total += __builtin_popcountll(p[nb] & (0xFF00 >> (nbits & 7)) & 0xFF)
    return total


cdef class BitTable:
    """A fixed-size table of bits, all 0 at creation: ``BitTable(n)``.

    Indexing is 0-based: ``t[i]`` / ``t.is_set(i)`` read, ``t[i] = True`` / ``t.set(i)`` /
    ``t.unset(i)`` write. ``&``, ``|``, ``^``, ``~`` combine tables of equal size (Bloom filter
    union and intersection), ``len(t)`` is the number of bits and ``t.count()`` the number of 1s.
    ``bytes(t)`` / ``t.to_bytes()`` give SPLAY's binary-string form.
    """
    cdef unsigned char* data
    cdef Py_ssize_t nbits

    def __cinit__(self, Py_ssize_t size=0):
        if size < 0:
            raise ValueError(f"a bit table size is >= 0, got {size}")
        self.nbits = size
        self.data = <unsigned char*>PyMem_Calloc(nbytes_for(size) or 1, 1)
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef inline Py_ssize_t check(self, Py_ssize_t i) except -1:
        if i < 0 or i >= self.nbits:
            raise IndexError(f"bit {i} outside a table of {self.nbits} bits (indices are 0-based)")
        return i

    def __len__(self):
        return self.nbits

    def is_set(self, Py_ssize_t i):
        """True when bit ``i`` is 1."""
        self.check(i)
        return (self.data[i >> 3] >> (7 - (i & 7))) & 1 == 1

    def set(self, Py_ssize_t i, bint value=True):
        """Set bit ``i`` to 1 (or to ``value``)."""
        self.check(i)
        if value:
            self.data[i >> 3] |= (0x80 >> (i & 7))
        else:
            self.data[i >> 3] &= ~(0x80 >> (i & 7))

    def unset(self, Py_ssize_t i):
        """Set bit ``i`` to 0."""
        self.check(i)
        self.data[i >> 3] &= ~(0x80 >> (i & 7))

    def __getitem__(self, Py_ssize_t i):
        self.check(i)
        return (self.data[i >> 3] >> (7 - (i & 7))) & 1 == 1

    def __setitem__(self, Py_ssize_t i, value):
        self.set(i, bool(value))

    def count(self):
        """Number of bits set to 1 (population count)."""
        return popcount_bytes(self.data, self.nbits)

    def positions(self):
        """The indices of the bits set to 1, ascending."""
        cdef list out = []
        cdef Py_ssize_t byte_index, bit, nb = nbytes_for(self.nbits)
        cdef unsigned char b
        for byte_index in range(nb):
            b = self.data[byte_index]
            if b == 0:
                continue
            for bit in range(8):
                if b & (0x80 >> bit) and byte_index * 8 + bit < self.nbits:
                    out.append(byte_index * 8 + bit)
        return out

    def to_bytes(self):
        """SPLAY's binary string: 8 bits per byte, the last byte padded with 0 bits."""
        return PyBytes_FromStringAndSize(<char*>self.data, nbytes_for(self.nbits))

    def __bytes__(self):
        return self.to_bytes()

    def copy(self):
        """An independent copy."""
        cdef BitTable t = BitTable(self.nbits)
        memcpy(t.data, self.data, nbytes_for(self.nbits))
        return t

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self.nbits):
            yield (self.data[i >> 3] >> (7 - (i & 7))) & 1 == 1

    def __eq__(self, other):
        cdef BitTable o
        if not isinstance(other, BitTable):
            return NotImplemented
        o = <BitTable>other
        return o.nbits == self.nbits and memcmp(o.data, self.data, nbytes_for(self.nbits)) == 0

    def __hash__(self):
        return hash((self.nbits, self.to_bytes()))

    def __repr__(self):
        if self.nbits <= 64:
            return f"BitTable({self.nbits}, '{show_bits(self)}')"
        return f"BitTable({self.nbits}, {self.count()} set)"

    cdef BitTable combine(self, other, int op):
        cdef BitTable o, t
        cdef Py_ssize_t i, nb = nbytes_for(self.nbits)
        if not isinstance(other, BitTable):
            raise TypeError(f"can only combine a BitTable with a BitTable, not {type(other).__name__}")
        o = <BitTable>other
        if o.nbits != self.nbits:
            raise ValueError(f"bit tables differ in size ({self.nbits} and {o.nbits} bits)")
        t = BitTable(self.nbits)
        for i in range(nb):
            if op == 0:
                t.data[i] = self.data[i] & o.data[i]
            elif op == 1:
                t.data[i] = self.data[i] | o.data[i]
            else:
                t.data[i] = self.data[i] ^ o.data[i]
        return t

    def __and__(self, other):
        return self.combine(other, 0)

    def __or__(self, other):
        return self.combine(other, 1)

    def __xor__(self, other):
        return self.combine(other, 2)

    def __invert__(self):
        cdef BitTable t = BitTable(self.nbits)
        cdef Py_ssize_t i, nb = nbytes_for(self.nbits)
        for i in range(nb):
            t.data[i] = ~self.data[i]
        if self.nbits & 7:        # keep the padding bits of the last byte at 0
            t.data[nb - 1] &= (0xFF00 >> (self.nbits & 7)) & 0xFF
        return t


cdef class _Bits:
    # A read-only view of "bits": a BitTable, or any bytes-like object (len * 8 bits).
    cdef Py_buffer view
    cdef bint has_view
    cdef const unsigned char* data
    cdef Py_ssize_t nbits
    cdef object keep

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)


cdef _Bits read_bits(object bits):
    cdef _Bits b = _Bits.__new__(_Bits)
    if isinstance(bits, BitTable):
        b.keep = bits
        b.data = (<BitTable>bits).data
        b.nbits = (<BitTable>bits).nbits
        return b
    if isinstance(bits, str):
        raise TypeError("bits are a BitTable or a binary string (bytes), not str")
    try:
        PyObject_GetBuffer(bits, &b.view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"bits are a BitTable or bytes, not {type(bits).__name__}") from None
    b.has_view = True
    b.data = <const unsigned char*>b.view.buf
    b.nbits = b.view.len * 8
    return b


def init(Py_ssize_t size):
    """A new bit table of ``size`` bits, all 0 (SPLAY's ``init(bits, size)``)."""
    return BitTable(size)


def ascii_to_bits(s, max_length=None):
    """The bit table of a binary string (8 bits per byte, high bit first).

    ``max_length`` keeps only the first ``max_length`` bits.
    """
    cdef _Bits b = read_bits(s)
    cdef Py_ssize_t n = b.nbits
    cdef BitTable t
    if max_length is not None:
        if max_length < 0:
            raise ValueError(f"max_length is >= 0, got {max_length}")
        if max_length < n:
            n = max_length
    t = BitTable(n)
    memcpy(t.data, b.data, nbytes_for(n))
    if n & 7:
        t.data[nbytes_for(n) - 1] &= (0xFF00 >> (n & 7)) & 0xFF
    return t


def bits_to_ascii(bits):
    """The binary string of a bit table (its last byte padded with 0 bits)."""
    cdef _Bits b = read_bits(bits)
    return PyBytes_FromStringAndSize(<const char*>b.data, nbytes_for(b.nbits))


def show_bits(bits):
    """Human-readable bits in groups of 8: ``"00110000 11001111"``."""
    cdef _Bits b = read_bits(bits)
    cdef Py_ssize_t i, k = 0
    cdef bytes out
    cdef char* p
    if b.nbits == 0:
        return ""
    out = PyBytes_FromStringAndSize(NULL, b.nbits + (b.nbits - 1) // 8)
    p = PyBytes_AS_STRING(out)
    for i in range(b.nbits):
        if i and i % 8 == 0:
            p[k] = b' '
            k += 1
        p[k] = b'1' if (b.data[i >> 3] >> (7 - (i & 7))) & 1 else b'0'
        k += 1
    return out.decode("ascii")


def size(bits):
    """Number of bits (a binary string has ``len * 8``)."""
    return read_bits(bits).nbits


def count(bits):
    """Number of bits set to 1."""
    cdef _Bits b = read_bits(bits)
    return popcount_bytes(b.data, b.nbits)


popcount = count


def is_set(bits, Py_ssize_t i):
    """True when bit ``i`` (0-based) is 1; ``bits`` is a bit table or a binary string."""
    cdef _Bits b = read_bits(bits)
    if i < 0 or i >= b.nbits:
        raise IndexError(f"bit {i} outside {b.nbits} bits (indices are 0-based)")
    return (b.data[i >> 3] >> (7 - (i & 7))) & 1 == 1


cdef int write_bit(object bits, Py_ssize_t i, bint value) except -1:
    cdef Py_buffer view
    cdef unsigned char* p
    if isinstance(bits, BitTable):
        (<BitTable>bits).set(i, value)
        return 0
    try:
        PyObject_GetBuffer(bits, &view, PyBUF_WRITABLE)
    except (TypeError, BufferError):
        raise TypeError(f"cannot change bits of {type(bits).__name__}: use a BitTable or a "
                        "bytearray") from None
    try:
        if i < 0 or i >= view.len * 8:
            raise IndexError(f"bit {i} outside {view.len * 8} bits (indices are 0-based)")
        p = <unsigned char*>view.buf
        if value:
            p[i >> 3] |= (0x80 >> (i & 7))
        else:
            p[i >> 3] &= ~(0x80 >> (i & 7))
    finally:
        PyBuffer_Release(&view)
    return 0


def set(bits, Py_ssize_t i):
    """Set bit ``i`` (0-based) of a BitTable or bytearray to 1."""
    write_bit(bits, i, True)


def unset(bits, Py_ssize_t i):
    """Set bit ``i`` (0-based) of a BitTable or bytearray to 0."""
    write_bit(bits, i, False)


def _as_table(bits):
    return bits if isinstance(bits, BitTable) else ascii_to_bits(bits)


def and_(a, b):
    """Bitwise AND of two equally long bit tables or binary strings, as a new BitTable."""
    return _as_table(a) & _as_table(b)


def or_(a, b):
    """Bitwise OR (union of two Bloom filters), as a new BitTable."""
    return _as_table(a) | _as_table(b)


def xor(a, b):
    """Bitwise XOR, as a new BitTable."""
    return _as_table(a) ^ _as_table(b)


def not_(a):
    """Bitwise NOT, as a new BitTable of the same size."""
    return ~_as_table(a)


def positions(bits):
    """The 0-based indices of the bits set to 1, ascending (the compact form of a sparse table)."""
    return _as_table(bits).positions()


def from_positions(positions, Py_ssize_t size):
    """A BitTable of ``size`` bits with exactly the bits at ``positions`` set."""
    cdef BitTable t = BitTable(size)
    for i in positions:
        t.set(i)
    return t

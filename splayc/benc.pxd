# The benc codec's C-level entry points, for core modules (the RPC layer) that cimport them:
#
#     from splayc.benc cimport encode_c, encode_framed_c, decode_c
#     payload = encode_c(obj)                       # canonical benc bytes
#     block = encode_framed_c(obj)                  # b"<len>\n" + benc: one llenc block, one copy
#     value = decode_c(ptr, length, raw, lists)     # whole buffer must be one value
#
# All of them raise exactly what the Python-level functions raise (TypeError/ValueError naming the
# value and its path for encode; splayc.errors.DecodeError with the offset for decode).

cdef enum:
    BENC_MAX_DEPTH = 1000      # nesting limit of both directions

cdef bytes encode_c(object obj)
cdef bytes encode_framed_c(object obj)
cdef object decode_c(const char* data, Py_ssize_t length, bint raw, bint lists)
cdef object decode_prefix_c(const char* data, Py_ssize_t length, Py_ssize_t* end, bint raw,
                            bint lists)

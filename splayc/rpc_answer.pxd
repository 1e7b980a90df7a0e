cdef class CompiledDispatch:
    cdef object root
    cdef object own_module
    cdef object failed
    cdef object answer(self, int mode, object request)

# Shared fast path of the RPC modules (splayc/rpc_fast.pyx), cimported by splayc/rpcq_conn.pyx:
#
#     cdef int status
#     value = read_block_value(sock, max_length, deadline_ns, &status)
#
# reads one llenc block ("<len>\n<benc>") from a connected splayc.tcp.TCP and decodes it straight
# out of the socket's receive buffer. status is one of the READ_* codes below; for anything but
# READ_OK the return value is the error message. Unlike TCP.recv_block, a timeout consumes
# nothing, so a connection whose read timed out stays in sync and usable.
#
# Running a call in place, in the thread that reads (the rpc, rpcq and urpc servers):
#
#     ctx = begin_in_place(hub, me, reader_context, on_suspend)
#     try: ...the call...
#     finally: end_in_place(hub, me, ctx)
#
# runs it in a contextvars copy of its own (a copy of ``reader_context``, or of the current one when
# it is None), the hub calling ``on_suspend()`` first, once, if the call blocks or yields.
# take_over_thread(fn, context) starts the thread that takes the reading over then: fn() in a copy
# of ``context``, the reader's own contextvars, not the suspended call's. killed_itself(hub, me)
# tells a TaskKilled raised by a call that killed its own thread from the loop's stop.
#
# block_buffered(sock) tells whether a whole block (or a malformed header) is already buffered,
# i.e. whether the next read_block_value returns without waiting: the RPC loops use it to flush
# their coalesced writes just before they would block.
from libc.stdint cimport uint64_t
from splayc.tcp cimport TCP
from splayc.hub cimport Hub, Task

cdef enum:
    READ_OK = 0
    READ_TIMEOUT = 1        # nothing consumed; the connection is still usable
    READ_CLOSED = 2         # EOF or a socket error (message: "closed", "connection reset" ...)
    READ_BAD_FRAME = 3      # not a decimal length line, or longer than max_length: close it
    READ_UNDECODABLE = 4    # a whole block that is not benc: consumed, the stream is still in sync

cdef object read_block_value(TCP s, Py_ssize_t max_length, uint64_t deadline, int* status)
cdef bint block_buffered(TCP s)
cdef Task take_over_thread(object fn, object context)
cdef object begin_in_place(Hub hub, Task me, object reader_context, object on_suspend)
cdef int end_in_place(Hub hub, Task me, object ctx) except -1
cdef bint killed_itself(Hub hub, Task me)

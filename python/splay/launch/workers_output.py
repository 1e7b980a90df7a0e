"""The merged output of ``--workers``: the lines of K worker processes in the order they were written.

Each worker stamps every line with the ``CLOCK_MONOTONIC`` time of its write (one clock for
every process of the machine; :mod:`splay.launch.workers_host`). Reading the K pipes one after
another is not enough to keep the order a one-process run has: node A (worker 1) prints, then
calls node B (worker 2), which prints; if the launcher reads worker 2's pipe first it would log
B's line before A's. :class:`WorkersMux` therefore reads *every* worker's pipe in a pass that
starts at time ``t0``, and writes only the lines stamped before ``t0``, in stamp order: any line
written before such a line finished its write before ``t0`` and so was in its pipe when the pass
read it. Later lines wait for the next pass, which follows at once. The log is then ordered as
the one-process run's is (a line written before another comes first), with the launcher's
own time-of-writing timestamps, non-decreasing as always.
"""
import heapq
import itertools
import time

from .output import OutputMux, _Stream
from .workers_host import STAMP

__all__ = ["WorkersMux"]

_STAMP = STAMP.encode()

# Passes over all the pipes one read() may make while lines wait for the pass that releases them;
# lines still waiting after them are released by the next call (the launcher calls flush() after
# every batch of events and wakes soon while lines wait: see :attr:`WorkersMux.waiting`).
MAX_PASSES = 4
# Chunks read from one pipe in one pass, so that a worker that prints without pause cannot keep
# the launcher from the others.
CHUNKS_PER_PASS = 16


class WorkersMux(OutputMux):
    """An :class:`~splay.launch.output.OutputMux` over the pipes of the workers ``procs`` (their
    ``stdout`` read ends), writing the lines of all of them in write-time order."""

    #: Seconds the launcher waits at most before the next pass while lines wait for their turn.
    WAIT = 0.005

    def __init__(self, log_path, procs, **kwargs):
        super().__init__(log_path, **kwargs)
        self.procs = procs
        self.pending = []               # heap of (stamp, arrival, index, raw line)
        self.arrival = itertools.count()
        self.ended = set()              # workers whose pipe reached its end of file

    @property
    def waiting(self):
        """True while lines read wait for the pass that releases them."""
        return bool(self.pending)

    def read(self, index, fd, max_reads=16):
        """Read every worker's pipe and write the lines that are due; ``False`` once worker
        ``index``'s pipe reached its end of file."""
        self._collect()
        return index not in self.ended

    def drain(self, index, fd):
        """Worker ``index`` ended: read what its pipe (and the others') still holds."""
        self._collect(drain=index)
        self._release(None)
        return index not in self.ended

    def flush(self):
        """Release the lines whose turn has come, then flush the log and the terminal."""
        if self.pending:
            self._collect()
        super().flush()

    def _collect(self, drain=None):
        for _ in range(MAX_PASSES):
            t0 = time.monotonic_ns()
            got = False
            for proc in self.procs:
                if proc.stdout is None or proc.index in self.ended:
                    continue
                got |= self._read_pipe(proc.index, proc.stdout, None if proc.index == drain else CHUNKS_PER_PASS)
            self._release(t0)
            if not got or not self.pending:
                return

    def _read_pipe(self, index, fd, max_chunks):
        """Read what is in ``fd`` now (all of it when ``max_chunks`` is None); True if anything."""
        got = False
        for _ in itertools.count() if max_chunks is None else range(max_chunks):
            chunk = self._read_chunk(fd)
            if chunk is None:
                break
            if not chunk:
                self.ended.add(index)
                self.flush_partial(index)
                break
            got = True
            self._add_data(index, chunk)
        return got

    def _line(self, index, stream, raw):
        """A complete line of a worker: held until its turn (see the module's docstring)."""
        stamp = 0                        # a line without a stamp (the worker's own errors): now
        if raw.startswith(_STAMP):
            end = raw.find(_STAMP, 1)
            if end > 1 and raw[1:end].isdigit():
                stamp, raw = int(raw[1:end]), raw[end + 1:]
        heapq.heappush(self.pending, (stamp, next(self.arrival), index, raw))

    def _release(self, before):
        """Write the held lines stamped before ``before`` (all with None), oldest first."""
        pending = self.pending
        while pending and (before is None or pending[0][0] < before):
            _, _, index, raw = heapq.heappop(pending)
            stream = self.streams.get(index)
            if stream is None:
                stream = self.streams[index] = _Stream(demux=True)
            OutputMux._line(self, index, stream, raw)

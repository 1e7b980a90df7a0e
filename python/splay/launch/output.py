"""Output of ``splay run``: node lines prefixed and interleaved, and one merged, time-ordered log.

Every line a node prints (stdout or stderr) is read by the launcher as soon as it arrives, stamped
with the time it was read, echoed as ``[node 3] text`` and appended to the log file as
``2026-11-24 04:57:01.123456 [node 3] text``. The launcher's own notes appear as ``[splay] text``.
Lines are written in the order they are read and stamped from a monotonic clock, so the log is
time-ordered by construction. The last lines of each node are kept for crash reports.
"""
import collections
import datetime
import json
import os
import sys
import time

#: splay.history.MARKER: node lines that start with it are operation records, kept out of the
#: console echo and the failure tails (tests/test_history.py checks the two stay equal).
HISTORY_MARKER = "[history]"

__all__ = ["Clock", "OutputMux", "TAIL_LINES"]

#: How many of a node's last lines a crash report shows.
TAIL_LINES = 20

# A line longer than this is cut into pieces of this many bytes, each written as a line (a node
# printing binary data or a huge line must not make the launcher hold unbounded memory). The cuts
# fall at the same bytes however the pipe delivered the line, and the pieces of a line of a
# multi-node process keep its node: the log of a simulation stays the same run after run.
MAX_LINE = 64 * 1024
_READ_SIZE = 64 * 1024


class Clock:
    """Wall-clock timestamps that never go backwards (wall time at start + monotonic elapsed)."""

    def __init__(self):
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self):
        """Seconds since the epoch, non-decreasing."""
        return self._wall0 + (time.monotonic() - self._mono0)

    @staticmethod
    def format(t):
        """``t`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` (local time), the log file's timestamp."""
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")


class _Stream:
    """The unread part of one pipe's output: a partial line and the tail of complete lines.

    A ``demux`` stream comes from a process hosting several nodes (``--in-process``): its lines
    carry the node they belong to (see :mod:`splay.launch.in_process`).
    """

    __slots__ = ("partial", "tail", "demux", "continued")

    def __init__(self, demux=False):
        self.partial = bytearray()
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.demux = demux
        self.continued = None     # the record tag of a cut line whose next piece comes next


# Framing of the lines of a multi-node process (kept in sync with splay.launch.in_process).
_RECORD, _UNIT, _CONTROL = b"\x1e", b"\x1f", b"\x1d"


class OutputMux:
    """Reads nodes' output pipes and writes prefixed lines to the terminal and the merged log.

    ``echo`` is the text stream node lines are echoed to (``None``: not echoed, as with
    ``--quiet``); ``notes`` the stream for the launcher's messages; ``before_write`` is called
    before anything is written to them (the progress display uses it to clear its line).
    """

    def __init__(self, log_path, echo=sys.stdout, notes=sys.stderr, clock=None, before_write=None,
                 on_control=None):
        self.clock = clock or Clock()
        self.log_path = log_path
        self.log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.echo = echo
        self.notes = notes
        self.before_write = before_write
        self.on_control = on_control
        self.on_line = None          # called with (index, text) for every node line
        self.streams = {}

    # -- reading node output -------------------------------------------------------------------

    def add(self, index, demux=False):
        """Start collecting the output of node ``index`` (a restarted node keeps its tail).

        With ``demux``, ``index`` is a process hosting several nodes: each of its lines goes to
        the node it names, and its control lines to ``on_control(dict)``.
        """
        self.streams.setdefault(index, _Stream(demux))

    def read(self, index, fd, max_reads=16):
        """Read what is available on ``fd`` (non-blocking) for node ``index``.

        Reads at most ``max_reads`` chunks, so that a node that prints without pause cannot
        starve the others. Returns ``False`` at end of file (all write ends closed), else ``True``.
        """
        for _ in range(max_reads):
            chunk = self._read_chunk(fd)
            if chunk is None:
                return True
            if not chunk:
                self.flush_partial(index)
                return False
            self._add_data(index, chunk)
        return True

    def drain(self, index, fd):
        """Read everything already in the pipe of an ended node; ``False`` if it reached end of file."""
        while True:
            chunk = self._read_chunk(fd)
            if chunk is None:
                self.flush_partial(index)
                return True
            if not chunk:
                self.flush_partial(index)
                return False
            self._add_data(index, chunk)

    @staticmethod
    def _read_chunk(fd):
        """Bytes read from ``fd``; ``b""`` at end of file; ``None`` when nothing is there now."""
        while True:
            try:
                return os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return None
            except InterruptedError:
                continue

    def _add_data(self, index, chunk):
        stream = self.streams[index]
        stream.partial += chunk
        self._split_lines(index, stream)

    def _split_lines(self, index, stream):
        buf = stream.partial
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if (nl if nl >= 0 else len(buf)) - start > MAX_LINE:
                self._piece(index, stream, bytes(buf[start:start + MAX_LINE]), last=False)
                start += MAX_LINE
                continue
            if nl < 0:
                break
            self._piece(index, stream, bytes(buf[start:nl]), last=True)
            start = nl + 1
        del buf[:start]

    def _piece(self, index, stream, raw, last):
        """One line, or one piece of a line cut at MAX_LINE (``last``: the line ends here)."""
        if stream.continued is not None:
            raw = stream.continued + raw             # the node tag of the line it continues
        elif not last and stream.demux and raw.startswith(_RECORD):
            tag_end = raw.find(_UNIT)
            if tag_end > 0:
                stream.continued = raw[:tag_end + 1]
        if last:
            stream.continued = None
        self._line(index, stream, raw)

    def flush_partial(self, index):
        """Write node ``index``'s unfinished last line, if any (at its end of output)."""
        stream = self.streams[index]
        if stream.partial:
            self._piece(index, stream, bytes(stream.partial), last=True)
            stream.partial.clear()

    def _line(self, index, stream, raw):
        if stream.demux:
            if raw.startswith(_RECORD):
                node, sep, text = raw[1:].partition(_UNIT)
                if sep and node.isdigit():
                    self.node_line(int(node), text)
                    return
            elif raw.startswith(_CONTROL) and self.on_control is not None:
                try:
                    self.on_control(json.loads(raw[1:]))
                    return
                except ValueError:
                    pass
        self.node_line(index, raw)

    def tail(self, index):
        """The last lines (up to :data:`TAIL_LINES`) node ``index`` printed."""
        stream = self.streams.get(index)
        return [] if stream is None else list(stream.tail)

    # -- writing -------------------------------------------------------------------------------

    def node_line(self, index, raw):
        """One line of node ``index`` (bytes, without newline): echo it and log it."""
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        prefix = f"[node {index}] " if isinstance(index, int) else f"[{index}] "
        self._log(prefix + text)
        if text.startswith(HISTORY_MARKER):
            return      # operation records (splay.history) go to the log, not the console
        self.streams.setdefault(index, _Stream()).tail.append(text)
        if self.on_line is not None:
            self.on_line(index, text)
        if self.echo is not None:
            self._write(self.echo, prefix + text + "\n")

    def note(self, text, show=True):
        """A message of the launcher, shown as is on ``notes`` if ``show``, logged after ``[splay]``."""
        for line in text.splitlines() or [""]:
            self._log(line if line.startswith("[splay] ") else "[splay] " + line)
        if show and self.notes is not None:
            self._write(self.notes, text + "\n")

    def _log(self, line):
        self.log.write(f"{self.clock.format(self.clock.now())} {line}\n")

    def _write(self, stream, text):
        if self.before_write is not None:
            self.before_write()
        try:
            stream.write(text)
        except BrokenPipeError:
            # Whoever read our output went away (`splay run ... | head`): keep running and
            # logging, stop echoing.
            if stream is self.echo:
                self.echo = None
            else:
                self.notes = None

    def flush(self):
        """Push buffered text to the log file and the terminal (called after each batch of reads)."""
        self.log.flush()
        for stream in (self.echo, self.notes):
            if stream is not None:
                try:
                    stream.flush()
                except BrokenPipeError:
                    if stream is self.echo:
                        self.echo = None
                    else:
                        self.notes = None

    def close(self):
        """Flush and close the log file."""
        self.flush()
        self.log.close()

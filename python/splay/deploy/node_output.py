"""Node output in files that outlive the daemon, so that a killed daemon loses none of it.

A node's stdout and stderr are not pipes to the daemon but files (one per stream and node life)
that the node appends to and the daemon reads as they grow. A pipe's content dies with its
reader: a daemon killed with SIGKILL lost the lines still in its nodes' pipes. A file keeps them:
the restarted daemon reads every file a previous run of itself left, from the offset up to which
that run had put lines into its report spool (the offsets travel in the spooled ``log`` records,
see :mod:`.report_spool`), so each line is reported once, after the lines reported before it.

The files live in RAM (``/dev/shm/splayd-HASH``, HASH naming the daemon's directory) when
``/dev/shm`` is writable, else in ``DIR/output``: a full disk (the daemon's directory) does not
make a node's ``print`` fail, and the files do not count in the node's disk quota. The space of
lines already spooled is given back as the daemon goes (holes punched in the file), and a life's
files are deleted once all their lines are in the spool.

A sandboxed node's output per life counts in its file-size limit (RLIMIT_FSIZE, which the sandbox
sets to ``--max-disk`` and lowers as the node fills its directory): the file's offset grows with
every byte printed, even though its space is freed, and a write past the limit ends the node
(SIGXFSZ). ``splayd --node-output pipe`` gives nodes pipes instead (no such limit, but what is
still in a pipe dies with a killed daemon).
"""
import ctypes
import hashlib
import logging
import os
import uuid

log = logging.getLogger("splay.daemon")

RAM_ROOT = "/dev/shm"
READ_CHUNK = 65536
MAX_READ_PER_POLL = 2**20      # bytes read from one file per poll (others get their turn)
LINE_LIMIT = 2**20             # a longer line is forwarded in pieces of this size
PUNCH_EVERY = 2**20            # give back the space of spooled lines once this much piled up
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def output_directory(base_dir):
    """Where the daemon working in ``base_dir`` keeps its nodes' output files."""
    root = RAM_ROOT if os.path.isdir(RAM_ROOT) and os.access(RAM_ROOT, os.W_OK) else \
        os.path.join(base_dir, "output")
    digest = hashlib.sha256(os.path.abspath(base_dir).encode()).hexdigest()[:16]
    return os.path.join(root, f"splayd-{digest}")


class OutputFile:
    """One output stream of one node life: the file the node appends to, read by the daemon.

    ``offset`` is where the next unread line starts; ``spooled`` the end of the last line that
    is in the daemon's report spool; ``queued`` counts lines handed on but not yet spooled."""

    def __init__(self, path, instance_id, stream, offset=0):
        self.path = path
        self.key = os.path.basename(path)
        self.instance_id = instance_id
        self.stream = stream
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)     # writable: to punch holes
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.offset = offset
        self.partial = b""
        self.spooled = offset
        self.punched = 0
        self.queued = 0
        self.finished = False          # the life ended and its file was read to the end

    def read_lines(self, final=False):
        """The lines appended since the last call, as [(bytes without newline, end offset)].
        ``final``: the life is over, so an unterminated last line counts too."""
        lines = []
        budget = MAX_READ_PER_POLL if not final else None
        while budget is None or budget > 0:
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                break
            if budget is not None:
                budget -= len(chunk)
            data = self.partial + chunk
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                self.offset += end + 1 - start
                lines.append((data[start:end], self.offset))
                start = end + 1
            self.partial = data[start:]
            while len(self.partial) >= LINE_LIMIT:
                piece, self.partial = self.partial[:LINE_LIMIT], self.partial[LINE_LIMIT:]
                self.offset += len(piece)
                lines.append((piece, self.offset))
        if final and self.partial:
            self.offset += len(self.partial)
            lines.append((self.partial, self.offset))
            self.partial = b""
        return lines

    def now_spooled(self, offset):
        """The lines up to ``offset`` are in the spool: free the space before it now and then."""
        self.spooled = max(self.spooled, offset)
        start = self.punched
        end = self.spooled & ~4095
        if end - start >= PUNCH_EVERY:
            if _libc.fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, start,
                               end - start) == 0:
                self.punched = end
            else:
                self.punched = end      # not supported here: the file keeps its size
                log.debug("cannot punch holes in %s (errno %d)", self.path, ctypes.get_errno())

    def remove(self):
        """Close and delete the file (its lines are all spooled)."""
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class NodeOutputs:
    """The output files of one daemon's nodes, in ``directory``; ``spool`` is the daemon's
    :class:`~.report_spool.ReportSpool`, which keeps how far each file was reported."""

    def __init__(self, directory, spool):
        self.directory = directory
        self.spool = spool
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def create(self, job_ref, instance_id, stream):
        """A new file for one stream of a node life: returns (the descriptor the node writes
        to, opened for appending; the daemon's :class:`OutputFile`)."""
        name = f"{job_ref}.{instance_id}.{stream}.{uuid.uuid4().hex[:12]}"
        path = os.path.join(self.directory, name)
        write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                           0o600)
        return write_fd, OutputFile(path, instance_id, stream)

    def done(self, output):
        """``output``'s life ended and the file was read to its end: delete it once all its
        lines are in the spool."""
        output.finished = True
        if output.queued == 0:
            self._remove(output)

    def spooled(self, marks):
        """The lines of ``marks`` ([(OutputFile, offset of a line's end)]) are now in the spool
        (or were dropped): free their files' space, and delete the files of ended lives that
        have nothing left to spool."""
        for output, offset in marks:
            output.queued -= 1
            output.now_spooled(offset)
            if output.finished and output.queued == 0:
                self._remove(output)

    def _remove(self, output):
        output.remove()
        self.spool.forget_offset(output.key)

    def left_behind(self, spooled_offsets):
        """The files a previous run of this daemon left, each opened at the offset up to which
        that run spooled its lines (``spooled_offsets``: {file name: offset}); oldest first."""
        found = []
        for name in os.listdir(self.directory):
            parts = name.rsplit(".", 3)
            path = os.path.join(self.directory, name)
            if len(parts) != 4 or not parts[1].isdigit():
                log.warning("node output: %s is not an output file; removed", path)
                os.unlink(path)
                continue
            _, instance_id, stream, _ = parts
            offset = int(spooled_offsets.get(name, 0))
            found.append((os.stat(path).st_mtime, OutputFile(path, int(instance_id), stream,
                                                             offset)))
        return [f for _, f in sorted(found, key=lambda x: x[0])]

    def remove_directory(self):
        """Delete the (empty) directory at a clean stop; left alone when files remain."""
        try:
            os.rmdir(self.directory)
        except OSError:
            pass


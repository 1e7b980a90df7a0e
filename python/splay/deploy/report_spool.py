"""The daemon's spool of reports the controller has not acknowledged yet (at-least-once delivery).

Every report that changes what the controller knows -- an instance's end (``exited``), a churn
action (``churn``) and a batch of output lines (``log``) -- gets the next sequence number of this
daemon and is appended to ``DIR/records.jsonl`` before it is sent. The controller answers ``ack``
with the highest number it has applied; acknowledged records are dropped. After a reconnection the
controller's ``welcome`` says which number it applied last, and the daemon sends everything after
it again, in order: nothing printed or changed while the controller was away (or while the daemon
itself was killed and restarted) is lost.

Numbers belong to an *incarnation*, a random id kept in ``DIR/meta.json``: when the directory is
lost, the next spool starts a new incarnation at 1 and the controller does not mistake its records
for repeats. The spool is bounded (``max_bytes``): past it the oldest unacknowledged records are
dropped, and the count of dropped records and lines goes to the controller in the next hello.

A ``log`` record may carry ``offsets`` ({output file name: offset}): how far its lines reach in
the nodes' output files (:mod:`.node_output`). The spool keeps the furthest offset of every file
(in the records, and in the meta file once they are compacted away), so that a restarted daemon
reads each file on from where the lines in its spool end.

Records are written without fsync: a killed daemon loses nothing (the kernel keeps the writes),
only a crash of the host itself can. When the disk is full, records stay in memory (still resent
while this daemon lives) and writing resumes at the next compaction that succeeds.
"""
import collections
import json
import logging
import os
import uuid

log = logging.getLogger("splay.daemon")

REPORTED = frozenset({"exited", "churn", "log"})
MAX_SPOOL_BYTES = 64 * 2**20
COMPACT_BYTES = 2**20          # rewrite the file once this much of it is acknowledged


class ReportSpool:
    """Sequence numbers, and the unacknowledged reports on disk in ``directory``."""

    def __init__(self, directory, max_bytes=MAX_SPOOL_BYTES):
        self.directory = directory
        self.max_bytes = max_bytes
        self.records = collections.deque()     # (seq, message, size), oldest first
        self.bytes = 0                         # size of self.records
        self.dead_bytes = 0                    # acknowledged bytes still in the file
        self.dropped = {"messages": 0, "lines": 0}
        self.disk_ok = True
        self.file = None
        os.makedirs(directory, exist_ok=True)
        meta = self._read_meta()
        self.incarnation = meta.get("incarnation") or uuid.uuid4().hex
        self.acked = int(meta.get("acked", 0))
        self.dropped_through = int(meta.get("dropped_through", 0))   # newest record dropped
        self.dropped = {k: int(meta.get("dropped", {}).get(k, 0)) for k in self.dropped}
        self.offsets = {str(k): int(v) for k, v in (meta.get("offsets") or {}).items()}
        self._load()
        self.next_seq = max([self.acked, self.dropped_through] + [r[0] for r in self.records]) + 1
        self._rewrite()

    @property
    def records_path(self):
        """The file of unacknowledged records, one JSON message per line."""
        return os.path.join(self.directory, "records.jsonl")

    @property
    def meta_path(self):
        """The file of the incarnation, the last acknowledged number and the overflow counts."""
        return os.path.join(self.directory, "meta.json")

    def _read_meta(self):
        try:
            with open(self.meta_path) as f:
                meta = json.load(f)
            return meta if isinstance(meta, dict) else {}
        except (OSError, ValueError):
            return {}

    def _load(self):
        """The records of a previous run of this daemon (a torn last line is skipped)."""
        try:
            with open(self.records_path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError:
            return
        for line in lines:
            try:
                message = json.loads(line)
                seq = int(message["seq"])
                self._note_offsets(message)      # acknowledged or not, its lines are reported
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
            if seq > max(self.acked, self.dropped_through) and (not self.records or seq > self.records[-1][0]):
                self.records.append((seq, message, len(line) + 1))
                self.bytes += len(line) + 1
        if self.records:
            log.info("report spool: %d report(s) of a previous run not yet acknowledged",
                     len(self.records))

    def _rewrite(self):
        """Write the file anew with the unacknowledged records only, and the meta file."""
        if self.file is not None:
            self.file.close()
            self.file = None
        try:
            # The meta file first: it keeps the offsets of the records the new file drops.
            _write_json(self.meta_path, self._meta())
            tmp = self.records_path + ".tmp"
            with open(tmp, "wb") as f:
                for _, message, _ in self.records:
                    f.write(_line(message))
            os.replace(tmp, self.records_path)
            self.file = open(self.records_path, "ab")
        except OSError as e:
            self._disk_failed(e)
            return
        if not self.disk_ok:
            log.warning("report spool: writing to %s again", self.directory)
        self.disk_ok = True
        self.dead_bytes = 0

    def _disk_failed(self, error):
        if self.disk_ok:
            log.warning("report spool: cannot write to %s (%s); keeping reports in memory",
                        self.directory, error.strerror or error)
        self.disk_ok = False
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None

    def append(self, message):
        """Give ``message`` the next sequence number and keep it until acknowledged; returns it."""
        message = dict(message, seq=self.next_seq)
        self.next_seq += 1
        self._note_offsets(message)
        line = _line(message)
        self.records.append((message["seq"], message, len(line)))
        self.bytes += len(line)
        if self.file is not None:
            try:
                self.file.write(line)
                self.file.flush()
            except OSError as e:
                self._disk_failed(e)
        if self.bytes > self.max_bytes and len(self.records) > 1:
            while self.bytes > self.max_bytes and len(self.records) > 1:
                self._drop_oldest()
            if self.dead_bytes >= min(COMPACT_BYTES, self.max_bytes):
                self._rewrite()
            else:
                self._write_meta()      # a restarted daemon must not resend the dropped ones
        return message

    def _note_offsets(self, message):
        for name, offset in (message.get("offsets") or {}).items():
            if int(offset) > self.offsets.get(name, 0):
                self.offsets[name] = int(offset)

    def forget_offset(self, name):
        """The output file ``name`` is gone: its offset need not be kept any more."""
        self.offsets.pop(name, None)

    def _drop_oldest(self):
        seq, message, size = self.records.popleft()
        self.dropped_through = seq
        self.bytes -= size
        self.dead_bytes += size
        self.dropped["messages"] += 1
        self.dropped["lines"] += len(message.get("lines") or ())
        if self.dropped["messages"] == 1 or self.dropped["messages"] % 1000 == 0:
            log.warning("report spool over %d bytes: %d report(s) (%d output line(s)) dropped "
                        "so far", self.max_bytes, self.dropped["messages"], self.dropped["lines"])

    def ack(self, seq):
        """The controller applied every report up to ``seq``: forget them."""
        if seq <= self.acked:
            return
        self.acked = seq
        while self.records and self.records[0][0] <= seq:
            _, _, size = self.records.popleft()
            self.bytes -= size
            self.dead_bytes += size
        # No disk write per ack (it would cost the daemon's loop time at every batch): the file
        # is compacted once 1 MiB of it is acknowledged; a daemon killed before that resends
        # acknowledged reports, which the controller recognises as repeats.
        if self.dead_bytes >= COMPACT_BYTES or not self.disk_ok:
            self._rewrite()

    def _write_meta(self):
        try:
            _write_json(self.meta_path, self._meta())
        except OSError as e:
            self._disk_failed(e)

    def _meta(self):
        return {"incarnation": self.incarnation, "acked": self.acked, "dropped": self.dropped,
                "dropped_through": self.dropped_through, "offsets": self.offsets}

    def pending(self):
        """The unacknowledged reports, oldest first (to send again after a reconnection)."""
        return [message for _, message, _ in self.records]

    def overflow_reported(self):
        """The controller was told about the dropped reports (in a hello it accepted)."""
        if self.dropped["messages"]:
            self.dropped = {"messages": 0, "lines": 0}
            self._rewrite()

    def close(self):
        """Compact and close the file (the unacknowledged records stay for the next run)."""
        self._rewrite()
        if self.file is not None:
            self.file.close()
            self.file = None


def _line(message):
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)

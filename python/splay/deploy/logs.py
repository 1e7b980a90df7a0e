"""Job logs: lines from every node, put on the controller's clock, stored, and followed live.

Each daemon stamps a line with its own clock when it reads it. The controller knows each daemon's
clock offset (estimated from ping/pong round trips) and stores ``daemon time - offset``, so lines
of different hosts sort by the controller's clock. Within one node, times never go backwards.
"""
import threading
import time

from .log_limits import dropped_in_marker


class LogHub:
    """Stores log lines and wakes readers waiting for new lines of a job."""

    def __init__(self, database):
        self.database = database
        self.changed = threading.Condition()
        self.last_time = {}      # instance id -> last stored time, to keep each node monotonic
        self.ingested = 0        # lines stored since start (for figures)
        self.dropped = {}        # job id -> output lines the daemons dropped (their markers' sum)

    def ingest(self, job_of, offset, lines, store=None):
        """Store ``lines`` ([instance_id, daemon_time, stream, text]) from a daemon whose clock is
        ``offset`` seconds ahead of ours. ``job_of(instance_id)`` gives the job, or None for an
        unknown instance (its lines are dropped). ``store(rows)``, when given, stores the rows
        instead of ``Database.add_logs`` (a numbered report stores them with its mark; it is
        called even with no rows). Returns the number of lines stored."""
        rows = []
        for instance_id, stamp, stream, text in lines:
            job_id = job_of(instance_id)
            if job_id is None:
                continue
            at = stamp - offset
            previous = self.last_time.get(instance_id)
            if previous is None:
                # First line of this node since the controller started: its earlier lines may
                # have been stored under another clock-offset estimate.
                previous = self.database.last_log_time(job_id, instance_id)
            if previous is not None and at <= previous:
                at = previous + 1e-6
            self.last_time[instance_id] = at
            rows.append((job_id, instance_id, at, stream, text))
            dropped = dropped_in_marker(stream, text)
            if dropped:
                self.dropped[job_id] = self.dropped.get(job_id, 0) + dropped
        if store is not None:
            store(rows)
        elif rows:
            self.database.add_logs(rows)
        if rows:
            self.ingested += len(rows)
            with self.changed:
                self.changed.notify_all()
        return len(rows)

    def note(self, job_id, text):
        """Store a line from the controller itself about a job (state changes, errors)."""
        self.database.add_logs([(job_id, None, time.time(), "controller", text)])
        with self.changed:
            self.changed.notify_all()

    def read(self, job_id, after=0, limit=10000, wait=0.0, after_time=None, finished=None):
        """Lines of a job after a cursor (see ``Database.logs``); when there are none yet, wait
        up to ``wait`` seconds for some to arrive, unless ``finished()`` says none will."""
        deadline = time.monotonic() + wait
        while True:
            rows = self.database.logs(job_id, after, limit, after_time)
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0 or (finished is not None and finished()):
                return rows
            with self.changed:
                self.changed.wait(min(remaining, 1.0))


def format_line(row, width=4):
    """One stored line as text: ISO time (ms), node position (or 'ctl'), the text."""
    stamp = time.strftime("%H:%M:%S", time.localtime(row["ts"])) + f".{int(row['ts'] % 1 * 1000):03d}"
    who = "ctl" if row["instance_id"] is None else (
        str(row["position"]) if row["position"] is not None else f"i{row['instance_id']}")
    return f"{stamp} [{who:>{width}}] {row['line']}"

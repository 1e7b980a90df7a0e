"""The controller's side of at-least-once reporting: apply each numbered report exactly once.

A daemon numbers its reports (see :mod:`splay.deploy.report_spool`) and sends the unacknowledged
ones again after every reconnection, so the controller sees some twice. It keeps, per daemon and
incarnation, the highest number applied (table ``report_marks``, so that it survives a restart of
the controller) and skips anything at or below it. Reports of one daemon arrive in order (one TCP
stream, resent in order), so one number per daemon is the whole state.

Output lines are stored in the same transaction as the new mark: a controller killed in between
stores them either with their mark or not at all. A state change (an end, a churn action) is
applied and then marked; killed in between, the controller applies that one change again, which
sets the same state once more.
"""
import logging
import time

log = logging.getLogger("splay.controller")

SCHEMA = ("CREATE TABLE IF NOT EXISTS report_marks (daemon TEXT NOT NULL, incarnation TEXT NOT "
          "NULL, last_seq {bigint} NOT NULL, updated_at {real}, PRIMARY KEY (daemon, incarnation))")
UPSERT = ("INSERT INTO report_marks (daemon, incarnation, last_seq, updated_at) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (daemon, incarnation) DO UPDATE SET last_seq = excluded.last_seq, "
          "updated_at = excluded.updated_at")
INSERT_LOGS = "INSERT INTO logs (job_id, instance_id, ts, stream, line) VALUES (?, ?, ?, ?, ?)"


class ReportMarks:
    """The highest report number applied per (daemon name, incarnation), in the database."""

    def __init__(self, database):
        self.db = database
        self.db._run(SCHEMA.format(**database.types))

    def last(self, daemon, incarnation):
        """The highest number applied for this daemon's incarnation (0: none yet). Marks of the
        daemon's other incarnations are forgotten: their spools are gone."""
        with self.db.lock:
            self.db._run("DELETE FROM report_marks WHERE daemon = ? AND incarnation <> ?",
                         (daemon, incarnation))
            rows = self.db._run("SELECT last_seq FROM report_marks WHERE daemon = ? AND "
                                "incarnation = ?", (daemon, incarnation), fetch=True)
        return int(rows[0]["last_seq"]) if rows else 0

    def record(self, daemon, incarnation, seq, log_rows=()):
        """Mark report ``seq`` applied, storing its ``log_rows`` (job_id, instance_id, time,
        stream, text) in the same transaction."""
        with self.db._transaction() as cursor:
            if log_rows:
                cursor.executemany(self.db._sql(INSERT_LOGS), log_rows)
            cursor.execute(self.db._sql(UPSERT), (daemon, incarnation, seq, time.time()))


class ReportReceiver:
    """One daemon session's numbered reports: which to apply, which to skip, what to ack."""

    def __init__(self, marks, daemon, incarnation, stats):
        self.marks = marks
        self.daemon = daemon
        self.incarnation = incarnation
        self.stats = stats
        self.applied = marks.last(daemon, incarnation)

    def is_repeat(self, seq):
        """True for a report already applied (counted in ``reports_repeated``)."""
        if seq <= self.applied:
            self.stats["reports_repeated"] = self.stats.get("reports_repeated", 0) + 1
            return True
        if seq != self.applied + 1:
            missing = seq - self.applied - 1
            self.stats["reports_missing"] = self.stats.get("reports_missing", 0) + missing
            log.warning("daemon %s: %d report(s) before number %d never arrived (its spool "
                        "overflowed or was lost)", self.daemon, missing, seq)
        return False

    def applied_now(self, seq, log_rows=()):
        """Report ``seq`` is applied (its ``log_rows`` are stored with the mark)."""
        self.marks.record(self.daemon, self.incarnation, seq, log_rows)
        self.applied = seq
        self.stats["reports_applied"] = self.stats.get("reports_applied", 0) + 1

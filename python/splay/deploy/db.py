"""The controller's data layer: one API over SQLite (default) and PostgreSQL, with migrations.

``open_database(url)`` takes a file path / ``sqlite:///path`` / ``:memory:`` for SQLite, or a
``postgresql://`` URL (needs the ``psycopg`` package, imported only then). Every method runs in one
short transaction under a lock, so the asyncio loop and the HTTP threads can share one object.

Rows come back as plain dicts. SQL is written once with ``?`` placeholders; the PostgreSQL backend
rewrites them to ``%s``.
"""
import contextlib
import json
import sqlite3
import threading
import time
import uuid

# Each migration is a list of statements; {pk}, {real}, {bigint} differ between the two backends.
MIGRATIONS = [
    (1, [
        """CREATE TABLE daemons (id {pk}, name TEXT UNIQUE NOT NULL, ip TEXT NOT NULL,
           limits TEXT NOT NULL, state TEXT NOT NULL, clock_offset {real} NOT NULL DEFAULT 0,
           connected_at {real}, last_seen {real})""",
        """CREATE TABLE jobs (id {pk}, ref TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
           code TEXT NOT NULL, nb_nodes INTEGER NOT NULL, list_size INTEGER NOT NULL,
           list_type TEXT NOT NULL, factor {real} NOT NULL, max_time {real}, memory {bigint},
           settings TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
           created_at {real} NOT NULL, running_at {real}, ended_at {real})""",
        """CREATE TABLE instances (id {pk}, job_id INTEGER NOT NULL REFERENCES jobs(id),
           daemon_id INTEGER NOT NULL REFERENCES daemons(id), position INTEGER, ip TEXT,
           port INTEGER, state TEXT NOT NULL, exit_code INTEGER, pid INTEGER,
           reason TEXT NOT NULL DEFAULT '', started_at {real}, ended_at {real})""",
        "CREATE INDEX instances_job ON instances(job_id)",
        "CREATE INDEX instances_daemon ON instances(daemon_id, state)",
        """CREATE TABLE logs (id {pk}, job_id INTEGER NOT NULL, instance_id INTEGER,
           ts {real} NOT NULL, stream TEXT NOT NULL, line TEXT NOT NULL)""",
        "CREATE INDEX logs_job_ts ON logs(job_id, ts)",
    ]),
    # Churn replay on deployments: the trace of a job ({"times": [[...], ...], "speed": x}, JSON)
    # and the controller time its replay started (t = 0 of the trace).
    (2, [
        "ALTER TABLE jobs ADD COLUMN churn TEXT",
        "ALTER TABLE jobs ADD COLUMN churn_t0 {real}",
    ]),
    # The metrics store of deployed jobs (metrics_store.py): node samples (``t``: the controller
    # time of the sample, ``sec``: its whole second, ``res``: the seconds one row stands for
    # after downsampling, ``received``: when it was stored), timeline events, lost samples.
    (3, [
        """CREATE TABLE metric_samples (id {pk}, job_id INTEGER NOT NULL, node INTEGER NOT NULL,
           t {real} NOT NULL, sec {bigint} NOT NULL, res INTEGER NOT NULL,
           received {real} NOT NULL, data TEXT NOT NULL)""",
        "CREATE INDEX metric_samples_job_sec ON metric_samples(job_id, sec)",
        "CREATE INDEX metric_samples_job_received ON metric_samples(job_id, received)",
        """CREATE TABLE metric_events (id {pk}, job_id INTEGER NOT NULL, t {real} NOT NULL,
           kind TEXT NOT NULL, node INTEGER, detail TEXT NOT NULL)""",
        "CREATE INDEX metric_events_job_t ON metric_events(job_id, t)",
        """CREATE TABLE metric_jobs (job_id INTEGER PRIMARY KEY,
           dropped {bigint} NOT NULL DEFAULT 0)""",
    ]),
]

DAEMON_FIELDS = {"name", "ip", "limits", "state", "clock_offset", "connected_at", "last_seen"}
JOB_FIELDS = {"name", "state", "reason", "running_at", "ended_at", "churn_t0"}
INSTANCE_FIELDS = {"daemon_id", "position", "ip", "port", "state", "exit_code", "pid", "reason",
                   "started_at", "ended_at"}


def open_database(url):
    """A Database for ``url`` (SQLite path or URL, or a ``postgresql://`` URL), migrated."""
    if url.startswith(("postgresql://", "postgres://")):
        database = PostgresDatabase(url)
    else:
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
        database = SQLiteDatabase(path)
    database.migrate()
    return database


def redact(url):
    """``url`` without its password, for logs and messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


class Database:
    """Controller state: daemons, jobs, instances and log lines. Subclasses give the connection."""

    placeholder = "?"
    types = {}

    def __init__(self):
        self.lock = threading.RLock()

    # -- backend primitives ------------------------------------------------------------------
    def _sql(self, sql):
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _run(self, sql, params=(), fetch=False, many=False):
        with self.lock:
            cursor = self.conn.cursor()
            try:
                if many:
                    cursor.executemany(self._sql(sql), params)
                else:
                    cursor.execute(self._sql(sql), params)
                rows = None
                if fetch:
                    names = [d[0] for d in cursor.description]
                    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
                self.conn.commit()
                return rows
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                cursor.close()

    @contextlib.contextmanager
    def _transaction(self):
        """A cursor inside one transaction (committed at the end, rolled back on error)."""
        with self.lock:
            cursor = self.conn.cursor()
            try:
                yield cursor
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                cursor.close()

    def _insert(self, sql, params):
        return self._run(sql + " RETURNING id", params, fetch=True)[0]["id"]

    def _update(self, table, allowed, ids, fields):
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {table}.{', '.join(sorted(unknown))}")
        if not ids or not fields:
            return
        names = sorted(fields)
        assignments = ", ".join(f"{name} = ?" for name in names)
        values = [fields[name] for name in names]
        self._run(f"UPDATE {table} SET {assignments} WHERE id = ?",
                  [values + [i] for i in ids], many=True)

    def migrate(self):
        """Apply the migrations this database has not seen yet (recorded in schema_migrations)."""
        with self.lock:
            self._run("CREATE TABLE IF NOT EXISTS schema_migrations "
                      "(version INTEGER PRIMARY KEY, applied_at " + self.types["real"] + ")")
            done = {r["version"] for r in self._run("SELECT version FROM schema_migrations",
                                                     fetch=True)}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                with self._transaction() as cursor:     # one migration, all or nothing
                    for statement in statements:
                        cursor.execute(statement.format(**self.types))
                    cursor.execute(self._sql("INSERT INTO schema_migrations VALUES (?, ?)"),
                                   (version, time.time()))

    def schema_version(self):
        """The highest migration applied."""
        rows = self._run("SELECT MAX(version) AS v FROM schema_migrations", fetch=True)
        return rows[0]["v"] or 0

    def close(self):
        """Close the connection."""
        with self.lock:
            self.conn.close()

    # -- daemons -----------------------------------------------------------------------------
    def daemon_connected(self, name, ip, limits, now):
        """Record a daemon that (re)connected; returns its id (stable across reconnections)."""
        with self.lock:
            rows = self._run("SELECT id FROM daemons WHERE name = ?", (name,), fetch=True)
            if rows:
                self._update("daemons", DAEMON_FIELDS, [rows[0]["id"]], {
                    "ip": ip, "limits": json.dumps(limits), "state": "CONNECTED",
                    "connected_at": now, "last_seen": now})
                return rows[0]["id"]
            return self._insert(
                "INSERT INTO daemons (name, ip, limits, state, connected_at, last_seen) "
                "VALUES (?, ?, ?, 'CONNECTED', ?, ?)", (name, ip, json.dumps(limits), now, now))

    def update_daemon(self, daemon_id, **fields):
        """Set some columns of one daemon."""
        if "limits" in fields:
            fields["limits"] = json.dumps(fields["limits"])
        self._update("daemons", DAEMON_FIELDS, [daemon_id], fields)

    def daemons(self):
        """All daemons ever seen, with their limits decoded and their live instance count."""
        rows = self._run(
            "SELECT d.*, (SELECT COUNT(*) FROM instances i WHERE i.daemon_id = d.id AND "
            "i.state IN ('REGISTERED', 'STARTING', 'RUNNING', 'DOWN')) AS instances "
            "FROM daemons d ORDER BY d.id", fetch=True)
        for row in rows:
            row["limits"] = json.loads(row["limits"])
        return rows

    def set_daemons_state(self, old_state, new_state):
        """Change every daemon in ``old_state`` to ``new_state`` (at controller start)."""
        self._run("UPDATE daemons SET state = ? WHERE state = ?", (new_state, old_state))

    # -- jobs --------------------------------------------------------------------------------
    def add_job(self, name, code, nb_nodes, list_size, list_type, factor, max_time, memory,
                settings, state, reason="", churn=None):
        """Insert a job; returns its row (with a fresh ``ref``). ``churn``: its churn replay,
        ``{"times": [[up, down, ...] per node], "speed": x}``, or None."""
        ref = uuid.uuid4().hex[:12]
        job_id = self._insert(
            "INSERT INTO jobs (ref, name, code, nb_nodes, list_size, list_type, factor, max_time, "
            "memory, settings, state, reason, created_at, churn) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ref, name, code, nb_nodes, list_size, list_type, factor, max_time, memory,
             json.dumps(settings or {}), state, reason, time.time(),
             None if churn is None else json.dumps(churn)))
        return self.job(job_id)

    def job(self, job_id):
        """One job by id (int) or ref (str), or None."""
        column = "id" if isinstance(job_id, int) else "ref"
        rows = self._run(f"SELECT * FROM jobs WHERE {column} = ?", (job_id,), fetch=True)
        if not rows:
            return None
        rows[0]["settings"] = json.loads(rows[0]["settings"])
        rows[0]["churn"] = json.loads(rows[0]["churn"]) if rows[0]["churn"] else None
        return rows[0]

    def jobs(self, states=None):
        """Jobs (without their code), newest first, optionally only those in ``states``."""
        sql = ("SELECT id, ref, name, nb_nodes, list_size, list_type, factor, max_time, memory, "
               "state, reason, created_at, running_at, ended_at FROM jobs")
        params = ()
        if states:
            sql += " WHERE state IN (" + ", ".join("?" * len(states)) + ")"
            params = tuple(states)
        return self._run(sql + " ORDER BY id DESC", params, fetch=True)

    def update_job(self, job_id, **fields):
        """Set some columns of one job."""
        self._update("jobs", JOB_FIELDS, [job_id], fields)

    def update_job_settings(self, job_id, settings):
        """Replace the settings (a JSON object) of one job: results computed for it afterwards,
        such as a Maelstrom job's verdict."""
        self._run("UPDATE jobs SET settings = ? WHERE id = ?", (json.dumps(settings), job_id))

    # -- instances ---------------------------------------------------------------------------
    def add_instances(self, job_id, daemon_ids, state):
        """Insert one instance per entry of ``daemon_ids``; returns their ids in the same order."""
        sql = self._sql("INSERT INTO instances (job_id, daemon_id, state) VALUES (?, ?, ?) "
                        "RETURNING id")
        ids = []
        with self._transaction() as cursor:
            for daemon_id in daemon_ids:
                cursor.execute(sql, (job_id, daemon_id, state))
                ids.append(cursor.fetchone()[0])
        return ids

    def update_instances(self, instance_ids, **fields):
        """Set the same columns on several instances."""
        self._update("instances", INSTANCE_FIELDS, list(instance_ids), fields)

    def update_instances_each(self, updates, only_states=None):
        """Set per-instance columns: ``updates`` maps instance id -> {column: value}. With
        ``only_states``, rows in any other state are left alone (a late report must not revive an
        instance whose end was already recorded)."""
        guard, guard_params = "", []
        if only_states:
            guard = " AND state IN (" + ", ".join("?" * len(only_states)) + ")"
            guard_params = list(only_states)
        with self._transaction() as cursor:
            for instance_id, fields in updates.items():
                unknown = set(fields) - INSTANCE_FIELDS
                if unknown:
                    raise ValueError(f"cannot update instances.{', '.join(sorted(unknown))}")
                names = sorted(fields)
                cursor.execute(self._sql("UPDATE instances SET " + ", ".join(
                    f"{name} = ?" for name in names) + " WHERE id = ?" + guard),
                    [fields[name] for name in names] + [instance_id] + guard_params)

    def instances(self, job_id=None, daemon_id=None, states=None):
        """Instances of a job and/or a daemon, optionally only those in ``states``, by id."""
        clauses, params = [], []
        if job_id is not None:
            clauses.append("i.job_id = ?")
            params.append(job_id)
        if daemon_id is not None:
            clauses.append("i.daemon_id = ?")
            params.append(daemon_id)
        if states:
            clauses.append("i.state IN (" + ", ".join("?" * len(states)) + ")")
            params.extend(states)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._run("SELECT i.*, d.name AS daemon, d.state AS daemon_state FROM instances i "
                         "JOIN daemons d ON d.id = i.daemon_id" + where + " ORDER BY i.id", tuple(params), fetch=True)

    def instance(self, instance_id):
        """One instance by id, or None."""
        rows = self._run("SELECT * FROM instances WHERE id = ?", (instance_id,), fetch=True)
        return rows[0] if rows else None

    def job_of_instance(self, instance_id):
        """The job id of an instance, or None."""
        rows = self._run("SELECT job_id FROM instances WHERE id = ?", (instance_id,), fetch=True)
        return rows[0]["job_id"] if rows else None

    def delete_instances(self, instance_ids):
        """Forget instances that were never used (registrations beyond the nodes needed)."""
        self._run("DELETE FROM instances WHERE id = ?", [(i,) for i in instance_ids], many=True)

    # -- logs --------------------------------------------------------------------------------
    def add_logs(self, rows):
        """Append log lines: ``rows`` of (job_id, instance_id, time, stream, text)."""
        if rows:
            self._run("INSERT INTO logs (job_id, instance_id, ts, stream, line) "
                      "VALUES (?, ?, ?, ?, ?)", rows, many=True)

    def logs(self, job_id, after=0, limit=10000, after_time=None):
        """Up to ``limit`` lines of a job. Without ``after_time``: lines with id > ``after`` in
        arrival order (to follow a job). With it: in time order, strictly after the line
        (``after_time``, ``after``) (to page through a job's log)."""
        sql = ("SELECT l.id, l.instance_id, l.ts, l.stream, l.line, i.position "
               "FROM logs l LEFT JOIN instances i ON i.id = l.instance_id WHERE l.job_id = ? ")
        if after_time is None:
            return self._run(sql + "AND l.id > ? ORDER BY l.id LIMIT ?", (job_id, after, limit),
                             fetch=True)
        return self._run(sql + "AND (l.ts > ? OR (l.ts = ? AND l.id > ?)) ORDER BY l.ts, l.id "
                         "LIMIT ?", (job_id, after_time, after_time, after, limit), fetch=True)

    def last_log_time(self, job_id, instance_id):
        """The time of an instance's newest stored line, or None (a restarted controller keeps
        each node's times from going backwards with it)."""
        rows = self._run("SELECT MAX(ts) AS m FROM logs WHERE job_id = ? AND instance_id = ?",
                         (job_id, instance_id), fetch=True)
        return rows[0]["m"]

    def last_log_id(self, job_id):
        """The id of a job's newest line (0 when none)."""
        rows = self._run("SELECT MAX(id) AS m FROM logs WHERE job_id = ?", (job_id,), fetch=True)
        return rows[0]["m"] or 0

    # -- metrics (see metrics_store.py) ------------------------------------------------------
    def add_metric_samples(self, rows):
        """Append samples: ``rows`` of (job_id, node, t, sec, res, received, data JSON)."""
        if rows:
            self._run("INSERT INTO metric_samples (job_id, node, t, sec, res, received, data) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)", rows, many=True)

    def delete_metric_samples_at(self, keys):
        """Delete the samples of ``keys``: (job_id, node, sec) -- a second written again."""
        if keys:
            self._run("DELETE FROM metric_samples WHERE job_id = ? AND node = ? AND sec = ?",
                      list(keys), many=True)

    def metric_samples(self, job_id, received_after=None, ids=None):
        """A job's samples (id, node, t, sec, data), by time: all, those stored after ``received_after``,
        or those of ``ids``."""
        sql = "SELECT id, node, t, sec, data FROM metric_samples WHERE job_id = ?"
        params = [job_id]
        if received_after is not None:
            sql += " AND received > ?"
            params.append(received_after)
        if ids is not None:
            if not ids:
                return []
            sql += " AND id IN (" + ", ".join("?" * len(ids)) + ")"
            params.extend(ids)
        return self._run(sql + " ORDER BY t, id", tuple(params), fetch=True)

    def metric_sample_keys(self, job_id, first_sec, end_sec):
        """What downsampling needs of a job's samples with ``first_sec <= sec < end_sec``:
        (id, node, sec, res, size), in arrival order."""
        return self._run("SELECT id, node, sec, res, LENGTH(data) AS size FROM metric_samples "
                         "WHERE job_id = ? AND sec >= ? AND sec < ? ORDER BY id",
                         (job_id, first_sec, end_sec), fetch=True)

    def latest_metric_samples(self, job_id):
        """The newest sample of each node of a job (node, t, data)."""
        return self._run("SELECT node, t, data FROM metric_samples WHERE id IN "
                         "(SELECT MAX(id) FROM metric_samples WHERE job_id = ? GROUP BY node)",
                         (job_id,), fetch=True)

    def metric_sizes(self):
        """Per job holding samples: its rows, bytes of data, first and last second."""
        return self._run("SELECT job_id, COUNT(*) AS n_rows, SUM(LENGTH(data)) AS n_bytes, "
                         "MIN(sec) AS first_sec, MAX(sec) AS last_sec FROM metric_samples "
                         "GROUP BY job_id", fetch=True)

    def thin_metric_samples(self, delete_ids, coarser_ids, res):
        """Downsampling, in one transaction: delete ``delete_ids``, mark ``coarser_ids`` as
        standing for ``res`` seconds each."""
        with self._transaction() as cursor:
            for start in range(0, len(delete_ids), 500):
                chunk = delete_ids[start:start + 500]
                cursor.execute(self._sql("DELETE FROM metric_samples WHERE id IN (" +
                                         ", ".join("?" * len(chunk)) + ")"), chunk)
            for start in range(0, len(coarser_ids), 500):
                chunk = coarser_ids[start:start + 500]
                cursor.execute(self._sql("UPDATE metric_samples SET res = ? WHERE id IN (" +
                                         ", ".join("?" * len(chunk)) + ")"), [res] + chunk)

    def add_metric_events(self, rows):
        """Append timeline events: ``rows`` of (job_id, t, kind, node, detail)."""
        if rows:
            self._run("INSERT INTO metric_events (job_id, t, kind, node, detail) "
                      "VALUES (?, ?, ?, ?, ?)", rows, many=True)

    def metric_events(self, job_id):
        """A job's timeline events (t, kind, node, detail) by time."""
        return self._run("SELECT t, kind, node, detail FROM metric_events WHERE job_id = ? "
                         "ORDER BY t, id", (job_id,), fetch=True)

    def add_metric_dropped(self, counts):
        """Add lost samples to jobs' counts: ``counts`` maps job id -> samples."""
        with self._transaction() as cursor:
            for job_id, n in counts.items():
                cursor.execute(self._sql(
                    "INSERT INTO metric_jobs (job_id, dropped) VALUES (?, ?) ON CONFLICT (job_id) "
                    "DO UPDATE SET dropped = metric_jobs.dropped + excluded.dropped"), (job_id, n))

    def metric_dropped(self, job_id):
        """Samples of a job lost before they were stored."""
        rows = self._run("SELECT dropped FROM metric_jobs WHERE job_id = ?", (job_id,), fetch=True)
        return rows[0]["dropped"] if rows else 0


class SQLiteDatabase(Database):
    """SQLite in one file (WAL mode, so readers do not wait for the writer)."""

    types = {"pk": "INTEGER PRIMARY KEY", "real": "REAL", "bigint": "INTEGER"}

    def __init__(self, path):
        super().__init__()
        self.url = path
        self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3."""

    placeholder = "%s"
    types = {"pk": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "bigint": "BIGINT"}

    def __init__(self, url):
        super().__init__()
        try:
            import psycopg
        except ImportError:
            raise RuntimeError("a postgresql:// database needs the psycopg package: "
                               "pip install 'psycopg[binary]'") from None
        self.url = url
        self.conn = psycopg.connect(url)

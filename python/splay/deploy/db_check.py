"""Consistency checks of a controller's database (SQLite or PostgreSQL), e.g. after a fault soak.

:func:`check_database` returns a list of problems, each a sentence (empty: all is well):

- SQLite: ``PRAGMA integrity_check`` (pages, indexes) and ``PRAGMA foreign_key_check``;
- both: rows that point nowhere (an instance of no job or of no daemon, a log line of no job or of
  an instance of another job), states outside the models' lists, a finished job with live
  instances, a job that is running with none at all, an instance whose position repeats in its
  job, a report mark ahead of nothing (a negative or missing number).
"""
from .models import INSTANCE_LIVE, JOB_FINAL, JOB_STATES
from .models import I_DOWN, I_EXITED, I_FAILED, I_KILLED, I_LOST, I_REGISTERED, I_RUNNING, \
    I_STARTING
from .models import D_CONNECTED, D_DISCONNECTED, D_LOST

INSTANCE_STATES = (I_REGISTERED, I_STARTING, I_RUNNING, I_DOWN, I_EXITED, I_KILLED, I_LOST,
                   I_FAILED)
DAEMON_STATES = (D_CONNECTED, D_DISCONNECTED, D_LOST)


def _in(values):
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# (what is wrong, a query counting the rows that are wrong)
ROW_CHECKS = [
    ("instances of no job", "SELECT COUNT(*) AS n FROM instances i "
     "LEFT JOIN jobs j ON j.id = i.job_id WHERE j.id IS NULL"),
    ("instances of no daemon", "SELECT COUNT(*) AS n FROM instances i "
     "LEFT JOIN daemons d ON d.id = i.daemon_id WHERE d.id IS NULL"),
    ("log lines of no job", "SELECT COUNT(*) AS n FROM logs l "
     "LEFT JOIN jobs j ON j.id = l.job_id WHERE j.id IS NULL"),
    ("log lines of an instance of another job (or of none)", "SELECT COUNT(*) AS n FROM logs l "
     "LEFT JOIN instances i ON i.id = l.instance_id "
     "WHERE l.instance_id IS NOT NULL AND (i.id IS NULL OR i.job_id <> l.job_id)"),
    ("jobs in an unknown state", f"SELECT COUNT(*) AS n FROM jobs WHERE state NOT IN {_in(JOB_STATES)}"),
    ("instances in an unknown state (UNREACHABLE is shown, never stored)",
     f"SELECT COUNT(*) AS n FROM instances WHERE state NOT IN {_in(INSTANCE_STATES)}"),
    ("daemons in an unknown state",
     f"SELECT COUNT(*) AS n FROM daemons WHERE state NOT IN {_in(DAEMON_STATES)}"),
    ("live instances of finished jobs", "SELECT COUNT(*) AS n FROM instances i "
     f"JOIN jobs j ON j.id = i.job_id WHERE j.state IN {_in(sorted(JOB_FINAL))} "
     f"AND i.state IN {_in(sorted(INSTANCE_LIVE))}"),
    ("instances sharing a position in their job", "SELECT COUNT(*) AS n FROM (SELECT job_id, "
     "position FROM instances WHERE position IS NOT NULL GROUP BY job_id, position "
     "HAVING COUNT(*) > 1) AS repeated"),
    ("finished instances without an end time", "SELECT COUNT(*) AS n FROM instances "
     f"WHERE state IN {_in((I_EXITED, I_KILLED, I_LOST))} AND ended_at IS NULL"),
    ("report marks below zero", "SELECT COUNT(*) AS n FROM report_marks WHERE last_seq < 0"),
]


def check_database(database):
    """The problems found in ``database`` (a :class:`~splay.deploy.db.Database`), as sentences;
    an empty list when it is consistent."""
    problems = []
    if database.placeholder == "?":          # SQLite
        with database.lock:
            rows = database.conn.execute("PRAGMA integrity_check").fetchall()
            if [tuple(r) for r in rows] != [("ok",)]:
                problems.append("PRAGMA integrity_check: " + "; ".join(str(r[0]) for r in rows))
            bad = database.conn.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                problems.append(f"PRAGMA foreign_key_check: {len(bad)} row(s) point nowhere, "
                                f"first {tuple(bad[0])}")
    tables = _tables(database)
    for what, query in ROW_CHECKS:
        if "report_marks" in query and "report_marks" not in tables:
            continue
        count = int(database._run(query, fetch=True)[0]["n"])
        if count:
            problems.append(f"{count} {what}")
    return problems


def _tables(database):
    if database.placeholder == "?":
        rows = database._run("SELECT name FROM sqlite_master WHERE type = 'table'", fetch=True)
    else:
        rows = database._run("SELECT tablename AS name FROM pg_tables "
                             "WHERE schemaname = current_schema()", fetch=True)
    return {r["name"] for r in rows}


def main(argv=None):
    """``python -m splay.deploy.db_check DB``: print the problems found; exit status 1 if any."""
    import argparse
    from .db import open_database, redact
    p = argparse.ArgumentParser(prog="python -m splay.deploy.db_check",
                                description="Check a controller database's consistency.")
    p.add_argument("db", help="SQLite path or postgresql:// URL (as the controller's --db)")
    args = p.parse_args(argv)
    database = open_database(args.db)
    try:
        problems = check_database(database)
    finally:
        database.close()
    for problem in problems:
        print(f"{redact(args.db)}: {problem}")
    if not problems:
        print(f"{redact(args.db)}: consistent")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

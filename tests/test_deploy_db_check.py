"""Consistency checks of the controller's database (splay.deploy.db_check), on real databases."""
import sqlite3
import subprocess
import sys

import pytest

from splay.deploy.db import open_database
from splay.deploy.db_check import check_database
from test_deploy_support import PYTHONPATH, fresh_postgres_database, postgres_url


def fill(db):
    """A job of two instances on one daemon, a line each; returns (job, [instance ids])."""
    job = db.add_job("j", "code", 2, 0, "none", 1.0, None, None, {}, "RUNNING")
    daemon = db.daemon_connected("d", "127.0.0.1", {}, 0.0)
    instances = db.add_instances(job["id"], [daemon, daemon], "RUNNING")
    db.add_logs([(job["id"], i, 1.0, "stdout", "hello") for i in instances])
    return job, instances


def test_a_consistent_sqlite_database_has_no_problem(tmp_path):
    db = open_database(str(tmp_path / "c.db"))
    fill(db)
    assert check_database(db) == []


def test_rows_that_point_nowhere_are_found(tmp_path):
    path = str(tmp_path / "c.db")
    db = open_database(path)
    job, [first, second] = fill(db)
    db.close()
    with sqlite3.connect(path) as raw:           # foreign keys off: as a broken writer could
        raw.execute("INSERT INTO instances (job_id, daemon_id, state) VALUES (999, 1, 'RUNNING')")
        raw.execute("INSERT INTO logs (job_id, instance_id, ts, stream, line) "
                    "VALUES (?, 12345, 1.0, 'stdout', 'x')", (job["id"],))
        raw.execute("UPDATE instances SET state = 'UNREACHABLE' WHERE id = ?", (first,))
    problems = check_database(open_database(path))
    assert any(p.startswith("PRAGMA foreign_key_check: 1 row(s)") for p in problems), problems
    assert "1 instances of no job" in problems
    assert "1 log lines of an instance of another job (or of none)" in problems
    assert any("unknown state" in p for p in problems), problems


def test_live_instances_of_a_finished_job_are_found(tmp_path):
    db = open_database(str(tmp_path / "c.db"))
    job, _ = fill(db)
    db._run("UPDATE jobs SET state = 'KILLED' WHERE id = ?", (job["id"],))
    assert check_database(db) == ["2 live instances of finished jobs"]


def test_the_command_line_says_consistent_or_what_is_wrong(tmp_path):
    path = str(tmp_path / "c.db")
    fill(open_database(path))
    run = [sys.executable, "-m", "splay.deploy.db_check", path]
    ok = subprocess.run(run, capture_output=True, text=True, env={"PYTHONPATH": PYTHONPATH})
    assert (ok.returncode, ok.stdout.strip()) == (0, f"{path}: consistent")
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE jobs SET state = 'SLEEPING'")
    bad = subprocess.run(run, capture_output=True, text=True, env={"PYTHONPATH": PYTHONPATH})
    assert (bad.returncode, bad.stdout.strip()) == (1, f"{path}: 1 jobs in an unknown state")


def test_postgresql_rows_are_checked_too():
    url, drop = fresh_postgres_database(postgres_url())
    try:
        db = open_database(url)
        job, _ = fill(db)
        assert check_database(db) == []
        db._run("UPDATE jobs SET state = 'KILLED' WHERE id = ?", (job["id"],))
        assert check_database(db) == ["2 live instances of finished jobs"]
        db.close()
    finally:
        drop()

"""The data layer, against SQLite always and PostgreSQL when a server can be started."""
import threading

import pytest

from splay.deploy import models as m
from splay.deploy.db import MIGRATIONS, open_database, redact
from test_deploy_support import fresh_postgres_database, postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield str(tmp_path / "controller.db")
        return
    database_url, drop = fresh_postgres_database(postgres_url())
    yield database_url
    drop()


@pytest.fixture
def db(url):
    database = open_database(url)
    yield database
    database.close()


LIMITS = {"max_instances": 4, "max_memory": 2**29, "start_port": 20000, "end_port": 20009,
          "max_bandwidth": 0}


def add_job(db, nodes=3, state=m.QUEUED):
    return db.add_job("j", "print(1)", nodes, nodes, "head", 1.25, None, 0, {"a": 1}, state)


def test_migrations_run_once_and_are_recorded(url):
    first = open_database(url)
    assert first.schema_version() == MIGRATIONS[-1][0]
    add_job(first)
    first.close()
    again = open_database(url)          # re-opening applies nothing twice and keeps the data
    assert again.schema_version() == MIGRATIONS[-1][0]
    assert len(again.jobs()) == 1
    again.close()


def test_a_daemon_keeps_its_id_across_reconnections(db):
    first = db.daemon_connected("d1", "127.0.0.1", LIMITS, 1.0)
    other = db.daemon_connected("d2", "127.0.0.1", LIMITS, 1.0)
    assert db.daemon_connected("d1", "127.0.0.2", dict(LIMITS, max_instances=9), 2.0) == first
    assert first != other
    rows = {d["name"]: d for d in db.daemons()}
    assert rows["d1"]["ip"] == "127.0.0.2"
    assert rows["d1"]["limits"]["max_instances"] == 9
    db.set_daemons_state(m.D_CONNECTED, m.D_DISCONNECTED)
    assert {d["state"] for d in db.daemons()} == {m.D_DISCONNECTED}


def test_jobs_by_id_or_ref_and_by_state(db):
    job = add_job(db)
    assert db.job(job["id"])["ref"] == job["ref"]
    assert db.job(job["ref"])["id"] == job["id"]
    assert db.job(job["ref"])["settings"] == {"a": 1}
    assert db.job(12345) is None and db.job("nope") is None
    db.update_job(job["id"], state=m.RUNNING, running_at=5.0)
    assert [j["id"] for j in db.jobs(states=[m.RUNNING])] == [job["id"]]
    assert db.jobs(states=[m.QUEUED]) == []
    with pytest.raises(ValueError, match="cannot update jobs.code"):
        db.update_job(job["id"], code="x")


def test_instances_count_against_their_daemon_while_live(db):
    daemon = db.daemon_connected("d1", "127.0.0.1", LIMITS, 1.0)
    job = add_job(db)
    ids = db.add_instances(job["id"], [daemon] * 3, m.I_REGISTERED)
    assert db.daemons()[0]["instances"] == 3
    db.update_instances_each({ids[0]: {"position": 0, "port": 20000, "state": m.I_RUNNING},
                              ids[1]: {"position": 1, "port": 20001, "state": m.I_RUNNING}})
    db.delete_instances([ids[2]])
    db.update_instances([ids[1]], state=m.I_EXITED, exit_code=0)
    rows = db.instances(job["id"])
    assert [(r["position"], r["state"], r["daemon"]) for r in rows] == [
        (0, m.I_RUNNING, "d1"), (1, m.I_EXITED, "d1")]
    assert db.daemons()[0]["instances"] == 1
    assert [r["id"] for r in db.instances(daemon_id=daemon, states=m.INSTANCE_LIVE)] == [ids[0]]
    assert db.instance(ids[1])["exit_code"] == 0 and db.instance(ids[2]) is None
    assert db.job_of_instance(ids[0]) == job["id"] and db.job_of_instance(ids[2]) is None


def test_logs_read_in_time_order_by_pages_or_in_arrival_order(db):
    daemon = db.daemon_connected("d1", "127.0.0.1", LIMITS, 1.0)
    job = add_job(db)
    a, b = db.add_instances(job["id"], [daemon, daemon], m.I_RUNNING)
    db.update_instances_each({a: {"position": 0}, b: {"position": 1}})
    db.add_logs([(job["id"], a, 3.0, "stdout", "third"), (job["id"], b, 1.0, "stdout", "first"),
                 (job["id"], None, 2.0, "controller", "second"),
                 (job["id"], b, 3.0, "stderr", "fourth")])
    ordered = db.logs(job["id"], after_time=-1)
    assert [r["line"] for r in ordered] == ["first", "second", "third", "fourth"]
    assert [r["position"] for r in ordered] == [1, None, 0, 1]
    page = db.logs(job["id"], limit=2, after_time=-1)
    rest = db.logs(job["id"], after=page[-1]["id"], after_time=page[-1]["ts"])
    assert [r["line"] for r in page + rest] == ["first", "second", "third", "fourth"]
    arrival = db.logs(job["id"])
    assert [r["line"] for r in arrival] == ["third", "first", "second", "fourth"]
    assert db.logs(job["id"], after=arrival[-1]["id"]) == []
    assert db.last_log_id(job["id"]) == arrival[-1]["id"]


def test_threads_share_one_database(db):
    job = add_job(db)
    errors = []

    def writer(k):
        try:
            for i in range(50):
                db.add_logs([(job["id"], None, float(i), "stdout", f"{k}-{i}")])
        except Exception as e:         # collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.logs(job["id"])) == 200


def test_redact_hides_the_password():
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("/tmp/x.db") == "/tmp/x.db"


def test_postgresql_without_a_server_is_a_clear_error():
    pytest.importorskip("psycopg")
    with pytest.raises(Exception, match="127.0.0.1"):
        open_database("postgresql://nobody@127.0.0.1:1/none")

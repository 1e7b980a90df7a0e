"""The controller's metrics store on SQLite and PostgreSQL: samples written once per node and
second, downsampling by age, the per-job caps, events, the run-data part and the Prometheus view."""
import pytest

from splay.deploy import models as m
from splay.deploy.db import open_database
from splay.deploy.metrics_store import MetricsStore, parse_size, parse_tiers
from splay.observatory import rundata
from splay.observatory.buckets import N_BUCKETS
from test_deploy_support import fresh_postgres_database, postgres_url

T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = open_database(str(tmp_path / "controller.db"))
        yield database
        database.close()
        return
    url, drop = fresh_postgres_database(postgres_url())
    database = open_database(url)
    yield database
    database.close()
    drop()


class Clock:
    """A clock the test moves."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def sample(calls, size=0):
    """A node's cumulative sample after ``calls`` calls (``size`` pads its application data)."""
    return {"rpc": {"rpc/f": {"made": calls, "served": 0, "errors": 0, "timeouts": 0,
                              "latency": [calls] + [0] * (N_BUCKETS - 1)}},
            "bytes_sent": 10 * calls, "bytes_received": 0, "threads": 1, "rss": 1, "cpu": 0.0,
            "app": {"pad": {"type": "gauge", "value": size}} if size else {}}


def job_with_nodes(db, nodes):
    daemon = db.daemon_connected("d", "127.0.0.1", {"max_instances": nodes}, T0)
    job = db.add_job("j", "pass", nodes, nodes, "head", 1.0, None, 0, {}, m.RUNNING)
    ids = db.add_instances(job["id"], [daemon] * nodes, m.I_REGISTERED)
    db.update_instances_each({i: {"position": p, "state": m.I_RUNNING, "ip": "127.0.0.1",
                                  "port": 20000 + p} for p, i in enumerate(ids)})
    db.update_job(job["id"], running_at=T0)
    return job["id"], ids


def feed(store, job_id, nodes, seconds, per_second=1, start=0):
    """Samples of ``nodes`` nodes, ``per_second`` per second, for ``seconds`` seconds, flushed
    every 10 s (a node's backlog of unwritten seconds is bounded)."""
    import json
    for second in range(start, start + seconds):
        for k in range(per_second):
            t = T0 + second + k / per_second
            for node in range(nodes):
                s = sample(second * per_second + k)
                store.add(job_id, node, t, s, json.dumps(s))
        if second % 10 == 9:
            store.flush()


def test_a_node_backlog_beyond_two_minutes_loses_its_oldest_seconds(db):
    job_id, _ = job_with_nodes(db, 1)
    store = MetricsStore(db, clock=Clock(T0 + 300))
    import json
    for second in range(200):
        s = sample(second)
        store.add(job_id, 0, T0 + second, s, json.dumps(s))
    store.flush()
    part = store.run_data(job_id, T0)
    assert [s["t"] for s in part["samples"]] == [float(t) for t in range(80, 200)]
    assert part["dropped"]["samples"] == 80


def test_one_sample_per_node_and_second_is_written_the_newest_wins(db):
    job_id, _ = job_with_nodes(db, 2)
    store = MetricsStore(db, clock=Clock(T0 + 10))
    feed(store, job_id, 2, 5, per_second=4)
    store.flush()
    part = store.run_data(job_id, T0)
    assert len(part["samples"]) == 2 * 5
    assert [s["rpc"]["rpc/f"]["made"] for s in part["samples"] if s["node"] == 0] == \
        [3, 7, 11, 15, 19]
    assert part["samples"] == sorted(part["samples"], key=lambda s: s["t"])
    for s in part["samples"]:
        rundata.validate_sample(s)


def test_a_second_sent_again_after_a_flush_replaces_the_one_written(db):
    # A node's last sample often comes right after the flush its end caused, in the same second.
    import json
    job_id, _ = job_with_nodes(db, 1)
    store = MetricsStore(db, clock=Clock(T0 + 10))
    for t, calls in ((T0 + 1.2, 1), (T0 + 2.1, 2)):
        store.add(job_id, 0, t, sample(calls), json.dumps(sample(calls)))
    store.flush()
    for t, calls in ((T0 + 2.7, 3), (T0 + 3.5, 4)):
        store.add(job_id, 0, t, sample(calls), json.dumps(sample(calls)))
    store.flush()
    part = store.run_data(job_id, T0)
    assert [(s["t"], s["rpc"]["rpc/f"]["made"]) for s in part["samples"]] == \
        [(1.0, 1), (2.0, 3), (3.0, 4)]


def test_since_returns_what_was_stored_later_even_with_older_times(db):
    job_id, _ = job_with_nodes(db, 1)
    clock = Clock(T0 + 5)
    store = MetricsStore(db, clock=clock)
    feed(store, job_id, 1, 3)
    store.flush()
    clock.now = T0 + 8
    feed(store, job_id, 1, 1, start=3)        # a late sample: its time is before the cursor
    store.flush()
    late = store.run_data(job_id, T0, since=6.0)
    assert [s["t"] for s in late["samples"]] == [3.0]


def test_old_samples_are_downsampled_by_tier_and_totals_are_kept(db):
    job_id, _ = job_with_nodes(db, 3)
    clock = Clock(T0 + 200)
    store = MetricsStore(db, tiers=((60, 10), (150, 50)), clock=clock)
    feed(store, job_id, 3, 200)
    store.flush()
    for _ in store.compact(job_id):
        pass
    samples = store.run_data(job_id, T0)["samples"]
    node0 = [s for s in samples if s["node"] == 0]
    # < 50 s (older than 150 s): one per 50 s; 50..140: one per 10 s; the last 60 s: all.
    old = [s["t"] for s in node0 if s["t"] < 50]
    middle = [s["t"] for s in node0 if 50 <= s["t"] < 140]
    recent = [s["t"] for s in node0 if s["t"] >= 140]
    assert old == [49.0]
    assert middle == [59.0 + 10 * i for i in range(9)]
    assert recent == [float(t) for t in range(140, 200)]
    assert node0[-1]["rpc"]["rpc/f"]["made"] == 199          # the newest sample is never thinned
    # Compacting again changes nothing; the figures say what was removed.
    before = len(samples)
    for _ in store.compact(job_id):
        pass
    assert len(store.run_data(job_id, T0)["samples"]) == before
    assert store.stats["samples_thinned"] == 3 * 200 - before


def test_a_job_over_its_row_cap_is_thinned_from_its_oldest_half(db):
    job_id, _ = job_with_nodes(db, 2)
    clock = Clock(T0 + 400)
    store = MetricsStore(db, tiers=((3600, 10),), max_rows=300, clock=clock)
    feed(store, job_id, 2, 400)
    store.flush()
    for _ in store.compact(job_id):
        pass
    samples = store.run_data(job_id, T0)["samples"]
    assert len(samples) <= 300 * 0.75
    times = sorted({s["t"] for s in samples})
    assert times[0] < 60 and times[-1] == 399.0          # the whole run stays visible
    assert store.stats["retention_passes"] >= 1


def test_a_job_over_its_byte_cap_is_thinned_too(db):
    import json
    job_id, _ = job_with_nodes(db, 1)
    store = MetricsStore(db, tiers=((3600, 10),), max_bytes=20_000, clock=Clock(T0 + 300))
    for second in range(300):
        s = sample(second, size=10 ** 12)
        store.add(job_id, 0, T0 + second, s, json.dumps(s))
    store.flush()
    for _ in store.compact(job_id):
        pass
    data = sum(len(r["data"]) for r in db.metric_samples(job_id))
    assert data <= 20_000 * 0.75


def test_events_and_dropped_samples_are_in_the_run_data(db):
    job_id, ids = job_with_nodes(db, 2)
    store = MetricsStore(db, clock=Clock(T0 + 3))
    store.node_events(ids, "node_start", "started", T0 + 1)
    store.churn_event(ids[1], "down", T0 + 2, "churn: node 1 down")
    store.node_ended(ids[0], m.I_EXITED, 3, "exit status 3")
    store.add_dropped(job_id, 7)
    store.flush()
    store.add_dropped(job_id, 2)
    part = store.run_data(job_id, T0)
    assert [(e["kind"], e["node"]) for e in part["events"]] == [
        ("node_start", 0), ("node_start", 1), ("churn", 1), ("node_stop", 1), ("node_crash", 0)]
    assert part["dropped"]["samples"] == 9
    assert [e["kind"] for e in store.run_data(job_id, T0, since=1.5)["events"]] == \
        ["churn", "node_stop", "node_crash"]


def test_events_beyond_a_jobs_cap_are_counted_not_kept(db):
    job_id, ids = job_with_nodes(db, 1)
    store = MetricsStore(db, max_events=5, clock=Clock(T0 + 3))
    for i in range(4):
        store.churn_event(ids[0], "up" if i % 2 == 0 else "down", T0 + i, f"churn {i}")
    assert len(store.run_data(job_id, T0)["events"]) == 5
    assert store.stats["events_dropped"] == 3
    restarted = MetricsStore(db, max_events=5, clock=Clock(T0 + 4))     # the cap holds after a
    restarted.churn_event(ids[0], "up", T0 + 4, "churn 4")              # restart too
    assert len(restarted.run_data(job_id, T0)["events"]) == 5
    assert restarted.stats["events_dropped"] == 2


def test_prometheus_view_sums_the_newest_sample_of_each_node(db):
    import json
    job_id, _ = job_with_nodes(db, 2)
    store = MetricsStore(db, clock=Clock(T0 + 3))
    for node, calls in ((0, 5), (1, 7)):
        s = sample(calls)
        store.add(job_id, node, T0 + 1, s, json.dumps(s))
    view = store.prometheus_view()
    [job] = view["jobs"]
    assert job["job"] == str(job_id) and job["nodes"] == {m.I_RUNNING: 2}
    assert sorted(s["rpc"]["rpc/f"]["made"] for s in job["latest"]) == [5, 7]
    store.flush()
    fresh = MetricsStore(db, clock=Clock(T0 + 3))      # a restarted controller reads them back
    assert sorted(s["rpc"]["rpc/f"]["made"] for s in fresh.prometheus_view()["jobs"][0]["latest"]) \
        == [5, 7]


def test_options_parse_or_say_what_is_wrong():
    assert parse_tiers("10m=10s,1h=1m,1d=10m") == ((600, 10), (3600, 60), (86400, 600))
    with pytest.raises(ValueError, match="AGE=RESOLUTION"):
        parse_tiers("10m")
    with pytest.raises(ValueError, match="increasing"):
        parse_tiers("1h=1m,10m=10s")
    with pytest.raises(ValueError, match="not a duration"):
        parse_tiers("soon=1s")
    assert parse_size("512M") == 512 * 2 ** 20 and parse_size("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


@pytest.mark.parametrize("option, value, message", [
    ("--metrics-tiers", "1h=1m,10m=10s",
     "--metrics-tiers '1h=1m,10m=10s': tiers must have increasing"),
    ("--metrics-max-bytes", "lots", "--metrics-max-bytes 'lots': not a size"),
    ("--metrics-max-rows", "0", "--metrics-max-rows 0: give at least 1"),
])
def test_the_controller_refuses_bad_store_options_saying_which(tmp_path, option, value, message):
    import subprocess
    import sys
    from test_deploy_support import PYTHONPATH
    result = subprocess.run(
        [sys.executable, "-m", "splay.deploy.controller", "--db", str(tmp_path / "c.db"),
         "--daemon-key", "k", "--token", "t", option, value],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": PYTHONPATH})
    assert result.returncode == 2
    assert message in result.stderr

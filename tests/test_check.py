"""splay.check: the checkers on hand-made histories with known answers, on histories generated from
a sequential model (always valid) and with injected anomalies (always found)."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from splay import check
from splay.check import HistoryError
from support_histories import kv_history


def history(*steps):
    """Records from (process, type, f, value) tuples, one time unit apart."""
    return [{"process": p, "type": kind, "f": f, "value": v, "time": t}
            for t, (p, kind, f, v) in enumerate(steps)]


def test_a_sequential_register_history_is_linearizable():
    r = check.check("register", history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                                        (1, "invoke", "read", None), (1, "ok", "read", 1)))
    assert r.valid == "valid" and bool(r)
    assert r.counts == {"ops": 2, "ok": 2, "fail": 0, "info": 0}


def test_a_stale_read_is_caught_with_the_writes_that_explain_it():
    r = check.check("register", history(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (0, "invoke", "write", 2), (0, "ok", "write", 2),
        (1, "invoke", "read", None), (1, "ok", "read", 1)))
    assert r.valid == "invalid"
    example = r.counterexample
    assert [(o["f"], o["value"], o["result"]) for o in example["ops"]] == \
        [("write", 1, 1), ("write", 2, 2), ("read", None, 1)]
    assert example["blocked"] == 2 and example["order"] == [0, 1]
    assert "no order lets [2]" in r.text()


def test_reads_that_go_back_in_time_during_a_write_are_caught():
    # write 2 is pending while one read sees 2 and a later read sees 1 again: not linearizable
    r = check.check("register", history(
        (0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "write", 2),
        (1, "invoke", "read", None), (1, "ok", "read", 2),
        (2, "invoke", "read", None), (2, "ok", "read", 1), (0, "ok", "write", 2)))
    assert r.valid == "invalid"


def test_reads_overlapping_a_write_may_see_either_value():
    r = check.check("register", history(
        (0, "invoke", "write", 1), (0, "ok", "write", 1), (0, "invoke", "write", 2),
        (1, "invoke", "read", None), (1, "ok", "read", 1),
        (2, "invoke", "read", None), (2, "ok", "read", 2), (0, "ok", "write", 2)))
    assert r.valid == "valid"


@pytest.mark.parametrize("status, read_back, verdict", [
    ("info", 5, "valid"),      # an unknown write may have happened...
    ("info", None, "valid"),   # ...or not
    ("fail", 5, "invalid"),    # a failed write certainly did not happen
])
def test_unknown_and_failed_writes(status, read_back, verdict):
    r = check.check("register", history((0, "invoke", "write", 5), (0, status, "write", 5),
                                        (1, "invoke", "read", None), (1, "ok", "read", read_back)))
    assert r.valid == verdict


def test_an_operation_never_completed_counts_as_unknown():
    r = check.check("register", history((0, "invoke", "write", 5), (1, "invoke", "read", None),
                                        (1, "ok", "read", 5)))
    assert r.valid == "valid" and r.counts["info"] == 1


def test_compare_and_set():
    ok = check.check("register", history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                                         (0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2]),
                                         (1, "invoke", "read", None), (1, "ok", "read", 2)))
    bad = check.check("register", history((0, "invoke", "write", 1), (0, "ok", "write", 1),
                                          (0, "invoke", "cas", [3, 2]), (0, "ok", "cas", [3, 2])))
    assert ok.valid == "valid" and bad.valid == "invalid"


def test_a_key_value_map_is_checked_key_by_key_and_names_the_key():
    r = check.check("kv", history(
        (0, "invoke", "write", ["x", 1]), (0, "ok", "write", ["x", 1]),
        (1, "invoke", "write", ["y", 7]), (1, "ok", "write", ["y", 7]),
        (1, "invoke", "read", ["x", None]), (1, "ok", "read", ["x", 1]),
        (0, "invoke", "read", ["y", None]), (0, "ok", "read", ["y", 6])))
    assert r.valid == "invalid"
    assert r.counterexample["key"] == "y" and r.details["keys"] == 2
    assert "key 'y'" in r.text()


def test_maelstrom_lin_kv_fields_are_understood():
    r = check.check("lin-kv", history(
        ("c1", "invoke", "write", {"key": 0, "value": 3}), ("c1", "ok", "write", {"key": 0, "value": 3}),
        ("c2", "invoke", "cas", {"key": 0, "from": 3, "to": 4}), ("c2", "ok", "cas", {"key": 0, "from": 3, "to": 4}),
        ("c1", "invoke", "read", {"key": 0}), ("c1", "ok", "read", {"key": 0, "value": 4})))
    assert r.valid == "valid"


def test_a_search_bound_gives_unknown_not_a_guess():
    records = kv_history(400, 1, 8, seed=3, info_rate=0.3)
    r = check.check("kv", records, max_steps=5)
    assert r.valid == "unknown" and "max_steps" in r.details["bound"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), processes=st.integers(1, 8), keys=st.integers(1, 4),
       info_rate=st.sampled_from([0.0, 0.2]))
def test_histories_from_the_sequential_model_are_always_linearizable(seed, processes, keys, info_rate):
    records = kv_history(120, keys, processes, seed, info_rate=info_rate)
    assert check.check("kv", records).valid == "valid"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), processes=st.integers(1, 6), pick=st.integers(0, 10**6))
def test_an_injected_read_of_a_value_never_written_is_always_found(seed, processes, pick):
    records = kv_history(80, 2, processes, seed)
    reads = [r for r in records if r["type"] == "ok" and r["f"] == "read"]
    if not reads:
        return
    victim = reads[pick % len(reads)]
    victim["value"] = [victim["value"][0], 999]
    r = check.check("kv", records)
    assert r.valid == "invalid"
    assert any(o["result"] == 999 for o in r.counterexample["ops"])


def test_set_broadcast_every_acknowledged_element_read_by_all():
    good = history((0, "invoke", "broadcast", 1), (0, "ok", "broadcast", 1),
                   (1, "invoke", "broadcast", 2), (1, "info", "broadcast", 2),
                   (0, "invoke", "read", None), (0, "ok", "read", [1, 2]),
                   (1, "invoke", "read", None), (1, "ok", "read", [1]))
    assert check.check("broadcast", good).valid == "valid"
    lost = history((0, "invoke", "add", 1), (0, "ok", "add", 1),
                   (1, "invoke", "read", None), (1, "ok", "read", []))
    r = check.check("set", lost)
    assert r.valid == "invalid" and r.anomalies["lost"][0]["missing"] == [1]
    invented = history((0, "invoke", "read", None), (0, "ok", "read", [42]))
    r = check.check("set", invented)
    assert r.valid == "invalid" and r.anomalies["unexpected"] == [{"element": 42}]
    assert check.check("set", history((0, "invoke", "add", 1), (0, "ok", "add", 1))).valid == "unknown"


def test_counters_reads_within_bounds():
    steps = [(0, "invoke", "add", 2), (0, "ok", "add", 2),
             (1, "invoke", "add", 3),                      # pending: may or may not count
             (2, "invoke", "read", None), (2, "ok", "read", 5), (1, "info", "add", 3),
             (2, "invoke", "read", None), (2, "ok", "read", 2)]
    assert check.check("g-counter", history(*steps)).valid == "valid"
    assert check.check("counter", history(*steps)).valid == "valid"
    stale_then_right = [(0, "invoke", "add", 2), (0, "ok", "add", 2),
                        (1, "invoke", "read", None), (1, "ok", "read", 0),   # not yet gossiped
                        (1, "invoke", "read", None), (1, "ok", "read", 2)]
    r = check.check("g-counter", history(*stale_then_right))
    assert r.valid == "valid" and r.details["stale reads"] == 1
    assert check.check("counter", history(*stale_then_right)).valid == "invalid"
    r = check.check("g-counter", history((0, "invoke", "add", 2), (0, "ok", "add", 2),
                                         (1, "invoke", "read", None), (1, "ok", "read", 1)))
    assert r.valid == "invalid"
    assert r.anomalies["read-out-of-bounds"][0] == {"read": 1, "process": "1", "value": 1,
                                                     "lower": 2, "upper": 2}
    assert check.check("pn-counter", history((0, "invoke", "add", -4), (0, "ok", "add", -4),
                                             (1, "invoke", "read", None),
                                             (1, "ok", "read", -4))).valid == "valid"
    with pytest.raises(HistoryError, match="only grows"):
        check.check("g-counter", history((0, "invoke", "add", -1), (0, "ok", "add", -1)))


def test_log_offsets_order_and_lost_writes():
    good = history((0, "invoke", "send", ["k", "a"]), (0, "ok", "send", 0),
                   (0, "invoke", "send", ["k", "b"]), (0, "ok", "send", 1),
                   (1, "invoke", "poll", None), (1, "ok", "poll", {"k": [[0, "a"], [1, "b"]]}))
    assert check.check("kafka", good).valid == "valid"
    bad = history((0, "invoke", "send", ["k", "a"]), (0, "ok", "send", 0),
                  (1, "invoke", "send", ["k", "b"]), (1, "ok", "send", 0),       # same offset
                  (0, "invoke", "send", ["k", "c"]), (0, "ok", "send", 1),
                  (0, "invoke", "send", ["k", "d"]), (0, "ok", "send", 2),
                  (2, "invoke", "poll", None), (2, "ok", "poll", {"k": [[0, "a"], [2, "d"]]}),
                  (3, "invoke", "poll", None), (3, "ok", "poll", {"k": [[2, "x"], [0, "a"]]}))
    r = check.check("log", bad)
    assert r.valid == "invalid"
    assert set(r.anomalies) == {"duplicate-offset", "inconsistent-offset", "nonmonotonic-poll",
                                "lost-write"}
    assert r.anomalies["lost-write"] == [{"key": "k", "offset": 1, "msg": "c", "send": 2}]


@pytest.mark.parametrize("records, message", [
    ([{"process": 0, "type": "begin", "f": "read"}], "'type' must be one of"),
    ([{"type": "invoke", "f": "read"}], "no 'process'"),
    ([{"process": 0, "type": "ok", "f": "read"}], "never invoked"),
    ([{"process": 0, "type": "invoke", "f": "read"}, {"process": 0, "type": "invoke", "f": "read"}],
     "one operation at a time"),
    ([{"process": 0, "type": "invoke", "f": "read", "time": "noon"}], "'time' must be a number"),
    (["invoke"], "must be a JSON object"),
    ([{"process": 0, "type": "invoke", "f": "push", "time": 0}], "not 'push'"),
])
def test_bad_histories_get_a_clear_error(records, message):
    with pytest.raises(HistoryError, match=message):
        check.check("register", records)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model 'queue'"):
        check.check("queue", [])


def test_histories_load_from_json_lines_arrays_and_logs(tmp_path):
    records = history((0, "invoke", "write", 1), (0, "ok", "write", 1))
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "h.json").write_text(json.dumps(records))
    (tmp_path / "h.log").write_text("".join(f"12:00:00 [node 1] [history] {json.dumps(r)}\nnoise\n"
                                            for r in records))
    for name in ("h.jsonl", "h.json", "h.log"):
        assert check.check("register", str(tmp_path / name)).counts["ops"] == 1
    (tmp_path / "bad.jsonl").write_text(json.dumps(records[0]) + "\n{oops\n")
    with pytest.raises(HistoryError, match=r"bad.jsonl:2: not a JSON record"):
        check.check("register", str(tmp_path / "bad.jsonl"))

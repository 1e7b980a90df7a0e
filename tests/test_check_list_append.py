"""The list-append transaction checker (splay.check.list_append): Elle's anomalies on hand-made
histories with known answers, and properties (serial histories are valid; an injected
anomaly is found)."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from splay import check
from splay.check import HistoryError


def txn(process, start, done, status="ok", invoked=None):
    """Invocation and completion records of one transaction (``done``: completed micro-ops)."""
    invoked = invoked or [[f, k, None if f == "r" else v] for f, k, v in done]
    return [(start, {"process": process, "type": "invoke", "f": "txn", "value": invoked}),
            (start + 0.5, {"process": process, "type": status, "f": "txn",
                           "value": done if status == "ok" else invoked})]


def history(*txns):
    records = sorted((r for t in txns for r in t), key=lambda pair: pair[0])
    return [dict(record, time=t) for t, record in records]


def anomalies(*txns):
    result = check.check("list-append", history(*txns))
    return result, set(result.anomalies)


def test_serial_transactions_are_valid():
    result, found = anomalies(
        txn(0, 0, [["append", "x", 1], ["r", "x", [1]]]),
        txn(1, 1, [["r", "x", [1]], ["append", "x", 2], ["append", "y", 3]]),
        txn(0, 2, [["r", "x", [1, 2]], ["r", "y", [3]]]))
    assert result.valid == "valid" and not found
    assert result.details["committed transactions"] == 3


def test_write_skew_is_a_g2_cycle_naming_its_transactions():
    result, found = anomalies(
        txn(0, 0, [["r", "x", []], ["append", "y", 1]]),
        txn(1, 0.1, [["r", "y", []], ["append", "x", 2]]),
        txn(2, 2, [["r", "x", [2]], ["r", "y", [1]]]))
    assert result.valid == "invalid" and found == {"G2"}
    cycle = result.anomalies["G2"][0]
    assert cycle["cycle"] in ("T0 -rw(x)-> T1 -rw(y)-> T0", "T1 -rw(y)-> T0 -rw(x)-> T1")
    assert "T0 (process 0 ok): r(x)=[] append(y,1)" in cycle["transactions"]
    text = result.text()
    assert "counterexample:" in text and "G2: a cycle of 2 transactions" in text


def test_a_write_cycle_is_g0():
    # T0 appends x then y, T1 appends x then y; reads show x: T0 before T1, y: T1 before T0.
    result, found = anomalies(
        txn(0, 0, [["append", "x", 1], ["append", "y", 1]]),
        txn(1, 0, [["append", "x", 2], ["append", "y", 2]]),
        txn(2, 2, [["r", "x", [1, 2]], ["r", "y", [2, 1]]]))
    assert "G0" in found and "G2" not in found
    assert result.anomalies["G0"][0]["cycle"].count("-ww(") == 2


def test_reading_each_others_writes_is_g1c():
    result, found = anomalies(
        txn(0, 0, [["append", "x", 1], ["r", "y", [2]]]),
        txn(1, 0, [["append", "y", 2], ["r", "x", [1]]]))
    assert found == {"G1c"}
    assert "-wr(" in result.anomalies["G1c"][0]["cycle"]


def test_an_aborted_read_is_g1a():
    _, found = anomalies(
        txn(0, 0, [["append", "x", 1]], status="fail"),
        txn(1, 1, [["r", "x", [1]]]))
    assert found == {"G1a"}


def test_an_intermediate_read_is_g1b():
    result, found = anomalies(
        txn(0, 0, [["append", "x", 1], ["append", "x", 2]]),
        txn(1, 0.2, [["r", "x", [1]]]),
        txn(2, 2, [["r", "x", [1, 2]]]))
    assert "G1b" in found
    assert result.anomalies["G1b"][0]["writer"] == 0


def test_reads_that_disagree_on_the_order_and_other_impossible_reads():
    _, found = anomalies(
        txn(0, 0, [["append", "x", 1]]), txn(1, 0, [["append", "x", 2]]),
        txn(2, 1, [["r", "x", [1, 2]]]), txn(3, 1, [["r", "x", [2, 1]]]))
    assert "incompatible-order" in found
    _, found = anomalies(txn(0, 0, [["r", "x", [7, 7]]]))
    assert {"duplicate-elements", "unexpected"} <= found
    _, found = anomalies(txn(0, 0, [["append", "x", 1]]),
                         txn(1, 0, [["append", "x", 2], ["r", "x", [2, 1]]]),
                         txn(2, 1, [["r", "x", [2, 1]]]))
    assert "internal" in found


def test_unknown_transactions_count_only_when_their_writes_are_seen():
    result, found = anomalies(
        txn(0, 0, [["append", "x", 1]], status="info"),
        txn(1, 1, [["r", "x", [1]]]),
        txn(2, 1, [["append", "y", 5]], status="info"))
    assert result.valid == "valid" and not found


@pytest.mark.parametrize("records, message", [
    ([{"process": 0, "type": "invoke", "f": "read", "value": None}], "has txn operations"),
    ([{"process": 0, "type": "invoke", "f": "txn", "value": 3}], "list of"),
    ([{"process": 0, "type": "invoke", "f": "txn", "value": [["w", "x", 1]]}], "micro-operations"),
    ([{"process": 0, "type": "invoke", "f": "txn", "value": [["r", "x", None]]},
      {"process": 0, "type": "ok", "f": "txn", "value": [["r", "x", 4]]}], "a read's value is a list"),
])
def test_bad_transaction_histories_get_a_clear_error(records, message):
    with pytest.raises(HistoryError, match=message):
        check.check("list-append", records)


def serial_history(seed, processes, keys, n):
    """Transactions run one at a time on a model, by random processes: always serializable."""
    rng = random.Random(seed)
    lists, out, value = {}, [], 0
    for i in range(n):
        done = []
        for _ in range(rng.randint(1, 4)):
            key = f"k{rng.randrange(keys)}"
            if rng.random() < 0.5:
                done.append(["r", key, list(lists.get(key, []))])
            else:
                value += 1
                lists.setdefault(key, []).append(value)
                done.append(["append", key, value])
        out.append(txn(rng.randrange(processes) + 100 * i, i, done))
    return out, lists


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 5), st.integers(1, 4))
def test_serial_histories_are_always_valid(seed, processes, keys):
    txns, _ = serial_history(seed, processes, keys, 40)
    result = check.check("list-append", history(*txns))
    assert result.valid == "valid", result.text()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 4))
def test_an_injected_stale_read_and_write_skew_is_always_found(seed, keys):
    txns, lists = serial_history(seed, 3, keys, 30)
    k0 = lists.get("k0", [])
    # Two more transactions, concurrent, each missing the other's append: write skew.
    txns.append(txn(900, 31, [["r", "k0", k0], ["append", "a", 1]]))
    txns.append(txn(901, 31, [["r", "a", []], ["append", "k0", 10**6]]))
    txns.append(txn(902, 32, [["r", "a", [1]], ["r", "k0", k0 + [10**6]]]))
    result = check.check("list-append", history(*txns))
    assert set(result.anomalies) == {"G2"}
    shown = " ".join(result.anomalies["G2"][0]["transactions"])
    assert "process 900 ok" in shown and "process 901 ok" in shown

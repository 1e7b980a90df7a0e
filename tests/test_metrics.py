"""splay.metrics: application counters, gauges and histograms; mistakes refused at the call."""
import math

import pytest

from splay import metrics


@pytest.fixture
def reg():
    return metrics.Registry()


def test_counter_gauge_histogram_record_what_the_application_did(reg):
    c = reg._get(metrics.Counter, "lookups")
    c.inc()
    c.inc(2)
    g = reg._get(metrics.Gauge, "view_size")
    g.set(8)
    g.dec(3)
    g.inc()
    h = reg._get(metrics.Histogram, "hops", [1, 2, 4])
    for v in (1, 2, 3, 9):
        h.observe(v)
    assert reg.snapshot() == {
        "lookups": {"type": "counter", "value": 3.0},
        "view_size": {"type": "gauge", "value": 6.0},
        "hops": {"type": "histogram", "counts": [1, 1, 1, 1], "sum": 15.0, "bounds": [1, 2, 4]}}


def test_the_module_functions_return_the_same_metric_for_the_same_name():
    a = metrics.counter("test_metrics_same_name")
    assert metrics.counter("test_metrics_same_name") is a
    with pytest.raises(ValueError, match="already a counter"):
        metrics.gauge("test_metrics_same_name")


def test_default_histogram_uses_the_latency_buckets():
    h = metrics.histogram("test_metrics_latency")
    h.observe(0.003)
    assert len(h.counts) == 25 and sum(h.counts) == 1 and "bounds" not in h.sample()


@pytest.mark.parametrize("name", ["", "9lives", "has space", "dash-ed", "x" * 101, "é"])
def test_invalid_names_are_refused_with_what_a_name_must_be(name):
    with pytest.raises(ValueError, match="invalid metric name .*letters, digits and '_'"):
        metrics.counter(name)


def test_a_name_that_is_not_a_string_is_refused():
    with pytest.raises(TypeError, match="a metric name is a string"):
        metrics.gauge(3)


@pytest.mark.parametrize("call,error,message", [
    (lambda: metrics.counter("test_m_c").inc(-1), ValueError, "cannot go down"),
    (lambda: metrics.counter("test_m_c").inc("1"), TypeError, "must be a number"),
    (lambda: metrics.gauge("test_m_g").set(math.nan), ValueError, "finite"),
    (lambda: metrics.gauge("test_m_g").set(True), TypeError, "must be a number"),
    (lambda: metrics.histogram("test_m_h").observe(math.inf), ValueError, "finite"),
    (lambda: metrics.histogram("test_m_h2", buckets=[2, 1]), ValueError, "strictly increasing"),
    (lambda: metrics.histogram("test_m_h3", buckets=[]), ValueError, "non-empty"),
    (lambda: metrics.histogram("test_m_h4", buckets=["a"]), TypeError, "list of numbers"),
])
def test_bad_values_are_refused_at_the_call(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_refused_value_changes_nothing():
    c = metrics.counter("test_m_unchanged")
    c.inc(5)
    with pytest.raises(ValueError):
        c.inc(-1)
    assert c.value == 5

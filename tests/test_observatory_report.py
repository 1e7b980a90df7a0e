"""splay.observatory.report and `splay report`: a run-data document as one self-contained HTML
file (the browser side is in test_web_page.py)."""
import json
import os
import subprocess
import sys

import pytest

from splay.observatory import report, rundata
from support_rundata import CALLS_PER_SECOND, churned_run
from test_deploy_support import PYTHONPATH


def test_summary_counts_the_calls_errors_and_bytes_of_each_nodes_last_sample():
    doc = churned_run(nodes=8, seconds=30)
    figures = report.summary(doc)
    # 7 nodes run 30 s, the crashed one 15 s
    assert figures["calls"] == figures["served"] == CALLS_PER_SECOND * (7 * 30 + 15)
    assert figures["errors"] == 7 * 10 + 5
    assert figures["nodes"] == 8 and figures["duration"] == 30.5
    assert 0 < figures["p50"] < figures["p99"]
    assert figures["bytes_sent"] == sum(30 * (3000 + 100 * n) for n in range(7)) + 15 * 3700


def test_app_metrics_sum_counters_and_give_histogram_medians():
    rows = {name: (kind, value) for name, kind, value in report.app_metrics(churned_run())}
    assert rows["lookups"] == ("counter", f"{CALLS_PER_SECOND * (7 * 30 + 15):,}")
    assert rows["view"] == ("gauge", "32")
    assert rows["hops"][0] == "histogram" and "4500 observations" in rows["hops"][1]


def test_report_is_self_contained_and_holds_what_a_rerun_needs():
    doc = churned_run()
    page = report.render(doc)
    assert "<script src" not in page and "<link" not in page and "http://" not in page.split("<script>")[0]
    for needed in (doc["run"]["command"], doc["run"]["app_sha256"], "3.13.5", "0.1.0",
                   "at 10s leave 25%", "leave 25%", "node 3 ring size 8 at 30"):
        assert needed in page, needed
    inlined = page.split('<script id="rundata" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(inlined) == doc


def test_a_log_line_holding_a_script_end_tag_cannot_break_out_of_the_report():
    doc = churned_run(nodes=2, seconds=4)
    doc["logs"].append({"t": 4.0, "node": 0, "line": "</script><script>alert(1)</script>"})
    page = report.render(doc)
    assert "<script>alert(1)" not in page
    inlined = page.split('<script id="rundata" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(inlined)["logs"][-1]["line"] == "</script><script>alert(1)</script>"


def test_an_invalid_document_is_refused_with_what_is_wrong():
    doc = churned_run(nodes=2, seconds=4)
    del doc["run"]["seed"]
    with pytest.raises(ValueError, match="seed"):
        report.render(doc)


def splay(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "splay.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH), cwd=cwd, timeout=60)


def test_splay_report_reads_a_metrics_file_or_a_run_directory(tmp_path):
    rundata.dump(churned_run(), str(tmp_path / "metrics.json"))
    for source in (tmp_path / "metrics.json", tmp_path):
        out = tmp_path / "out.html"
        result = splay("report", str(source), "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert "written to" in result.stdout and out.read_text().startswith("<!doctype html>")
        out.unlink()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.json", "no such file"),
    (lambda d: d, "without metrics.json"),
    (lambda d: (d / "bad.json").write_text("{not json") and d / "bad.json", "bad.json"),
])
def test_splay_report_says_what_is_wrong_with_its_source(tmp_path, make, message):
    source = make(tmp_path)
    result = splay("report", str(source), "-o", str(tmp_path / "out.html"))
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "out.html").exists()

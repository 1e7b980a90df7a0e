"""The page of `splay check --html`, opened from a file in headless Chromium: the verdict, the
latency table and the timeline render, the blocked operation is marked, no console errors."""
import shutil

import pytest

from splay import check
from splay.check import timeline

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium "
                                "(the test extra) and Debian's chromium + chromium-driver")
if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
    pytest.skip("the browser tests need Debian's chromium and chromium-driver (scripts/setup.sh "
                "installs them)", allow_module_level=True)

STALE = [
    {"process": 0, "type": "invoke", "f": "write", "value": ["x", 1], "time": 0.0},
    {"process": 0, "type": "ok", "f": "write", "value": ["x", 1], "time": 0.01},
    {"process": 0, "type": "invoke", "f": "write", "value": ["x", 2], "time": 0.02},
    {"process": 0, "type": "ok", "f": "write", "value": ["x", 2], "time": 0.03},
    {"process": 1, "type": "invoke", "f": "read", "value": ["x", None], "time": 0.025},
    {"process": 2, "type": "invoke", "f": "write", "value": ["y", 7], "time": 0.026},
    {"process": 2, "type": "info", "f": "write", "value": ["y", 7], "time": 0.05},
    {"process": 1, "type": "ok", "f": "read", "value": ["x", 1], "time": 0.04},
    {"process": 1, "type": "invoke", "f": "read", "value": ["x", None], "time": 0.06},
    {"process": 1, "type": "ok", "f": "read", "value": ["x", 1], "time": 0.07},
]


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options)
    yield driver
    driver.quit()


def test_the_counterexample_page_renders_offline(browser, tmp_path):
    result = check.check("kv", STALE)
    assert result.valid == "invalid"
    page = tmp_path / "kv.html"
    timeline.write(result, page)
    browser.get(page.as_uri())
    assert browser.find_element("id", "verdict").text == "INVALID"
    rows = browser.find_elements("css selector", "#latencies tr")
    assert len(rows) == 1 + 2                      # header, read, write
    bars = browser.find_elements("css selector", "#timeline g.op rect")
    assert len(bars) == len(result.counterexample["ops"]) >= 2
    red = [b for b in bars if b.get_attribute("fill") == "#c0392b"]
    assert len(red) == 1                           # the read no order can place
    assert all(float(b.get_attribute("width")) > 0 for b in bars)
    assert "no order lets" in browser.find_element("tag name", "pre").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    browser.save_screenshot(str(tmp_path / "kv.png"))


def test_a_valid_history_draws_its_operations(browser, tmp_path):
    result = check.check("kv", STALE[:4])
    page = tmp_path / "ok.html"
    timeline.write(result, page)
    browser.get(page.as_uri())
    assert browser.find_element("id", "verdict").text == "VALID"
    assert len(browser.find_elements("css selector", "#timeline g.op")) == 2


def test_a_transaction_cycle_page_shows_the_cycle_in_order(browser, tmp_path):
    skew = [
        {"process": 0, "type": "invoke", "f": "txn", "value": [["r", "x", None], ["append", "y", 1]], "time": 0.0},
        {"process": 1, "type": "invoke", "f": "txn", "value": [["r", "y", None], ["append", "x", 2]], "time": 0.01},
        {"process": 0, "type": "ok", "f": "txn", "value": [["r", "x", []], ["append", "y", 1]], "time": 0.02},
        {"process": 1, "type": "ok", "f": "txn", "value": [["r", "y", []], ["append", "x", 2]], "time": 0.03},
        {"process": 2, "type": "invoke", "f": "txn", "value": [["r", "x", None], ["r", "y", None]], "time": 0.04},
        {"process": 2, "type": "ok", "f": "txn", "value": [["r", "x", [2]], ["r", "y", [1]]], "time": 0.05},
    ]
    result = check.check("list-append", skew)
    page = tmp_path / "txn.html"
    timeline.write(result, page)
    browser.get(page.as_uri())
    assert browser.find_element("id", "verdict").text == "INVALID"
    assert len(browser.find_elements("css selector", "#timeline g.op rect")) == 2   # the cycle
    text = browser.find_element("tag name", "pre").text
    assert "G2: a cycle of 2 transactions" in text and "-rw(x)->" in text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.save_screenshot(str(tmp_path / "txn.png"))

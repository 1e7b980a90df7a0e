"""The live page and the reports in headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): signed in from a link, charts drawn with data, the node table sorts, the log
filters and follows, updates arrive over Server-Sent Events, no console error. Screenshots go
to the test's directory (and to docs/ with SPLAY_DOCS_SCREENSHOTS=1)."""
import os
import shutil

import pytest

from splay.observatory import report
from support_rundata import churned_run
from test_deploy_support import ROOT, TICKER_APP, start_bed, wait_for, write_app

webdriver = pytest.importorskip("selenium.webdriver")
if not shutil.which("chromedriver"):
    pytest.skip("chromium-driver is needed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

DOCS = os.path.join(ROOT, "docs")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.add_argument("--headless=new")
    options.add_argument("--no-sandbox")
    options.add_argument("--disable-gpu")
    options.add_argument("--window-size=1400,1800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(shutil.which("chromedriver")))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def until(driver, script, what, timeout=30):
    """Wait until the page's ``script`` (a JS expression) is truthy; returns its value."""
    value = None

    def check():
        nonlocal value
        value = driver.execute_script("return " + script)
        return value
    wait_for(check, timeout, what)
    return value


def plotted_points(driver, element):
    """Points of the plotly traces drawn in ``element`` (0 when nothing is drawn)."""
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return el.data ? el.data.reduce((n, t) => n + (t.y || []).filter(v => v !== null).length, 0) : 0;",
        element)


def screenshot(driver, tmp_path, name):
    path = str(tmp_path / name)
    driver.save_screenshot(path)
    if os.environ.get("SPLAY_DOCS_SCREENSHOTS"):
        shutil.copy(path, os.path.join(DOCS, name))
    return path


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "page", 2)
    yield bed
    bed.down()


def test_the_live_page_opens_signed_in_and_follows_a_job(bed, browser, tmp_path):
    app = write_app(tmp_path, "ticker.py", TICKER_APP)
    with open(app) as f:
        job = bed.client().post("/api/jobs", {"name": "ticker.py", "code": f.read(), "nodes": 4})
    try:
        browser.get(f"{bed.url}/#token={bed.token}")
        # the token left the address bar for this tab's sessionStorage
        assert "token" not in browser.current_url
        assert browser.execute_script("return sessionStorage.getItem('splayToken')") == bed.token
        until(browser, "document.querySelectorAll('#daemons tbody tr').length === 2", "the daemons")
        until(browser, "document.querySelectorAll('#nodes tbody tr').length === 4", "the job's nodes")
        until(browser, "doc.nodes.every(n => n.state === 'RUNNING')", "the nodes to run")
        wait_for(lambda: plotted_points(browser, "states") > 0, 30, "the node states plot")

        # updates arrive without a reload: new log lines, the same page
        browser.execute_script("window.notReloaded = true")
        before = browser.execute_script("return doc.logs.length")
        until(browser, f"doc.logs.length > {before} + 8", "new log lines pushed by the stream")
        assert browser.execute_script("return window.notReloaded") is True

        # the log shows the newest lines and follows them
        last = browser.execute_script("return doc.logs[doc.logs.length - 1].line")
        text = browser.find_element("id", "logs").text
        assert last in text.splitlines()[-1]

        # node filter, then text filter
        browser.find_element("css selector", "#lognode option[value='2']").click()
        lines = browser.find_element("id", "logs").text.splitlines()
        assert lines and all("[  2] node 2 tick" in line for line in lines)
        browser.find_element("css selector", "#lognode option[value='']").click()
        browser.find_element("id", "logtext").send_keys("tick 7")
        lines = browser.find_element("id", "logs").text.splitlines()
        assert lines and all("tick 7" in line for line in lines)

        # sorting the node table: by node down, then by address up
        # (the table is rebuilt on every update, so the header is found and clicked in one script
        # and the order read in one script: an element found earlier may be gone by the click)
        browser.execute_script(
            "[...document.querySelectorAll('#nodes th')]"
            ".find(th => th.textContent.replace(/[ ▴▾]/g, '') === 'node').click()")
        until(browser, "[...document.querySelectorAll('#nodes tbody tr')]"
                       ".map(tr => tr.cells[0].textContent).join() === '3,2,1,0'", "the nodes sorted down")
        screenshot(browser, tmp_path, "observatory-page.png")
        assert console_errors(browser) == []
    finally:
        bed.client().post(f"/api/jobs/{job['id']}/kill")


def test_a_report_opens_from_a_file_with_its_plots(browser, tmp_path):
    path = tmp_path / "report.html"
    report.write(churned_run(nodes=8, seconds=30), str(path))
    browser.get(f"file://{path}")
    for plot in ("states", "rpc", "latency", "bytes", "app"):
        wait_for(lambda: plotted_points(browser, plot) > 0, 30, f"the {plot} plot")
    rate = browser.execute_script("return document.getElementById('rpc').data[0].y")
    assert max(rate) == 8 * 20          # every node makes 20 calls/s before the crash
    rows = browser.find_elements("css selector", "#events tbody tr")
    assert any("churn" in row.text for row in rows)
    screenshot(browser, tmp_path, "observatory-report.png")
    assert console_errors(browser) == []


@pytest.mark.parametrize("mode", [[], ["--in-process"]], ids=["processes", "in-process"])
def test_the_report_of_a_real_run_shows_what_the_run_did(browser, tmp_path, mode):
    import subprocess
    import sys
    from splay.deploy.testbed import free_port_range
    from test_run_metrics import APP, ENV
    (tmp_path / "app.py").write_text(APP)      # node 1 makes exactly 1,000 calls, 3 failing
    (tmp_path / "stop").touch()
    path = tmp_path / "run.html"
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(tmp_path / "app.py"),
                          "-n", "2", "--log-dir", str(tmp_path), "--first-port",
                          str(free_port_range(2)), "--metrics-interval", "0.2", "--report",
                          str(path), *mode, "--", str(tmp_path / "stop")],
                         env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert f"[splay] report: {path}" in out.stderr
    browser.get(f"file://{path}")
    for plot in ("states", "rpc", "latency", "bytes", "app"):
        wait_for(lambda: plotted_points(browser, plot) > 0, 30, f"the {plot} plot")
    def table(ident):
        return [[cell.text for cell in row.find_elements("css selector", "td")]
                for row in browser.find_elements("css selector", f"#{ident} tbody tr")]
    summary = dict(table("summary"))
    assert (summary["nodes"], summary["calls served"]) == ("2", "1,000")  # rpcq pings: not served
    calls = {row[0]: row[1:] for row in table("functions")}
    # made by node 1, served by node 0; each failing call is an error for both
    assert calls["rpcq/ping_me"][:4] == ["1,000", "1,000", "6", "0"]
    assert calls["rpcq/ping_me"][4].endswith(" ms") and calls["rpcq/ping_me"][5].endswith(" ms")
    # the summary adds every function's errors: node 1's first pings may also fail while node 0
    # is still starting (its own process), which the table shows under rpcq/(ping)
    errors = sum(int(counts[2].replace(",", "")) for counts in calls.values())
    assert errors >= 6 and summary["errors (seen by callers and servers)"] == f"{errors:,}"
    # the plots' totals agree with the table: the calls of the rate plot add up to 1,000
    made = browser.execute_script(
        "const d = JSON.parse(document.getElementById('rundata').textContent);"
        "return SplayCharts.series(d).reduce((n, r) => n + r.made * r.dt, 0)")
    assert made == pytest.approx(int(summary["calls made"].replace(",", "")))
    rerun = dict(table("rerun"))
    assert "--report" in rerun["command"] and rerun["mode"] == ("in-process" if mode else "processes")
    import hashlib
    assert rerun["application sha256"] == hashlib.sha256(APP.encode()).hexdigest()
    kinds = [row.text.split()[1] for row in browser.find_elements("css selector", "#events tbody tr")]
    assert kinds.count("node_start") == 2 and kinds.count("node_stop") == 2
    assert console_errors(browser) == []

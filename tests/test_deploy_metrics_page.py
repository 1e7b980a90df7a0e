"""The live page of a deployed job in headless Chromium: the nodes' samples, shipped by the
daemons and stored by the controller, arrive over the event stream and fill the RPC, latency,
bytes and application plots; the node states come from the stored node events. A screenshot
goes to the test's directory."""
import shutil

import pytest

from test_deploy_support import start_bed, wait_for, write_app
from test_web_page import browser, console_errors, plotted_points, screenshot, until  # noqa: F401

webdriver = pytest.importorskip("selenium.webdriver")
if not shutil.which("chromedriver"):
    pytest.skip("chromium-driver is needed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

# Every node serves; each calls the next one in the ring about 50 times a second, forever.
CALLER_APP = '''
from splay.base import *
from splay import metrics
import splay.rpcq as rpcq

def hello(x):
    return x

def main():
    rpcq.server(job.me.port)
    nodes = job.nodes()
    other = nodes[(job.position + 1) % len(nodes)]
    calls = metrics.counter("calls")
    while True:
        ok, _ = rpcq.acall(other, ["hello", 1])
        if ok:
            calls.inc()
        events.sleep(0.02)

events.run(main)
'''


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "metricspage", 2)
    yield bed
    bed.down()


def test_the_live_page_plots_a_deployed_jobs_metrics(bed, browser, tmp_path):  # noqa: F811
    app = write_app(tmp_path, "caller.py", CALLER_APP)
    with open(app) as f:
        job = bed.client().post("/api/jobs", {"name": "caller.py", "code": f.read(), "nodes": 4})
    try:
        browser.get(f"{bed.url}/#token={bed.token}")
        until(browser, "document.querySelectorAll('#nodes tbody tr').length === 4",
              "the job's nodes")
        until(browser, "doc.nodes.every(n => n.state === 'RUNNING')", "the nodes to run")
        browser.execute_script("window.notReloaded = true")
        # Samples of every node keep arriving over the stream, without a reload.
        until(browser, "new Set(doc.samples.map(s => s.node)).size === 4", "samples of every node")
        before = browser.execute_script("return doc.samples.length")
        until(browser, f"doc.samples.length >= {before} + 8", "newer samples pushed by the stream")
        assert browser.execute_script("return window.notReloaded") is True
        for plot in ("states", "rpc", "latency", "bytes", "app"):
            wait_for(lambda: plotted_points(browser, plot) > 2, 30, f"points in the {plot} plot")
        kinds = browser.execute_script("return doc.events.map(e => e.kind)")
        assert kinds.count("node_start") == 4
        assert browser.execute_script("return SplayCharts.summary(doc).served") > 0
        # The nodes' samples of one second line up: the plotted rate is the job's, not a node's
        # (one node makes at most 50 calls/s).
        until(browser, "Math.max(...SplayCharts.series(doc).map(r => r.made)) > 60",
              "the rate of all the nodes together")
        screenshot(browser, tmp_path, "deployed-job-page.png")
        assert console_errors(browser) == []
    finally:
        bed.client().post(f"/api/jobs/{job['id']}/kill")

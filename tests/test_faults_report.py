"""The faults of a ``splay run --faults`` on its report, in headless Chromium: each applied fault
is a row of the events table and a red line on the plots, at the time it was applied."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from splay.observatory import report
from test_deploy_support import wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent

webdriver = pytest.importorskip("selenium.webdriver")
if not shutil.which("chromedriver"):
    pytest.skip("chromium-driver is needed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

# Node 1 calls node 0 every 50 ms for 4 s; node 0 is paused from 1 s to 2.5 s.
APP = """
from splay.base import *
from splay import rpc

def hello():
    return "hi"

def main():
    if job.position == 0:
        rpc.server(job.me)
        events.sleep(4.5)
    else:
        events.sleep(0.3)
        for _ in range(80):
            rpc.call(job.nodes()[0], "hello", 0.2)
            events.sleep(0.05)
    events.exit()

events.run(main)
"""


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_the_report_shows_each_fault_where_it_happened(browser, tmp_path):
    from splay.deploy.testbed import free_port_range
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "faults.txt").write_text("pause 0 at 1s for 1.5s\nloss 1 20% from 3s\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "-n", "2", "-q",
                          "--first-port", str(free_port_range(2)), "--faults", "faults.txt",
                          "--metrics-interval", "0.25"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "metrics.json").read_text())
    path = tmp_path / "report.html"
    report.write(doc, str(path))
    browser.get(f"file://{path}")
    rows = [row.text for row in browser.find_elements("css selector", "#events tbody tr")]
    faults = [text for text in rows if " fault " in f" {text} "]
    assert [text.split("fault", 1)[1].strip() for text in faults] == [
        "0 pause 0 at 1s for 1.5s: begins", "0 pause 0 at 1s for 1.5s: ends",
        "1 loss 1 20% from 3s: begins"], rows
    wait_for(lambda: browser.execute_script(
        "const el = document.getElementById('rpc'); return el.layout && el.layout.shapes;"), 30,
        "the rpc plot")
    red = browser.execute_script(
        "return document.getElementById('rpc').layout.shapes"
        ".filter(s => s.line.color === '#d62728').map(s => s.x0);")
    assert len(red) == 3 and 0.9 < red[0] < 1.6 and 2.4 < red[1] < 3.1, red
    browser.save_screenshot(str(tmp_path / "faults-report.png"))
    if os.environ.get("SPLAY_DOCS_SCREENSHOTS"):
        shutil.copy(tmp_path / "faults-report.png", ROOT / "docs" / "faults-report.png")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

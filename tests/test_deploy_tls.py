"""Daemons over TLS, and the web page."""
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from test_deploy_support import QUICK_APP, splay_cli, start_bed, write_app


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "controller.pem", directory / "controller.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=splay-controller", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_daemons_connect_and_run_jobs_over_tls(tmp_path_factory, tmp_path, certificate):
    cert, key = certificate
    bed = start_bed(tmp_path_factory, "tls", 2,
                    controller_args=["--tls-cert", cert, "--tls-key", key],
                    daemon_args=["--sandbox", "off", "--tls", "--tls-ca", cert])
    try:
        app = write_app(tmp_path, "quick.py", QUICK_APP)
        submitted = splay_cli(bed, "submit", app, "-n", 4)
        assert submitted.returncode == 0, submitted.stderr
        job_id = re.search(r"job (\d+) \(ref", submitted.stderr).group(1)
        logs = splay_cli(bed, "logs", job_id, "-f", "--raw")
        assert len(re.findall(r"node \d at 127.0.0.1:\d+ sees 4", logs.stdout)) == 4
        assert "(TLS)" in open(f"{bed.dir}/controller.log").read()
    finally:
        bed.down()


def test_the_web_page_is_served_and_the_api_wants_the_token(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "web", 1)
    try:
        with urllib.request.urlopen(bed.url + "/", timeout=10) as page:
            assert page.headers["Content-Type"].startswith("text/html")
            assert b"SPLAY controller" in page.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bed.url + "/api/jobs", timeout=10)
        assert refused.value.code == 401
        assert bed.client().get("/api/jobs") == []
    finally:
        bed.down()


def test_the_web_page_scripts_parse():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (JavaScript) is needed to check the page's scripts")
    import splay.deploy.web as web
    for name in ("page.js", "charts.js"):
        result = subprocess.run([node, "--check", f"{web.STATIC}/{name}"], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
    with open(f"{web.STATIC}/page.js", encoding="utf-8") as f:
        page = f.read()
    # The job view shows the churn figures the API gives (docs/churn.md).
    assert "job.churn.max_lag_ms" in page and "job.counts" in page

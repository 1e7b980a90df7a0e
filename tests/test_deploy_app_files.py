"""Applications of several files deployed: `splay submit` ships the whole tree, the controller
stores it, the daemons unpack it and the nodes import its modules (loopback testbed)."""
import base64
import json
import os
import re

import pytest

from test_app_files import two_file_app
from test_deploy_support import ROOT, splay_cli, start_bed, wait_for


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "appfiles", 2)
    yield bed
    bed.down()


def node_lines(bed, job_id, enough):
    """The job's node log lines once ``enough(lines)`` holds."""
    client = bed.client()

    def lines():
        rows = client.get(f"/api/jobs/{job_id}/logs?after_time=-1&limit=100000")["lines"]
        found = [r["line"] for r in rows if r["instance_id"] is not None]
        return found if enough(found) else None
    return wait_for(lines, 90, "the nodes' log lines")


def test_a_two_file_directory_runs_deployed(bed, tmp_path):
    directory = two_file_app(tmp_path / "app")
    result = splay_cli(bed, "submit", directory, "-n", 4, "--json", "--", "ARG")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["settings"]["app_main"] == "__main__.py" and "app_bundle" not in job["settings"]
    lines = node_lines(bed, job["id"], lambda found: len(found) >= 4)
    assert sorted(lines) == [f"hello from node {i} ARG" for i in range(4)]


def test_the_chord_example_prints_its_ring_from_a_deployed_node_0(bed):
    app = os.path.join(ROOT, "examples", "chord.py")
    result = splay_cli(bed, "submit", app, "-n", 8, "--factor", 1, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    lines = node_lines(bed, job["id"], lambda found: sum("lookup" in l for l in found) >= 5)
    assert any(line.startswith("ring forming:") or line.startswith("ring whole:") for line in lines)
    assert any(line.startswith("ring of 8 nodes:") for line in lines)
    assert not any("ModuleNotFoundError" in line for line in lines)
    # node 0 stops every node after its lookups: the job ends by itself
    client = bed.client()
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}")["state"] not in ("RUNNING", "STARTING"),
             60, "the Chord job to end")


def test_a_bundle_too_big_or_broken_is_refused_and_the_controller_keeps_serving(bed, tmp_path):
    from splay import app_files
    from splay.deploy.cli import CommandError
    client = bed.client()
    big = base64.b64encode(b"\0" * (app_files.MAX_APP_BYTES + 1)).decode()
    for bundle, main, message in ((big, "__main__.py", "more than the"),
                                  ("aGVsbG8=", "__main__.py", "not a zip archive"),
                                  (app_files.load(two_file_app(tmp_path / "a")).encoded(),
                                   "missing.py", "is not a file of the bundle")):
        with pytest.raises(CommandError, match=message):
            client.post("/api/jobs", {"name": "bad", "bundle": bundle, "main": main, "nodes": 1})
    assert isinstance(client.get("/api/jobs"), (list, dict))
    # `splay submit` says the same before sending anything
    missing = splay_cli(bed, "submit", tmp_path / "nothere", "-n", 1)
    assert missing.returncode != 0 and "not found" in missing.stderr


@pytest.mark.parametrize("example, says, ends", [
    ("epidemic.py", r"^m4: delivered by 6/6 nodes", True),      # node 0 stops every node
    ("cyclon.py", r"^in-degree min \d+ max \d+ stdev", False),  # keeps shuffling, reports
    ("chord_ft.py", r"^ring of \d+ nodes; lookups matching that ring", False),
])
def test_every_example_says_what_it_does_when_deployed(bed, example, says, ends):
    result = splay_cli(bed, "submit", os.path.join(ROOT, "examples", example), "-n", 6, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    lines = node_lines(bed, job["id"], lambda found: any(re.search(says, l) for l in found))
    assert not any("Traceback" in line for line in lines)
    client = bed.client()
    if ends:
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}")["state"] not in ("RUNNING", "STARTING"),
                 60, f"the {example} job to end")
    else:
        assert client.get(f"/api/jobs/{job['id']}")["state"] == "RUNNING"
        assert client.post(f"/api/jobs/{job['id']}/kill")["killed"] is True


def test_sandboxed_nodes_read_their_jobs_own_copy(tmp_path_factory):
    from splay.deploy.daemon import sandbox_available
    if not sandbox_available():
        pytest.skip("splay.sandbox is not available in this installation")
    bed = start_bed(tmp_path_factory, "appfiles-sandbox", 1, daemon_args=["--sandbox", "on"])
    try:
        app = os.path.join(ROOT, "examples", "chord.py")
        result = splay_cli(bed, "submit", app, "-n", 4, "--json")
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        lines = node_lines(bed, job["id"], lambda found: sum("lookup" in l for l in found) >= 5)
        assert any(line.startswith("ring of 4 nodes:") for line in lines)
    finally:
        bed.down()

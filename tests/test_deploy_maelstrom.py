"""Maelstrom workloads deployed with `splay submit --maelstrom` on a loopback testbed: the
adapter and the node's code shipped as a directory application, the controller checking the
job's history at its end (verdict in `splay job`, history with `splay history`)."""
import json
import os
import signal
import sys

import pytest

from test_deploy_support import ROOT, splay_cli, start_bed, wait_for

EXAMPLES = os.path.join(ROOT, "examples", "maelstrom")
QUICK = ["--workload-time", "1.5", "--recovery", "1", "--op-timeout", "1", "--init-timeout", "10",
         "--settle", "0"]


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "maelstrom", 2)
    yield bed
    bed.down()


def submit(bed, workload, *args, n=4):
    return splay_cli(bed, "submit", "--maelstrom", workload, "-n", n, *QUICK, *map(str, args),
                     timeout=240)


def test_a_pysplay_broadcast_application_is_deployed_and_judged(bed, tmp_path):
    run = submit(bed, "broadcast", "--app", os.path.join(EXAMPLES, "broadcast_node.py"),
                 "--rate", 20)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "\nbroadcast: VALID\n" in run.stdout, run.stdout + run.stderr
    assert "final reads: 4" in run.stdout
    job_id = run.stderr.split("job ", 1)[1].split()[0]
    shown = splay_cli(bed, "job", job_id, "--json")
    job = json.loads(shown.stdout)
    assert job["state"] == "ENDED" and job["check"]["valid"] == "valid"
    assert job["settings"]["maelstrom"]["workload"] == "broadcast"
    text = splay_cli(bed, "job", job_id).stdout
    assert "check: broadcast: VALID" in text
    out = tmp_path / "history.jsonl"
    assert splay_cli(bed, "history", job_id, "-o", out).returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["f"] for r in records} == {"broadcast", "read"}
    assert {r["node"] for r in records} == {0, 1, 2, 3}
    check = splay_cli(bed, "check", "broadcast", out)
    assert check.returncode == 0 and check.stdout.startswith("broadcast: VALID")


def test_a_maelstrom_program_runs_deployed_on_unconfined_daemons(bed):
    program = os.path.join(ROOT, "tests", "maelstrom_node.py")
    # an interpreter on PATH and the script it runs, shipped; the program is caught
    run = submit(bed, "unique-ids", "--bin", f"{sys.executable} {program} --same-ids",
                 "--rate", 20, n=3)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "unique-ids: INVALID" in run.stdout and "duplicate-id" in run.stdout


def test_bad_maelstrom_submissions_are_refused_before_sending(bed, tmp_path):
    for args, message in ((["--app", tmp_path / "missing.py"], "not found"),
                          (["--bin", "no-such-program --flag"], "names no file to ship"),
                          (["--app", os.path.join(EXAMPLES, "broadcast_node.py"), "--", "x"],
                           "the nodes' arguments are the adapter's")):
        run = submit(bed, "broadcast", *args)
        assert run.returncode == 2 and message in run.stderr, run.stderr
    run = splay_cli(bed, "submit", "--maelstrom", "queue", "--bin", "x", "-n", 1)
    assert run.returncode == 2 and "invalid choice" in run.stderr


def test_a_confined_node_cannot_start_a_program_and_says_why(tmp_path_factory):
    from splay.deploy.daemon import sandbox_available
    if not sandbox_available():
        pytest.skip("splay.sandbox is not available in this installation")
    bed = start_bed(tmp_path_factory, "maelstrom-sandbox", 1, daemon_args=["--sandbox", "on"])
    try:
        program = os.path.join(ROOT, "tests", "maelstrom_node.py")
        run = submit(bed, "echo", "--bin", program, n=2)
        assert run.returncode != 0
        assert "echo: UNKNOWN" in run.stdout and "no operation was recorded" in run.stdout
        job_id = run.stderr.split("job ", 1)[1].split()[0]
        logs = splay_cli(bed, "logs", job_id).stdout
        assert "the sandbox refused to start the Maelstrom program" in logs, logs
        assert "--maelstrom-programs" in logs and "--sandbox off" in logs
        # the pure-Python path runs confined
        run = submit(bed, "echo", "--app", os.path.join(ROOT, "tests", "maelstrom_echo_app.py"),
                     "--rate", 20, n=2)
        assert run.returncode == 0 and "\necho: VALID\n" in run.stdout, run.stdout + run.stderr
    finally:
        bed.down()


def test_a_daemon_with_maelstrom_programs_starts_them_beside_confined_nodes(tmp_path_factory,
                                                                            tmp_path):
    from splay.deploy.daemon import sandbox_available
    if not sandbox_available():
        pytest.skip("splay.sandbox is not available in this installation")
    bed = start_bed(tmp_path_factory, "maelstrom-programs", 1,
                    daemon_args=["--sandbox", "on", "--maelstrom-programs"])
    try:
        program = os.path.join(ROOT, "tests", "maelstrom_node.py")
        run = submit(bed, "broadcast", "--bin", program, "--rate", 20, n=3)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "\nbroadcast: VALID\n" in run.stdout and "final reads: 3" in run.stdout
        # the programs end with their nodes
        wait_for(lambda: not job_processes_named("maelstrom_node.py"), 15,
                 "the daemon to kill the programs of the ended nodes")
        # a file that is no program: the daemon says so, the node gives up on init
        not_a_program = tmp_path / "notes.txt"
        not_a_program.write_text("this is not a program\n")
        run = submit(bed, "echo", "--bin", not_a_program, "--init-timeout", 2, n=1)
        assert run.returncode != 0 and "echo: UNKNOWN" in run.stdout, run.stdout + run.stderr
        job_id = run.stderr.split("job ", 1)[1].split()[0]
        logs = splay_cli(bed, "logs", job_id).stdout
        assert "the daemon cannot start the program" in logs, logs
        assert "did not answer init" in logs
    finally:
        bed.down()


def job_processes_named(name):
    """PIDs of live processes whose command line holds ``name``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if name.encode() in f.read() and int(entry) != os.getpid():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_the_controllers_verdict_is_unknown_when_the_history_cannot_be_trusted(tmp_path):
    from splay.deploy.db import open_database
    from splay.maelstrom.deployed import verdict
    db = open_database(str(tmp_path / "c.db"))
    job = db.add_job("m", "x", 1, 1, "head", 1.0, None, 0, {}, "RUNNING")
    daemon = db.daemon_connected("d", "127.0.0.1", {}, 0)
    [instance] = db.add_instances(job["id"], [daemon], "RUNNING")
    records = ['[history] {"process": "0.1", "type": "invoke", "f": "echo", "value": "a", "time": 1}',
               '[history] {"process": "0.1", "type": "ok", "f": "echo", "value": "a", "time": 2}']
    db.add_logs([(job["id"], instance, t, "stdout", line) for t, line in enumerate(records)])
    assert verdict(db, job["id"], "echo")["valid"] == "valid"
    dropped = verdict(db, job["id"], "echo", dropped_lines=3)
    assert dropped["valid"] == "unknown" and "log limits dropped 3" in dropped["why"]
    db.add_logs([(job["id"], instance, 5, "stdout", "[history] {not json")])
    broken = verdict(db, job["id"], "echo")
    assert broken["valid"] == "unknown" and "cannot be read" in broken["why"]
    other = db.add_job("m2", "x", 1, 1, "head", 1.0, None, 0, {}, "RUNNING")
    assert "no operation was recorded" in verdict(db, other["id"], "echo")["why"]


def test_a_verdict_a_controller_restart_interrupted_is_checked_again(bed):
    from splay.deploy.db import open_database
    run = submit(bed, "echo", "--app", os.path.join(ROOT, "tests", "maelstrom_echo_app.py"),
                 "--rate", 20, n=2)
    assert run.returncode == 0, run.stdout + run.stderr
    job_id = int(run.stderr.split("job ", 1)[1].split()[0])
    bed.stop_controller(signal.SIGKILL)          # a crash; then the verdict is found missing
    db = open_database(bed.db)
    job = db.job(job_id)
    db.update_job_settings(job_id, dict(job["settings"], maelstrom=dict(
        job["settings"]["maelstrom"], check={"valid": "checking"})))
    db.close()
    bed.start_controller()
    bed.wait_daemons()
    wait_for(lambda: json.loads(splay_cli(bed, "job", job_id, "--json").stdout)["check"]["valid"]
             == "valid", 30, "the restarted controller to check the job again")

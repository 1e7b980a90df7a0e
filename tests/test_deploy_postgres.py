"""The controller on PostgreSQL (skipped, with the reason, when no server can be started)."""
import re
import signal

from test_deploy_support import (COUNTER_APP, fresh_postgres_database, job_processes,
                                 postgres_url, splay_cli, start_bed, wait_for, write_app)


def test_a_job_runs_logs_survives_a_restart_and_dies_on_postgresql(tmp_path_factory, tmp_path):
    url, drop = fresh_postgres_database(postgres_url())
    bed = start_bed(tmp_path_factory, "pg", 3, db=url)
    try:
        app = write_app(tmp_path, "counter.py", COUNTER_APP.format(lines=5))
        submitted = splay_cli(bed, "submit", app, "-n", 9)
        assert submitted.returncode == 0, submitted.stderr
        job_id = int(re.search(r"job (\d+) RUNNING", submitted.stdout).group(1))
        client = bed.client()
        rows = wait_for(lambda: (lambda r: r if len([x for x in r if x["instance_id"]]) == 45
                                 else None)(
            client.get(f"/api/jobs/{job_id}/logs?after_time=-1")["lines"]), 60, "45 lines")
        assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
        bed.stop_controller(signal.SIGKILL)
        bed.start_controller()
        bed.wait_daemons(3)
        info = client.get(f"/api/jobs/{job_id}")
        assert info["state"] == "RUNNING" and info["counts"] == {"RUNNING": 9}
        assert splay_cli(bed, "kill", job_id).returncode == 0
        assert job_processes(info["ref"]) == []
    finally:
        bed.down()
        drop()

"""A daemon that starts removes what a crashed earlier run of itself left: its nodes' processes
(and what they started), its job directories past retention (and, in
test_deploy_kernel_shaping.py, its tc shaping). Real controller, daemon and node processes."""
import json
import os
import signal
import time

from splay.deploy.daemon_cleanup import leftover_processes
from splay.deploy.testbed import alive
from test_deploy_support import splay_cli, start_bed, wait_for, write_app

# Starts a child in its own process group's... same group and working directory, says both pids,
# then waits: the parent-death signal kills the node with its daemon, not the child.
FAMILY_APP = '''
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"pids {os.getpid()} {child.pid}", flush=True)
time.sleep(600)
'''


def test_a_restarted_daemon_kills_what_its_crashed_run_left_and_old_job_dirs(tmp_path_factory,
                                                                              tmp_path):
    bed = start_bed(tmp_path_factory, "cleanup", 1)
    try:
        app = write_app(tmp_path, "family.py", FAMILY_APP)
        result = splay_cli(bed, "submit", app, "-n", 2, "--json")
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)

        def pids():
            rows = bed.client().get(f"/api/jobs/{job['id']}/logs?limit=1000")["lines"]
            found = [tuple(map(int, r["line"].split()[1:])) for r in rows
                     if r["line"].startswith("pids ")]
            return found if len(found) == 2 else None
        families = wait_for(pids, 60, "both nodes to report their pids")
        daemon_dir = os.path.join(bed.dir, "daemon0")
        old_job = os.path.join(daemon_dir, "jobs", "0123456789ab")
        os.makedirs(os.path.join(old_job, "7"))
        long_ago = time.time() - 3600
        for path in (os.path.join(old_job, "7"), old_job):
            os.utime(path, (long_ago, long_ago))

        bed.stop_daemon(0, signal.SIGKILL)                   # a crash: no clean-up of its own
        children = [child for _, child in families]
        wait_for(lambda: not any(alive(node) for node, _ in families), 30,
                 "the nodes to die with their daemon")
        assert all(alive(child) for child in children)       # their children outlive it
        assert sorted(leftover_processes(daemon_dir)) == sorted(children)

        bed.start_daemon(0)
        bed.wait_daemons(1)
        wait_for(lambda: not any(alive(child) for child in children), 30,
                 "the restarted daemon to kill the leftovers")
        assert not os.path.exists(old_job)                   # past retention: removed
        assert os.path.isdir(os.path.join(daemon_dir, "jobs", job["ref"]))   # recent: kept
        log = open(os.path.join(bed.dir, "daemon0.log")).read()
        assert "killed 2 process(es) a previous run of this daemon left" in log
        assert leftover_processes(daemon_dir) == []
    finally:
        bed.down()

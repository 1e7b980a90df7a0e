"""A daemon's limits hold for every job, whatever it asks (issue #19, items 1, 7 and 8).

One controller and one daemon with small limits (real processes). A hostile node tries to lift
its network limits and then to bind the other slots' ports, open too many sockets, send past
``max_send`` and reach a blacklisted host: each is refused, and the next honest job still gets
its ports. A node printing 40 MiB leaves the controller's database bounded, with the drop
marker in the job's log and the count on the job, while another job's log is complete.
"""
import json
import os
import re

import pytest

from splay.deploy.job_limits import DEFAULTS, Limits, node_sandbox, node_settings
from test_deploy_support import COUNTER_APP, splay_cli, start_bed, wait_for, write_app

pytestmark = pytest.mark.timeout(180)

PORTS = 4
DAEMON_LIMITS = ["--max-send", "2000", "--max-sockets", "4", "--log-node-limit", "1M",
                 "--log-rate", "64M", "--log-job-rate", "64M"]

HOSTILE = '''
from splay.base import *
from splay import Restricted, restricted_socket
from splayc import accounting
import sys, time

for name, lift in (("init", lambda: restricted_socket.init({"max_send": 10**9})),
                   ("install", lambda: accounting.install_default(None))):
    try:
        lift()
        print("lifted", name, flush=True)
    except Restricted:
        print("kept", name, flush=True)

def main():
    print("limits", socket.limits(), flush=True)
    me = job.me.port
    first = int(sys.argv[1])
    taken = [p for p in range(first, first + %d) if p != me and socket.bind("127.0.0.1", p)]
    print("other slots bound", taken, socket.last_error, flush=True)
    socks = []
    while len(socks) < 10:
        s = socket.udp()
        if s is None:
            break
        socks.append(s)
    print("sockets", len(socks), socket.last_error, flush=True)
    print("send 300 kB", socks[0].sendto(b"x" * 300_000, "127.0.0.1", me), socks[0].error)
    for s in socks:
        s.close()
    print("blacklisted", socket.connect("127.0.0.9", me), socket.last_error, flush=True)
    print("done", flush=True)
    time.sleep(3600)
events.run(main)
''' % PORTS

HONEST = '''
from splay.base import *
def main():
    server = socket.bind("127.0.0.1", job.me.port)
    print("bound", server is not None, socket.limits()[3:5] == (job.me.port, job.me.port),
          flush=True)
events.run(main)
'''

FLOOD = '''
import sys
line = "x" * 1023
for i in range(40 * 1024):
    sys.stdout.write(line + "\\n")
sys.stdout.flush()
'''


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "limits", 1, ports_per_daemon=PORTS,
                    daemon_args=["--sandbox", "off", *DAEMON_LIMITS])
    yield bed
    bed.down()


def submit(bed, app, *args, app_args=()):
    result = splay_cli(bed, "submit", app, *args, "--json", "--", *app_args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def lines_of(bed, job):
    rows = bed.client().get(f"/api/jobs/{job['id']}/logs?after_time=-1&limit=100000")["lines"]
    return [r for r in rows if r["instance_id"] is not None]


def test_a_hostile_job_keeps_the_daemons_limits_and_the_next_job_gets_its_ports(bed, tmp_path):
    first = bed.first_port
    hostile = submit(bed, write_app(tmp_path, "hostile.py", HOSTILE), "-n", 1,
                     "--max-send", "5000", "--blacklist", "127.0.0.9", app_args=[first])
    port = hostile["instances"][0]["port"]
    wait_for(lambda: any(r["line"] == "done" for r in lines_of(bed, hostile)), 60,
             "the hostile node's attempts")
    assert [r["line"] for r in lines_of(bed, hostile)] == [
        "kept init", "kept install",
        f"limits (2000, {DEFAULTS['max_receive']}, 4, {port}, {port}, None)",
        "other slots bound [] restricted",
        "sockets 4 restricted",
        "send 300 kB None restricted",
        "blacklisted None restricted",
        "done"]
    honest = submit(bed, write_app(tmp_path, "honest.py", HONEST), "-n", PORTS - 1)
    assert honest["state"] in ("RUNNING", "ENDED"), honest
    wait_for(lambda: len(lines_of(bed, honest)) == PORTS - 1, 60, "the honest nodes' lines")
    assert {r["line"] for r in lines_of(bed, honest)} == {"bound True True"}
    assert splay_cli(bed, "kill", hostile["id"]).returncode == 0


def test_a_node_printing_40_mib_is_cut_at_the_log_limit_and_others_are_not(bed, tmp_path):
    database = bed.db
    size_before = sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))
    counter = submit(bed, write_app(tmp_path, "counter.py", COUNTER_APP.format(lines=200)), "-n", 1)
    flood = submit(bed, write_app(tmp_path, "flood.py", FLOOD), "-n", 1)
    done = wait_for(lambda: [r for r in lines_of(bed, flood) if "lines dropped" in r["line"]],
                    120, "the flood's final drop marker")
    forwarded = [r for r in lines_of(bed, flood) if r["stream"] == "stdout"]
    assert 900 <= len(forwarded) <= 1024                      # 1 MiB of 1 KiB lines
    markers = [r["line"] for r in lines_of(bed, flood) if r["stream"] == "splay"]
    assert markers[0] == "[splay] node 0: log limit 1 MiB per node reached: its further lines " \
                         "are dropped and counted"
    dropped = int(re.match(r"\[splay\] node 0: (\d+) lines dropped \(log limit 1 MiB per node\)$",
                           done[-1]["line"]).group(1))
    assert dropped + len(forwarded) == 40 * 1024
    info = bed.client().get(f"/api/jobs/{flood['id']}")
    assert info["log_lines_dropped"] == dropped
    shown = splay_cli(bed, "job", flood["id"])
    assert f"output lines dropped by the daemons' log limits: {dropped}" in shown.stdout
    size_after = sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))
    assert size_after - size_before < 8 << 20, (size_before, size_after)
    wait_for(lambda: len(lines_of(bed, counter)) >= 200, 60, "the other job's 200 lines")
    assert [r["line"] for r in lines_of(bed, counter)] == [f"node 0 line {i}" for i in range(200)]
    assert bed.client().get(f"/api/jobs/{counter['id']}")["log_lines_dropped"] == 0
    splay_cli(bed, "kill", counter["id"])


def test_node_settings_cap_the_jobs_network_limits_at_the_daemons():
    limits = Limits(max_send=1000, max_receive=None, max_sockets=8)
    settings = node_settings({"max_send": 5000, "max_receive": 10, "max_sockets": 2,
                              "start_port": 1, "end_port": 65535, "blacklist": ["10.*"],
                              "app_args": ["a"]}, limits, 20003)
    assert settings == {"max_send": 1000, "max_receive": 10, "max_sockets": 2,
                        "start_port": 20003, "end_port": 20003, "blacklist": ["10.*"],
                        "app_args": ["a"]}
    assert node_settings(None, limits, 20001)["max_send"] == 1000
    assert node_settings({"max_send": "lots"}, limits, 20001)["max_send"] == 1000
    assert node_sandbox(Limits(), 64 << 20, 20002) == {
        "max_memory": 64 << 20, "bind_ports": [20002, 20002], "max_cpu": DEFAULTS["max_cpu"],
        "max_disk": DEFAULTS["max_disk"], "max_files": DEFAULTS["max_files"]}
    with pytest.raises(ValueError, match="max_cpu must be a positive number"):
        Limits(max_cpu=0)


DEFAULT_LIMITS_JOB = '''
import resource
from splay.base import *
print("rlimits", [resource.getrlimit(r)[1] for r in (resource.RLIMIT_AS, resource.RLIMIT_NOFILE,
                                                      resource.RLIMIT_FSIZE)], flush=True)
print("cpu", resource.getrlimit(resource.RLIMIT_CPU)[0] >= %d, flush=True)
print("net", socket.limits()[:3], socket.limits()[3] == socket.limits()[4] == job.me.port,
      flush=True)
socks = [socket.udp() for _ in range(%d)]
print("sockets refused after", socks.index(None), socket.last_error, flush=True)
'''


def test_a_daemon_with_its_default_options_confines_and_limits_every_job(tmp_path_factory, tmp_path):
    assert DEFAULTS["max_sockets"] < DEFAULTS["max_files"]     # sockets fit in the descriptors
    bed = start_bed(tmp_path_factory, "defaults", 1, ports_per_daemon=2, daemon_args=[])
    try:
        app = write_app(tmp_path, "defaults.py",
                        DEFAULT_LIMITS_JOB % (DEFAULTS["max_cpu"], DEFAULTS["max_sockets"] + 1))
        job = submit(bed, app, "-n", 1)
        wait_for(lambda: len(lines_of(bed, job)) >= 4, 60, "the job's report of its limits")
        assert [r["line"] for r in lines_of(bed, job)] == [
            f"rlimits {[DEFAULTS['max_memory'], DEFAULTS['max_files'], DEFAULTS['max_disk']]}",
            "cpu True",
            f"net ({DEFAULTS['max_send']}, {DEFAULTS['max_receive']}, {DEFAULTS['max_sockets']}) True",
            f"sockets refused after {DEFAULTS['max_sockets']} restricted"]
    finally:
        bed.down()


def test_bad_network_limits_are_refused_before_submission_and_by_the_api(bed, tmp_path):
    from splay.deploy.cli import CommandError
    app = write_app(tmp_path, "quiet.py", "print('ran')\n")
    refused = splay_cli(bed, "submit", app, "-n", 1, "--blacklist", "*")
    assert refused.returncode == 2 and "every host" in refused.stderr
    refused = splay_cli(bed, "submit", app, "-n", 1, "--max-send", "lots")
    assert refused.returncode == 2 and "not a size" in refused.stderr
    with pytest.raises(CommandError, match="max_sockets") as error:
        bed.client().post("/api/jobs", {"code": "print(1)", "nodes": 1,
                                        "settings": {"max_sockets": -2}})
    assert error.value.status == 2

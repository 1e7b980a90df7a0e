"""The fault soak: a churned job on 6 daemons while a seeded schedule SIGKILLs and restarts the
controller and daemons and fills one daemon's disk (a small tmpfs) for a while, then checks that nothing was
lost or left behind. Two variants:
  - loopback: the daemons on 127.0.0.1, the controller's database in SQLite;
  - netns: each daemon in its own network namespace (the testbed's --netns), the database in
    PostgreSQL, and the schedule also cuts the controller's network for a while (its address
    leaves the testbed's bridge), so that the daemons lose it with nobody dying, then heals it.
    Run it under `flock /tmp/pysplay-netns.lock flock /tmp/pysplay-pg.lock` on a shared machine.

Every node prints numbered lines ("n POSITION PID I") and also appends each to its own record file
outside the testbed, and answers RPCs. Invariants at the end:
  - per node life (position, pid), the lines in `splay logs` are the record file's, exactly once
    and in order, none lost, even for the lives a SIGKILLed daemon took with it (their output
    files outlive it, see splay.deploy.node_output); a life may have one line more than its record
    (killed between its print and its record);
  - every instance ends KILLED (the job is killed at the end), or LOST when its daemon was killed,
    or EXITED saying "No space left on device" when a churn life was due on the full disk;
  - after each fault, the controller's RUNNING set, the nodes answering RPCs and every running
    node's nodes file (job.nodes()) agree within NODES_BOUND seconds;
  - an instance is LOST only when its daemon was SIGKILLed (a network cut loses none);
  - no process, namespace, bridge, qdisc, node output file or process record of the testbed is
    left, and the database is consistent (splay.deploy.db_check: PRAGMA integrity_check and
    foreign keys on SQLite; rows pointing nowhere, unknown states... on both).

Default: 30 s (loopback) and 20 s (netns) of faults. SPLAY_SOAK_SECONDS=300 (for example) runs
both for that long; SPLAY_SOAK_SEED changes the schedule. The figures are printed (pytest -s)
and quoted in BENCHMARKS.md.
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from splay import rpc
from splay.deploy.db import open_database
from splay.deploy.db_check import check_database
from splay.deploy.node_output import output_directory
from examples.checkers import run
from test_deploy_support import fresh_postgres_database, job_processes, postgres_url, splay_cli, \
    start_bed, wait_for

SOAK_SECONDS = {"loopback": float(os.environ.get("SPLAY_SOAK_SECONDS", "30")),
                "netns": float(os.environ.get("SPLAY_SOAK_SECONDS", "20"))}
SEED = int(os.environ.get("SPLAY_SOAK_SEED", "16"))
NODES = 12
NODES_BOUND = 15.0        # seconds for the controller's view and job.nodes() to be right again

APP = '''
import os, time, splay
from splay import rpc, events
job = splay.job
record = open(os.path.join({out!r}, f"{{job.position}}-{{os.getpid()}}.txt"), "a")

def main():
    rpc.server(job.me.port)
    i = 0
    while True:
        line = f"n {{job.position}} {{os.getpid()}} {{i}}"
        print(line, flush=True)
        record.write(line + "\\n")
        record.flush()
        i += 1
        events.sleep(0.05)

events.run(main)
'''


def churn_trace(rng, seconds):
    """Each node: up at once, then down and up again at random times, up at the end."""
    lines = []
    for _ in range(NODES):
        times, t = [0.0], 0.0
        while True:
            t += rng.uniform(3, 10)
            if t > seconds - 3:
                break
            times.append(round(t, 2))
        if len(times) % 2 == 0:
            times.pop()                       # ends up
        lines.append(" ".join(f"{x:g}" for x in times))
    return "\n".join(lines) + "\n"


FAULT_KINDS = {"loopback": ["controller", "daemon", "controller", "disk", "daemon"],
               "netns": ["cut", "daemon", "controller", "disk", "cut", "daemon"]}


def fault_schedule(rng, seconds, variant="loopback"):
    """[(time, action, daemon index or None)], in time order."""
    faults, t = [], 3.0
    kinds = FAULT_KINDS[variant]
    while t < seconds - 6:
        faults.append((t, kinds[len(faults) % len(kinds)], rng.randrange(5)))
        t += rng.uniform(4, 7)
    return faults


@pytest.fixture(params=["loopback", "netns"])
def soak_bed(request, tmp_path_factory):
    variant = request.param
    netns, db, drop = False, None, None
    if variant == "netns":
        from splay.deploy.testbed import netns_usable
        if not netns_usable():
            pytest.skip("network namespaces need root and a working 'ip netns'")
        db, drop = fresh_postgres_database(postgres_url())
        netns = True
    base = tmp_path_factory.mktemp("soak")
    small = base / "small-disk"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)],
                             capture_output=True).returncode == 0
    if not mounted:
        if drop is not None:
            drop()
        pytest.skip("cannot mount a tmpfs here (needs root): no disk to fill")
    bed = None
    try:
        # Daemons count the controller lost after 3 s of silence (it pings every second).
        bed = start_bed(tmp_path_factory, "soakbed", 6, daemon_extra={5: ["--dir", str(small)]},
                        controller_args=["--daemon-timeout", "120", "--ping-interval", "1"],
                        daemon_args=["--sandbox", "off", "--silence-timeout", "3",
                                     "--max-backoff", "2"], netns=netns, db=db)
        bed.small_disk = str(small)
        bed.variant = variant
        yield bed
    finally:
        if bed is not None:
            bed.down()
        subprocess.run(["umount", "-l", str(small)])
        if drop is not None:
            drop()


def cut_controller(bed):
    """Take the controller's address off the testbed's bridge: daemons cannot reach it."""
    subprocess.run(["ip", "addr", "del", f"{bed.subnet}.0.1/16", "dev", bed.bridge], check=True)


def heal_controller(bed):
    """Give the controller its address back."""
    subprocess.run(["ip", "addr", "add", f"{bed.subnet}.0.1/16", "dev", bed.bridge], check=True)


def connected_since(bed, when):
    """True once every daemon is connected on a connection made after ``when``."""
    daemons = bed.client().get("/api/daemons")
    return len(daemons) == 6 and all(d["state"] == "CONNECTED" and (d.get("connected_at") or 0)
                                     > when for d in daemons)


def leftovers(bed, job):
    """What the testbed left after it was stopped: processes, network names, qdiscs, output
    files, process records (a list of descriptions; empty when nothing)."""
    found = [f"process {pid}" for pid in job_processes(job["ref"]) + bed.running()]
    for index in range(6):
        base = bed.small_disk if index == 5 else bed.path(f"daemon{index}")
        if os.path.exists(output_directory(base)):
            found.append(f"node output files of daemon {index}: {output_directory(base)}")
        jobs = os.path.join(base, "jobs")
        for root, _, files in os.walk(jobs):
            if "pid" in files:
                found.append(f"process record {os.path.join(root, 'pid')}")
    if bed.variant == "netns":
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
        for text, what in ((names, "namespace"), (links, "link"), (qdiscs, "qdisc")):
            found += [f"{what}: {line.strip()}" for line in text.splitlines() if bed.tag in line]
    return found


def api_job(bed, job_id):
    return bed.client().get(f"/api/jobs/{job_id}")


def view_agrees(bed, job):
    """The controller's RUNNING nodes answer RPCs, and every one's nodes file lists exactly them
    (what disagrees last is kept in ``bed.disagreement``, for the failure's message)."""
    info = api_job(bed, job["id"])
    running = {i["id"]: (i["ip"], i["port"], i["daemon"]) for i in info["instances"]
               if i["state"] == "RUNNING"}
    want = sorted((ip, port) for ip, port, _ in running.values())

    def answers():
        return all(rpc.ping((ip, port), timeout=5) is not None for ip, port in want)
    if not run(answers):
        bed.disagreement = f"not every RUNNING node answers a ping: {want}"
        return False
    for instance_id, (_, _, daemon) in running.items():
        index = int(daemon[2:])
        base = bed.small_disk if index == 5 else bed.path(f"daemon{index}")
        try:
            with open(os.path.join(base, "jobs", job["ref"], str(instance_id), "nodes.json")) as f:
                listed = sorted((n["ip"], n["port"]) for n in json.load(f))
        except (OSError, ValueError) as e:
            bed.disagreement = f"instance {instance_id}'s nodes file: {e}"
            return False
        if listed != want:
            bed.disagreement = f"instance {instance_id} on {daemon} lists {listed}, not {want}"
            return False
    return True


# The run's own length, plus start, recoveries and checks (a longer soak needs longer).
@pytest.mark.timeout(max(SOAK_SECONDS.values()) + 240)
def test_soak(soak_bed, tmp_path):
    bed = soak_bed
    seconds = SOAK_SECONDS[bed.variant]
    rng = random.Random(SEED)
    out = tmp_path / "records"
    out.mkdir()
    trace = churn_trace(rng, seconds)
    job = bed.client().post("/api/jobs", {"code": APP.format(out=str(out)), "factor": 1,
                                          "churn": {"trace": trace, "speed": 1.0}})
    wait_for(lambda: api_job(bed, job["id"])["state"] == "RUNNING", 60, "the job to run")
    start = time.monotonic()
    killed_daemons, injected, convergence = set(), [], []
    filler = os.path.join(bed.small_disk, "filler")
    for at, kind, index in fault_schedule(rng, seconds, bed.variant):
        time.sleep(max(0.0, start + at - time.monotonic()))
        if kind == "cut":
            cut_controller(bed)
            cut_at = time.time()
            time.sleep(rng.uniform(4, 6))     # longer than the daemons' silence timeout
            heal_controller(bed)
            wait_for(lambda: connected_since(bed, cut_at), 60,
                     "every daemon to reconnect after the network cut")
        elif kind == "controller":
            bed.stop_controller(signal.SIGKILL)
            time.sleep(rng.uniform(1, 3))
            bed.start_controller()
        elif kind == "daemon":
            bed.stop_daemon(index, signal.SIGKILL)
            killed_daemons.add(f"tb{index}")
            time.sleep(rng.uniform(0.5, 2))
            bed.start_daemon(index)
        elif kind == "disk":
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"],
                           capture_output=True)       # until ENOSPC
            time.sleep(rng.uniform(2, 4))             # nodes print, churn goes on meanwhile
            os.unlink(filler)                         # the disk has room again
        injected.append((round(at, 1), kind, index if kind == "daemon" else None))
        bed.wait_daemons(6, timeout=60)
        began = time.monotonic()
        try:
            wait_for(lambda: view_agrees(bed, job), NODES_BOUND, "the view to agree")
        except AssertionError:
            pytest.fail(f"the view did not agree within {NODES_BOUND:g} s after {kind} at "
                        f"{at:.1f} s: {bed.disagreement}")
        convergence.append(time.monotonic() - began)
    if os.path.exists(filler):
        os.unlink(filler)
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    assert splay_cli(bed, "kill", job["id"]).returncode == 0
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "the job's processes to end")
    # Every report spooled before the kill reaches the controller: wait for the logs to settle.
    settled = []
    wait_for(lambda: settled.append(len(splay_cli(bed, "logs", job["id"]).stdout)) or
             (len(settled) > 3 and settled[-1] == settled[-3]), 60, "the logs to settle")

    info = api_job(bed, job["id"])
    stored = {}
    for line in splay_cli(bed, "logs", job["id"], "--raw").stdout.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "n":
            stored.setdefault((int(words[1]), int(words[2])), []).append(int(words[3]))
    lives = {}
    for name in os.listdir(out):
        position, pid = map(int, name[:-4].split("-"))
        with open(out / name) as f:
            lives[(position, pid)] = len(f.read().splitlines())
    lost, checked = 0, 0
    lost_positions = {i["position"] for i in info["instances"] if i["state"] == "LOST"}
    for life, printed in lives.items():
        seen = stored.get(life, [])
        assert seen == list(range(len(seen))), (life, "a gap or a repeat")
        checked += len(seen)
        lost += max(0, printed - len(seen))
        assert len(seen) <= printed + 1, (life, printed, len(seen))
    assert lost == 0, f"{lost} line(s) printed but not in `splay logs`"
    not_started = 0
    for instance in info["instances"]:
        if instance["state"] == "LOST":
            assert instance["daemon"] in killed_daemons, instance
        elif instance["state"] == "EXITED":
            # A churn life due while the disk was full could not be started: it says so.
            assert instance["daemon"] == "tb5" and instance["reason"].startswith(
                "cannot start the process: OSError: [Errno 28] No space left on device"), instance
            not_started += 1
        else:
            assert instance["state"] == "KILLED", instance
    status = bed.client().get("/api/status")
    assert status.get("reports_missing", 0) == 0 and status.get("lines_overflowed", 0) == 0
    # Every life ended and its lines are spooled: the daemons deleted their output files.
    outputs = [output_directory(bed.small_disk if index == 5 else bed.path(f"daemon{index}"))
               for index in range(6)]
    wait_for(lambda: not any(os.listdir(d) for d in outputs if os.path.isdir(d)), 15,
             "the daemons to delete the node output files of the ended lives")
    bed.down()
    # The kernel finishes deleting a namespace's links a moment after `ip netns del` returns.
    left = []
    try:
        wait_for(lambda: left.append(leftovers(bed, job)) or left[-1] == [], 15,
                 "the testbed to leave nothing behind")
    except AssertionError:
        pytest.fail(f"left behind: {left[-1]}")
    left = left[-1]
    database = open_database(bed.db)
    try:
        problems = check_database(database)
        assert problems == [], problems
        # Each stored line is a line a node printed, once: as many rows as lines checked.
        rows = database._run("SELECT COUNT(*) AS n FROM logs WHERE job_id = ? AND stream = "
                             "'stdout' AND line LIKE ?", (job["id"], "n %"), fetch=True)
        assert int(rows[0]["n"]) == checked, (rows, checked)
    finally:
        database.close()
    print(f"\nsoak ({bed.variant}, {'PostgreSQL' if bed.db.startswith('postgres') else 'SQLite'})"
          f": {seconds:g} s, seed {SEED}, {len(injected)} faults {injected}; {len(lives)} node lives, "
          f"{len(lost_positions)} instance(s) LOST with their daemon, {not_started} not started "
          f"on the full disk, "
          f"{checked} lines checked, 0 gaps or repeats, {lost} lines lost, view converged in at most "
          f"{max(convergence, default=0):.1f} s, {len(left)} leftovers")

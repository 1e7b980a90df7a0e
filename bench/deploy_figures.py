"""Deployment figures: submit-to-RUNNING time, controller memory, log ingestion rate.

    PYTHONPATH=python:. python bench/deploy_figures.py [--sizes 100x8,100x32,1000x8,1000x32]
                                                       [--log-nodes 40 --log-lines 5000]
                                                       [--db postgresql://...] [--out FILE]

For each NODESxDAEMONS it starts a testbed (controller + daemons on loopback, SQLite unless --db),
submits an application that sleeps, and reports the time from the submission to the job being
RUNNING (every node's process started, as recorded by the controller), then kills the job and
waits until no node process is left. The log figure runs NODES nodes that each print LINES lines
as fast as they can and measures the lines stored per second by the controller.
Results are printed as a Markdown table (and written to --out when given).
"""
import argparse
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "python"), os.path.join(HERE, "..")]

from splay.deploy.testbed import Testbed  # noqa: E402

SLEEPER = "import time\ntime.sleep(3600)\n"
CHATTER = """import json, os, sys
job = json.loads(os.environ["SPLAY_JOB"])
for i in range({lines}):
    sys.stdout.write(f"node {{job['position']}} line {{i}} some payload to make it a log line\\n")
sys.stdout.flush()
"""


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def node_processes(ref):
    needle = f'"ref": "{ref}"'.encode()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    count += needle in f.read()
            except OSError:
                pass
    return count


def deploy_once(bed, nodes, code):
    client = bed.client()
    started = time.time()
    job = client.post("/api/jobs", {"name": f"bench-{nodes}", "code": code, "nodes": nodes})
    info = wait(lambda: (lambda j: j if j["state"] not in ("QUEUED", "REGISTERING", "STARTING")
                         else None)(client.get(f"/api/jobs/{job['id']}")), 600, "RUNNING")
    seen = time.time() - started
    if info["state"] != "RUNNING":
        stuck = {}
        for instance in info["instances"]:
            if instance["state"] != "RUNNING":
                key = (instance["daemon"], instance["state"], instance["reason"])
                stuck[key] = stuck.get(key, 0) + 1
        raise RuntimeError(f"job {info['state']}: {info['reason']}; not running: {stuck}")
    return job, info, seen


def kill_and_wait(bed, job):
    client = bed.client()
    client.post(f"/api/jobs/{job['id']}/kill")
    wait(lambda: not any(i["state"] in ("REGISTERED", "STARTING", "RUNNING")
                         for i in client.get(f"/api/jobs/{job['id']}")["instances"]), 120, "kill")
    wait(lambda: node_processes(job["ref"]) == 0, 60, "no node process left")


def deploy_figure(nodes, daemons, db, workdir):
    per_daemon = -(-nodes * 5 // 4 // daemons) + 8
    bed = Testbed(os.path.join(workdir, f"bed-{nodes}x{daemons}"), daemons=daemons, db=db,
                  ports_per_daemon=per_daemon, daemon_args=["--sandbox", "off"],
                  controller_args=["--log-level", "WARNING"])
    bed.up()
    try:
        job, info, seen = deploy_once(bed, nodes, SLEEPER)
        recorded = info["running_at"] - info["created_at"]
        status = bed.client().get("/api/status")
        kill_and_wait(bed, job)
        return {"nodes": nodes, "daemons": daemons, "recorded": recorded, "client": seen,
                "rss_mib": status["max_rss_kib"] / 1024}
    finally:
        bed.down()


def log_figure(nodes, lines, db, workdir):
    bed = Testbed(os.path.join(workdir, "bed-logs"), daemons=8, db=db, ports_per_daemon=64,
                  daemon_args=["--sandbox", "off"],
                  controller_args=["--log-level", "WARNING"])
    bed.up()
    try:
        client = bed.client()
        before = client.get("/api/status")["log_lines_ingested"]
        total = nodes * lines
        job, info, _ = deploy_once(bed, nodes, CHATTER.format(lines=lines))
        first = time.time()
        wait(lambda: client.get("/api/status")["log_lines_ingested"] - before >= total, 600,
             "every log line")
        elapsed = time.time() - first
        rows = client.get(f"/api/jobs/{job['id']}/logs?limit=1")["lines"]
        return {"lines": total, "seconds": elapsed, "rate": total / elapsed,
                "rss_mib": client.get("/api/status")["max_rss_kib"] / 1024, "sample": rows}
    finally:
        bed.down()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100x8,100x32,1000x8,1000x32")
    p.add_argument("--log-nodes", type=int, default=40)
    p.add_argument("--log-lines", type=int, default=5000)
    p.add_argument("--db", help="database URL (default: a fresh SQLite file per testbed)")
    p.add_argument("--out", help="also write the Markdown table here")
    p.add_argument("--workdir", help="keep the testbeds' files (logs) here instead of a temporary directory")
    args = p.parse_args(argv)
    out = [f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python "
           f"{platform.python_version()}, database {'PostgreSQL' if args.db else 'SQLite'}.", "",
           "| nodes | daemons | submit -> RUNNING (controller) | (client, polling) | controller max RSS |",
           "|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="splay-bench-") as scratch:
        workdir = args.workdir or scratch
        for size in args.sizes.split(","):
            nodes, daemons = map(int, size.split("x"))
            r = deploy_figure(nodes, daemons, args.db, workdir)
            out.append(f"| {nodes} | {daemons} | {r['recorded']:.2f} s | {r['client']:.2f} s | "
                       f"{r['rss_mib']:.0f} MiB |")
            print(out[-1], flush=True)
        if args.log_nodes:
            r = log_figure(args.log_nodes, args.log_lines, args.db, workdir)
            out += ["", "| log lines | nodes | seconds | lines/s ingested | controller max RSS |",
                    "|---:|---:|---:|---:|---:|",
                    f"| {r['lines']} | {args.log_nodes} | {r['seconds']:.2f} | {r['rate']:.0f} | "
                    f"{r['rss_mib']:.0f} MiB |"]
            print(out[-1], flush=True)
    text = "\n".join(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

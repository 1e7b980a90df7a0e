"""Churn replay figures: how late the start and stop actions of a churn trace are, locally
(``splay run --churn``) and on a deployment (``splay submit --churn``, daemons replaying).

    PYTHONPATH=python:. python bench/churn_figures.py [--runs 3] [--nodes 50] [--daemons 4]
                                                     [--out FILE]

The trace: ``--nodes`` nodes up staggered by 40 ms from 0.5 s, down 3 s later; every fifth comes
back for a second life 1.5 s after. Each run reports the number of actions and the lag behind the
schedule (max and median), as the launcher (locally) or the controller (deployment) reports it.
Results are printed as a Markdown table (and written to --out when given).
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [os.path.join(ROOT, "python"), ROOT]

from splay.deploy.testbed import Testbed, free_port_range  # noqa: E402

APP = "import time\ntime.sleep(3600)\n"
SUMMARY = re.compile(r"(\d+) action\(s\).*max ([\d.]+) ms, median ([\d.]+) ms")


def trace(nodes):
    """The benchmark's trace text (see the module docstring)."""
    lines = []
    for i in range(nodes):
        times = [0.5 + 0.04 * i, 3.5 + 0.04 * i]
        if i % 5 == 0:
            times += [5.0 + 0.04 * i, 6.0 + 0.04 * i]
        lines.append(" ".join(f"{t:.2f}" for t in times))
    return "\n".join(lines) + "\n"


def local_run(directory, nodes):
    """(actions, max lag ms, median lag ms) of one ``splay run --churn``."""
    with open(os.path.join(directory, "app.py"), "w") as f:
        f.write(APP)
    with open(os.path.join(directory, "trace.txt"), "w") as f:
        f.write(trace(nodes))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", "app.py", "--churn",
                          "trace.txt", "--first-port", str(free_port_range(nodes)), "--quiet"],
                         cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    with open(os.path.join(directory, "splay-run.log"), encoding="utf-8") as f:
        log = f.read()                   # --quiet: the notes are in the merged log only
    match = SUMMARY.search(log)
    if match is None:
        raise RuntimeError(f"no accuracy summary in the log:\n{out.stderr[-2000:]}")
    return int(match.group(1)), float(match.group(2)), float(match.group(3))


def deployed_run(bed, nodes):
    """(actions, max lag ms, median lag ms) of one ``splay submit --churn`` on ``bed``."""
    client = bed.client()
    job = client.post("/api/jobs", {"code": APP, "factor": 1, "churn": {"trace": trace(nodes)}})
    deadline = time.monotonic() + 300
    while True:
        info = client.get(f"/api/jobs/{job['id']}")
        if info["state"] in ("ENDED", "KILLED", "FAILED", "NO_RESOURCES"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} still {info['state']} after 300 s")
        time.sleep(0.2)
    if info["state"] != "ENDED":
        raise RuntimeError(f"job {job['id']} {info['state']}: {info['reason']}")
    churn = info["churn"]
    return churn["starts"] + churn["stops"], churn["max_lag_ms"], churn["median_lag_ms"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--daemons", type=int, default=4)
    p.add_argument("--out")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for run in range(args.runs):
            rows.append(("splay run --churn", run + 1, *local_run(directory, args.nodes)))
        bed = Testbed(os.path.join(directory, "bed"), daemons=args.daemons,
                      daemon_args=["--sandbox", "off"],
                      env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                          [os.path.join(ROOT, "python"), ROOT])))
        try:
            bed.up()
            for run in range(args.runs):
                rows.append((f"splay submit --churn ({args.daemons} daemons)", run + 1,
                             *deployed_run(bed, args.nodes)))
        finally:
            bed.down()
    text = [f"Churn replay lag, {args.nodes}-node trace, {platform.machine()}, "
            f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}", "",
            "| mode | run | actions | max lag (ms) | median lag (ms) |", "|---|---|---|---|---|"]
    text += [f"| {mode} | {run} | {count} | {high:.1f} | {median:.1f} |"
             for mode, run, count, high, median in rows]
    print("\n".join(text))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(text) + "\n")


if __name__ == "__main__":
    main()

"""``splay submit --maelstrom WORKLOAD (--app FILE | --bin PROGRAM) -n N [splay submit options]``.

Deploys a Maelstrom workload: the adapter (:mod:`splay.maelstrom.adapter`) and the node's code
are shipped as a directory application (:mod:`splay.maelstrom.bundle`), every option of ``splay
submit`` applies (``--topology``, ``--churn``, ``--max-time``, ...), and the job carries the
setting ``maelstrom`` (workload, model) by which the controller, once the job is over, extracts
the history from the job's logs and runs the checker (:mod:`splay.maelstrom.deployed`).

By default it waits for the job's end and the checker's verdict, prints the verdict, and exits
0 valid, 1 invalid, 3 unknown -- or 1 when the job itself failed. ``--no-wait`` returns once the
job is queued; ``splay job ID`` shows the verdict later and ``splay history ID`` the history.

``--bin`` needs daemons started with ``--maelstrom-programs`` (they start the program beside
each confined node: :mod:`splay.maelstrom.programs`) or ``--sandbox off``: a confined node may
create no process (docs/checking.md says why); ``--app`` runs on confined nodes.
"""
import os
import sys
import tempfile
import time

from splay.deploy import cli as deploy_cli

from . import bundle, run_cmd, workloads

#: How long ``splay submit --maelstrom`` waits for the controller's checker after the job ended.
CHECK_WAIT = 300.0


def main(argv):
    """Entry point: ``argv`` is ``splay submit``'s argument list holding ``--maelstrom``."""
    p = run_cmd.parser()
    p.prog = "splay submit"
    p.allow_abbrev = False           # splay submit's own options pass through untouched
    if "-h" in argv or "--help" in argv:
        p.print_help()
        print("\nEvery other option is splay submit's (see 'splay submit --help').")
        return 0
    if "--" in argv:
        print("splay submit --maelstrom: error: the nodes' arguments are the adapter's; give the "
              "workload's options (--rate, --keys, ...) instead of '-- ARGS'", file=sys.stderr)
        return deploy_cli.USAGE
    try:
        ours, rest = p.parse_known_args(argv)
    except SystemExit as e:
        return deploy_cli.USAGE if e.code else 0
    if ours.app is not None and not os.path.isfile(ours.app):
        print(f"splay submit: error: --app {ours.app!r} not found", file=sys.stderr)
        return deploy_cli.USAGE
    if "--max-time" not in rest:
        rest += ["--max-time", str(ours.workload_time + ours.recovery + 120)]
    if "--name" not in rest:
        rest += ["--name", f"maelstrom-{ours.maelstrom}"]
    if "--no-wait" not in rest and "--wait" not in rest:
        rest.append("--wait")
    workload = workloads.WORKLOADS[ours.maelstrom]
    settings = {"maelstrom": {"workload": ours.maelstrom, "model": workload.model}}
    with tempfile.TemporaryDirectory(prefix="splay-maelstrom-") as tmp:
        directory = os.path.join(tmp, f"maelstrom-{ours.maelstrom}")
        os.mkdir(directory)
        try:
            code = bundle.write(directory, app=ours.app, command=ours.bin)
        except (bundle.BundleError, OSError) as e:
            print(f"splay submit --maelstrom: error: {e}", file=sys.stderr)
            return deploy_cli.USAGE
        if code.startswith("bin="):           # what splayd --maelstrom-programs starts
            settings["maelstrom"]["program"] = code[len("bin="):]
        return deploy_cli.submit([directory, *rest, "--", *run_cmd.node_arguments(ours, code)],
                                 settings=settings,
                                 finished=lambda client, job, status:
                                 report_verdict(client, job, status, "--json" in rest))


def report_verdict(client, job, status, quiet):
    """Once the job is over, wait for the controller's checker and print its verdict (on stderr
    when ``quiet``: stdout holds the job's JSON); the exit status."""
    from splay.deploy import models as m
    if job["state"] not in m.JOB_FINAL:
        return status                     # --no-wait, or a job still running
    deadline = time.monotonic() + CHECK_WAIT
    while job.get("check") is None or job["check"]["valid"] == "checking":
        if time.monotonic() > deadline:
            print(f"splay submit: job {job['id']}: no verdict from the controller's checker after "
                  f"{CHECK_WAIT:g} s; see 'splay job {job['id']}' later", file=sys.stderr)
            return deploy_cli.JOB_BAD
        time.sleep(0.3)
        job = client.get(f"/api/jobs/{job['id']}")
    check = job["check"]
    print(check["text"], file=sys.stderr if quiet else sys.stdout)
    print(f"history: splay history {job['id']} -o history.jsonl", file=sys.stderr)
    if status:
        return status
    return {"valid": 0, "invalid": 1}.get(check["valid"], 3)

"""``splay run --maelstrom WORKLOAD (--bin PROGRAM | --app FILE) -n N [splay run options]``.

Runs the adapter (:mod:`splay.maelstrom.adapter`) as the application of an ordinary ``splay
run`` -- every other option of ``splay run`` applies (``--partition``, ``--topology``,
``--in-process``, ``--log-dir``, ...) -- then checks the history the clients recorded with the
workload's checker, prints the verdict and writes ``history.jsonl`` and ``history.html`` beside
the run's log. Exit status: 0 valid, 1 invalid, 3 unknown; the run's own status when nodes
failed.
"""
import argparse
import os
import shutil
import sys

from . import workloads

ADAPTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "adapter.py")


def parser():
    p = argparse.ArgumentParser(
        prog="splay run --maelstrom", add_help=False,
        description="Run a Maelstrom workload against a program on N pysplay nodes.")
    p.add_argument("--maelstrom", required=True, metavar="WORKLOAD",
                   choices=sorted(workloads.WORKLOADS),
                   help="one of: " + ", ".join(sorted(workloads.WORKLOADS)))
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--bin", metavar="PROGRAM",
                      help="the Maelstrom program (a command line; JSON messages on stdin/stdout)")
    what.add_argument("--app", metavar="FILE",
                      help="a pysplay file that serves the messages with splay.maelstrom.Node")
    p.add_argument("--rate", type=float, default=10.0, help="operations per second, all clients "
                                                            "together (default 10)")
    p.add_argument("--workload-time", type=float, default=10.0, metavar="SECONDS",
                   help="how long the clients send operations (default 10)")
    p.add_argument("--recovery", type=float, default=3.0, metavar="SECONDS",
                   help="wait after the operations before the final reads (default 3)")
    p.add_argument("--op-timeout", type=float, default=1.0, metavar="SECONDS",
                   help="an operation without reply after this is 'info' (default 1)")
    p.add_argument("--init-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a program that has not answered init after this fails its node "
                        "(default 10)")
    p.add_argument("--shape", default="grid", choices=["grid", "line", "tree4", "total"],
                   help="broadcast: the topology given to the nodes (default grid)")
    p.add_argument("--keys", type=int, default=3, help="lin-kv: number of keys (default 3)")
    p.add_argument("--seed", default="0", help="seed of the clients' operations (default 0)")
    return p


def node_arguments(ours, code):
    """The adapter's ``key=value`` arguments for the options ``ours`` (of :func:`parser`);
    ``code`` is ``app=FILE`` or ``bin=COMMAND``."""
    return [f"workload={ours.maelstrom}", f"rate={ours.rate}", f"time={ours.workload_time}",
            f"recovery={ours.recovery}", f"timeout={ours.op_timeout}",
            f"init_timeout={ours.init_timeout}", f"topology={ours.shape}", f"keys={ours.keys}",
            f"seed={ours.seed}", code]


def main(argv):
    """Entry point: ``argv`` is ``splay run``'s argument list holding ``--maelstrom``."""
    from splay.check import check, timeline
    from splay.launch import options, run_cmd
    from splay.launch.fd_limits import raise_to_hard

    p = parser()
    if "-h" in argv or "--help" in argv:
        p.print_help()
        print("\nEvery other option is splay run's (see 'splay run --help').")
        return 0
    ours, rest = p.parse_known_args(argv)
    if ours.app:
        ours.app = os.path.abspath(ours.app)
        if not os.path.isfile(ours.app):
            print(f"splay run: error: --app {ours.app!r} not found", file=sys.stderr)
            return 2
    else:
        first = ours.bin.split()[0] if ours.bin.split() else ""
        found = shutil.which(first) or (os.path.isfile(first) and os.access(first, os.X_OK))
        if not found:
            print(f"splay run: error: --bin {ours.bin!r}: no such executable program (give a "
                  f"path, e.g. ./mynode, or a command on PATH)", file=sys.stderr)
            return 2
        if shutil.which(first) is None:
            ours.bin = os.path.abspath(first) + ours.bin[len(first):]
    node_args = node_arguments(ours, f"app={ours.app}" if ours.app else f"bin={ours.bin}")
    if "--time-limit" not in rest:
        rest += ["--time-limit", str(ours.workload_time + ours.recovery + 60)]
    if "--name" not in rest:
        rest += ["--name", f"maelstrom-{ours.maelstrom}"]
    try:
        opts = options.parse([ADAPTER, *rest, "--", *node_args])
    except options.UsageError as e:
        print(f"splay run: error: {e}\n(see 'splay run --help')", file=sys.stderr)
        return 2
    status = run_cmd.Launcher(opts, fd_limit=raise_to_hard()).run()
    path = os.path.join(os.path.dirname(opts.log), "history.jsonl")
    if not os.path.exists(path):
        print("splay run --maelstrom: no operation was recorded (see the log: "
              f"{opts.log})", file=sys.stderr)
        return status or 1
    result = check(workloads.WORKLOADS[ours.maelstrom].model, path)
    html = os.path.join(os.path.dirname(opts.log), "history.html")
    timeline.write(result, html, title=f"Maelstrom {ours.maelstrom}: {result.valid}")
    print(result.text())
    print(f"history: {path}\ntimeline: {html}")
    if status:
        return status
    return {"valid": 0, "invalid": 1}.get(result.valid, 3)

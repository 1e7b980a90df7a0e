"""``splay check MODEL HISTORY``: judge a history file; ``splay history JOB``: extract one.

Exit status: 0 valid, 1 invalid, 3 unknown (a search bound was hit), 2 bad usage or a history
that cannot be read.
"""
import argparse
import json
import os
import sys

from . import MODELS, check
from .ops import HistoryError
from .timeline import write


def parser():
    p = argparse.ArgumentParser(
        prog="splay check", description="Check a history of operations against a model.",
        epilog="exit status: 0 valid, 1 invalid, 3 unknown, 2 error. HISTORY: JSON lines, a JSON "
               "array, or a log with [history] lines (splay run's log, splay logs output).")
    p.add_argument("model", choices=sorted(MODELS), metavar="MODEL",
                   help="one of: " + ", ".join(sorted(MODELS)))
    p.add_argument("history", help="the history file")
    p.add_argument("--html", metavar="FILE", help="also write the result and a timeline as HTML")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="bound of the linearizability search (default 5,000,000): past it the "
                        "answer is 'unknown'")
    return p


def main(argv=None):
    """Entry point of ``splay check``."""
    args = parser().parse_args(argv)
    options = {} if args.max_steps is None else {"max_steps": args.max_steps}
    try:
        result = check(args.model, args.history, **options)
    except OSError as e:
        print(f"splay check: cannot read {args.history}: {e.strerror}", file=sys.stderr)
        return 2
    except HistoryError as e:
        print(f"splay check: {args.history}: {e}", file=sys.stderr)
        return 2
    print(result.to_json() if args.json else result.text())
    if args.html:
        write(result, args.html)
        print(f"timeline: {args.html}", file=sys.stderr)
    return {"valid": 0, "invalid": 1}.get(result.valid, 3)


def history_main(argv=None):
    """``splay history SOURCE [-o FILE]``: the ``[history]`` records of a deployed job's logs
    (SOURCE a job id or ref) or of a log file, as JSON lines."""
    from splay.deploy import cli as deploy_cli
    from splay.history import extract, write_jsonl

    def save(records, output):
        if output == "-":
            for r in records:
                print(json.dumps(r, separators=(",", ":"), sort_keys=True))
        else:
            write_jsonl(records, output)
            print(f"splay history: {len(records)} records in {output}", file=sys.stderr)
        return 0

    p = deploy_cli.parser("history", "Extract the [history] records of a deployed job's logs, "
                                     "or of a log file, as JSON lines.")
    p.add_argument("source", help="a job id or ref on the controller, or a log file")
    p.add_argument("-o", "--output", default="-", help="the output file (default: stdout)")

    def body(args, client):
        try:
            records = extract(row["line"] for row in deploy_cli.log_rows(client, args.source))
        except ValueError as e:
            raise deploy_cli.CommandError(f"job {args.source}: {e}", deploy_cli.USAGE) from None
        return save(records, args.output)

    argv = list(sys.argv[2:] if argv is None else argv)
    options = p.parse_args(argv)
    if os.path.isfile(options.source):
        with open(options.source, encoding="utf-8") as f:
            try:
                records = extract(f.read().splitlines())
            except ValueError as e:
                print(f"splay history: {options.source}: {e}", file=sys.stderr)
                return 2
        return save(records, options.output)
    return deploy_cli.run(p, argv, body)

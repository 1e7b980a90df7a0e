"""``splay report (JOB | RUN_DIR | metrics.json) -o FILE.html``: write a run's HTML report.

A file is a run-data document (``metrics.json``, written by ``splay run``); a directory is a run's
log directory holding one; anything else is a job id or ref, whose run data is fetched from the
controller's API (``--controller``/``--token`` or $SPLAY_CONTROLLER/$SPLAY_TOKEN).
"""
import os
import sys

from splay.observatory import report, rundata

RUN_FILE = "metrics.json"


def load_source(source, client):
    """The run-data document ``source`` names (see the module docstring); ValueError or
    CommandError saying what was wrong."""
    if os.path.isdir(source):
        path = os.path.join(source, RUN_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"{source} is a directory without {RUN_FILE}: give a run's log "
                             "directory (splay run --log-dir) or the metrics.json file")
        return rundata.load(path)
    if os.path.isfile(source):
        return rundata.load(source)
    if os.sep in source or source.endswith(".json"):
        raise ValueError(f"{source}: no such file or directory")
    doc = client.get(f"/api/jobs/{source}/rundata")
    rundata.validate(doc)
    return doc


def main(argv):
    """Entry point of ``splay report``; returns the exit status."""
    from splay.deploy.cli import OK, USAGE, parser, run
    p = parser("report", "Write the self-contained HTML report of a run (opens offline).")
    p.add_argument("source", help="a job id or ref, a run's log directory, or a metrics.json file")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")

    def body(args, client):
        try:
            doc = load_source(args.source, client)
        except ValueError as e:
            print(f"splay report: {e}", file=sys.stderr)
            return USAGE
        try:
            report.write(doc, args.output)
        except OSError as e:
            print(f"splay report: cannot write {args.output}: {e.strerror}", file=sys.stderr)
            return USAGE
        print(f"report of {doc['run']['app']} ({len(doc['nodes'])} nodes) written to {args.output}")
        return OK

    return run(p, argv, body)

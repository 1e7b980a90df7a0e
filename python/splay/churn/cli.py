"""``splay churn``: compile a churn script (or convert an availability log) into a churn trace.

    splay churn script.churn -o trace.txt [--seed N] [--plot-population]
    splay churn --from-availability events.txt -o trace.txt
    splay churn --check trace.txt

The trace goes to ``-o`` (or to standard output without it); a summary of the population goes to
standard error when the trace is on standard output, else to standard output. Bad input exits with
status 2 and one ``file:line:col: what is wrong`` line.
"""
import argparse
import sys

from .availability import read_availability
from .detect import milestone_lines, schedule_line
from .errors import ChurnError
from .lang import compile_file, format_duration
from .trace import read_trace

PLOT_WIDTH = 50
PLOT_ROWS = 24


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="splay churn",
        description="Compile a churn script into a SPLAY churn trace (one line of up/down times per "
                    "node), convert an availability log into one, or check a trace. "
                    "The language is described in docs/churn.md.")
    parser.add_argument("script", nargs="?", help="the churn script to compile")
    parser.add_argument("-o", "--output", help="where to write the trace (default: standard output)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: which nodes leave, and when churn happens (default 0); "
                             "the same script and seed always give the same trace")
    parser.add_argument("--from-availability", metavar="FILE",
                        help="convert this availability log ('<node-id> <time> up|down' lines) "
                             "instead of compiling a script")
    parser.add_argument("--check", metavar="TRACE", help="check this trace file and summarise it")
    parser.add_argument("--plot-population", action="store_true",
                        help="also draw the population over time as a text chart")
    return parser


def _plot(schedule, out):
    end = schedule.end_time
    if end <= 0:
        print("(empty trace: nothing to plot)", file=out)
        return
    step = end / PLOT_ROWS
    points = schedule.population_curve(step, end=end)
    peak = max((p for _, p in points), default=0) or 1
    label_width = max(len(format_duration(round(t, 3))) for t, _ in points)
    for t, population in points:
        bar = "#" * int(round(population / peak * PLOT_WIDTH))
        print(f"{format_duration(round(t, 3)):>{label_width}} |{bar} {population}", file=out)


def _summarise(schedule, out, plot):
    print(schedule_line(schedule), file=out)
    if plot:
        _plot(schedule, out)


def main(argv=None):
    """Run ``splay churn`` with the arguments ``argv`` (a list); return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    sources = [s for s in (args.script, args.from_availability, args.check) if s]
    if len(sources) != 1:
        parser.print_usage(sys.stderr)
        print("splay churn: give exactly one of: a script, --from-availability FILE, --check TRACE",
              file=sys.stderr)
        return 2
    if args.check and args.output:
        print("splay churn: --check only reads a trace; it writes none (drop -o)", file=sys.stderr)
        return 2
    try:
        if args.check:
            schedule = read_trace(args.check)
            print(f"{args.check}: a valid churn trace", file=sys.stdout)
            _summarise(schedule, sys.stdout, args.plot_population)
            return 0
        if args.from_availability:
            converted = read_availability(args.from_availability)
            schedule, compiled = converted.schedule, None
        else:
            compiled = compile_file(args.script, seed=args.seed)
            schedule = compiled.schedule
    except ChurnError as error:
        print(f"splay churn: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"splay churn: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 2

    info = sys.stderr if args.output is None else sys.stdout
    if compiled is not None:
        for warning in compiled.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(schedule.to_text())
    else:
        try:
            schedule.write(args.output)
        except OSError as error:
            print(f"splay churn: cannot write {args.output}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {args.output}", file=info)
    if compiled is not None:
        print("\n".join(milestone_lines(compiled)), file=info)
    else:
        print(f"converted {len(converted.node_ids)} nodes from {args.from_availability}", file=info)
    _summarise(schedule, info, args.plot_population)
    return 0

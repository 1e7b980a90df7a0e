"""The command line of ``splay run``: parsing and checking, with errors that say what to change.

:func:`parse` returns an :class:`argparse.Namespace` whose paths are absolute, or raises
:class:`UsageError` (``splay run`` then exits with status 2).
"""
import argparse
import json
import os
import shutil
import sys

from splay import app_files
from splay.churn import ChurnError
from splay.churn.detect import load_churn

from . import net_options

__all__ = ["parse", "UsageError", "build_parser", "sandbox_limits", "SANDBOX_DEFAULTS",
           "SANDBOX_NET_DEFAULTS"]

DEFAULT_LOG = "splay-run.log"
# The value of --workers given without K: one worker per core.
CORES = "cores"

# --max-... options of --sandbox: the keyword of splay.sandbox.confine each one becomes, its type
# and its help. --sandbox-opt KEY=VALUE passes any other keyword.
SANDBOX_LIMITS = {
    "max_memory": (int, "maximum memory (address space) of each node, in bytes"),
    "max_cpu": (float, "maximum CPU time of each node, in seconds"),
    "max_files": (int, "maximum open file descriptors of each node"),
    "max_processes": (int, "maximum processes (and threads) of each node"),
    "max_disk": (int, "maximum disk space of each node's files, in bytes"),
}


# What --sandbox applies to each node when the command line does not say otherwise: enough for
# an experiment, bounded so that one node cannot take the machine. The ports default to the
# run's own (FIRST_PORT to FIRST_PORT+N-1).
SANDBOX_DEFAULTS = {"max_memory": 1 << 30, "max_cpu": 3600.0, "max_files": 1024,
                    "max_disk": 1 << 30}
SANDBOX_NET_DEFAULTS = {"max_send": 8 << 30, "max_receive": 8 << 30, "max_sockets": 512}


class UsageError(Exception):
    """The command line is wrong; the message says what to change."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message):
        raise UsageError(message)


def build_parser():
    """The argparse parser of ``splay run``."""
    p = _Parser(
        prog="splay run",
        description="Run N nodes of a SPLAY application on this machine, one process each. "
                    "Node i gets the job of 127.0.0.1:FIRST_PORT+i (position i, 0-based).",
        epilog="Arguments after the application file (and all after --) are passed to every node's "
               "sys.argv. Output lines are shown as '[node i] ...' and merged, time-ordered, into "
               "the log file. Ctrl-C stops every node.")
    p.add_argument("app", help="the application: a Python file (shipped with the modules beside "
                               "it that it imports), a directory or a zip archive with __main__.py")
    p.add_argument("app_args", nargs="*", metavar="ARG",
                   help="arguments passed to the application (put those starting with '-' after --)")
    p.add_argument("-n", "--nodes", type=int, default=None, metavar="N",
                   help="number of nodes (default 1, or the number of lines of the --churn trace)")
    p.add_argument("--first-port", type=int, default=20000, metavar="PORT",
                   help="port of node 0; node i gets PORT+i (default 20000)")
    p.add_argument("--list-size", type=int, default=None, metavar="K",
                   help="length of each node's list job.nodes() (default: all nodes)")
    p.add_argument("--random", action="store_true",
                   help="give each node a random list (never containing itself) instead of the head list")
    p.add_argument("--random-list", type=int, default=None, metavar="K",
                   help="same as --random --list-size K")
    p.add_argument("--log", default=None, metavar="FILE",
                   help=f"merged, time-ordered log of all nodes (default {DEFAULT_LOG} in the log directory)")
    p.add_argument("--log-dir", default=None, metavar="DIR",
                   help="directory of the log file (default: the current directory)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="do not echo node output (the log file still gets everything)")
    p.add_argument("--progress", action="store_true",
                   help="show start-up progress on stderr even when it is not a terminal")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop all nodes after this many seconds")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed each node's random from S and its position (splay.sim.seeding)")
    p.add_argument("--stagger", type=float, default=0.0, metavar="SECONDS",
                   help="delay between two node starts (default 0)")
    p.add_argument("--grace", type=float, default=3.0, metavar="SECONDS",
                   help="when stopping, time a node gets after SIGTERM before SIGKILL (default 3)")
    p.add_argument("--python", default=sys.executable, metavar="INTERPRETER",
                   help="Python interpreter of the nodes (default: the one running splay)")
    p.add_argument("--no-fork-server", dest="fork_server", action="store_false",
                   help="start each node process as a new interpreter instead of forking it from a "
                        "pre-imported fork server (slower start-up; see docs/running.md)")
    p.add_argument("--name", default=None, help="job name (default: the application file's name)")
    p.add_argument("--churn", default=None, metavar="TRACE",
                   help="start and stop the nodes as the churn trace says (one line per node: times "
                        "in seconds, alternately up, down, up, ...), or a churn script (docs/churn.md) "
                        "compiled here; the trace sets the number of nodes")
    p.add_argument("--churn-speed", type=float, default=None, metavar="X",
                   help="with --churn: replay the trace X times faster (default 1; 0.5 is twice slower)")
    p.add_argument("--topology", default=None, metavar="FILE",
                   help="emulate the network of FILE (ModelNet XML, latency matrix or uniform model) "
                        "in every node's sockets: delays, rates, loss (splay.emulation.apply)")
    p.add_argument("--partition", action="append", default=[], metavar="A|B@START-END",
                   help="cut node group A (positions: 0,1,5-9) from group B (default: every other "
                        "node) from START to END seconds after the start (END left out: never "
                        "healed); repeatable. Example: --partition '0-4|5-9@10-20'")
    p.add_argument("--faults", default=None, metavar="FILE",
                   help="apply the fault timeline of FILE (pause, kill, restart, partition, skew, "
                        "drift, slow, delay, loss, duplicate, reorder, random; docs/faults.md)")
    p.add_argument("--in-process", action="store_true",
                   help="run all nodes in one process over one scheduler (each node with its own "
                        "namespace, job and threads) instead of one process per node")
    p.add_argument("--sim", action="store_true",
                   help="simulate: run all nodes in one process on a virtual clock, deterministic "
                        "for a given --seed (default 0); see docs/simulation.md")
    p.add_argument("--until", type=float, default=None, metavar="SECONDS",
                   help="with --sim: stop the simulation at this virtual time")
    p.add_argument("--workers", type=_workers_value, nargs="?", const=CORES, default=None, metavar="K",
                   help="with --in-process: spread the nodes over K processes, each with its own "
                        "scheduler (--workers alone: one per core; 1: every node in one process, "
                        "the default); nodes past 127.0.0.1's ports below the ephemeral range go on "
                        "127.0.0.2, ... (docs/running.md)")
    p.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="do not sample the nodes' metrics (RPC counts, latencies, bytes, threads, "
                        "memory, CPU, application metrics) into metrics.json beside the log")
    p.add_argument("--metrics-interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between two samples of each node's metrics (default 1)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve the run's metrics to Prometheus on http://127.0.0.1:PORT/metrics")
    p.add_argument("--report", default=None, metavar="FILE.html",
                   help="at the end of the run, write its self-contained HTML report (plots, "
                        "summary, events, what a rerun needs; opens offline) to FILE.html")
    p.add_argument("--node-dirs", default=None, metavar="DIR",
                   help="give node i its own working directory DIR/node-i (job.dir)")
    p.add_argument("--sandbox", action="store_true",
                   help="confine each node with splay.sandbox.confine in its own directory "
                        "(--node-dirs, default ./splay-run-nodes)")
    for key, (kind, text) in SANDBOX_LIMITS.items():
        default = f" (default {SANDBOX_DEFAULTS[key]})" if key in SANDBOX_DEFAULTS else ""
        p.add_argument("--" + key.replace("_", "-"), type=kind, default=None, metavar="N",
                       help=f"with --sandbox: {text}{default}")
    p.add_argument("--sandbox-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="with --sandbox: another keyword argument of splay.sandbox.confine "
                        "(VALUE read as JSON when it parses, else as a string); repeatable")
    net_options.add_to(p, defaults={
        **{key: f"with --sandbox: {value}; otherwise unlimited"
           for key, value in SANDBOX_NET_DEFAULTS.items()},
        "ports": "with --sandbox: the run's own ports; otherwise unlimited"})
    return p


def _check(cond, message):
    if not cond:
        raise UsageError(message)


def sandbox_limits(opts):
    """The keyword arguments for ``splay.sandbox.confine`` given by ``--max-...`` and
    ``--sandbox-opt``, over :data:`SANDBOX_DEFAULTS`; the kernel's bind wall gets the nodes'
    port range (``--ports``)."""
    kw = dict(SANDBOX_DEFAULTS)
    kw.update({k: getattr(opts, k) for k in SANDBOX_LIMITS if getattr(opts, k) is not None})
    if opts.net_settings.get("start_port") is not None:
        kw["bind_ports"] = [opts.net_settings["start_port"], opts.net_settings["end_port"]]
    kw.update(opts.sandbox_kwargs)
    return kw


def _sandbox_opt(text):
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise UsageError(f"--sandbox-opt expects KEY=VALUE with KEY a keyword name, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _net_settings(opts, n):
    """The nodes' restricted-socket settings from the network options (with --sandbox, over
    :data:`SANDBOX_NET_DEFAULTS` and the run's own ports); ``{}`` when nothing is limited."""
    defaults = None
    if opts.sandbox:
        defaults = dict(SANDBOX_NET_DEFAULTS, start_port=opts.first_port,
                        end_port=opts.first_port + n - 1)
    try:
        return net_options.settings(opts, defaults)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _churn(opts):
    """Read the ``--churn`` trace into ``opts.schedule`` (``None`` without one); it sets ``-n``."""
    opts.schedule = None
    opts.churn_notes = []
    if opts.churn is None:
        _check(opts.churn_speed is None, "--churn-speed scales the times of a churn trace: add --churn TRACE")
        opts.churn_speed = 1.0
        if opts.nodes is None:
            opts.nodes = 1
        return
    if opts.churn_speed is None:
        opts.churn_speed = 1.0
    _check(opts.churn_speed > 0, f"--churn-speed must be a positive factor, got {opts.churn_speed:g}")
    try:
        loaded = load_churn(opts.churn)      # a trace, or a churn script compiled here
    except ChurnError as e:
        raise UsageError(f"bad churn trace: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the churn trace {opts.churn!r}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    schedule = loaded.schedule
    opts.churn_notes = loaded.notes
    _check(schedule.nodes >= 1, f"the churn trace {opts.churn!r} has no node line (one line of "
                                "up/down times per node); nothing would run")
    _check(opts.nodes is None or opts.nodes == schedule.nodes,
           f"-n {opts.nodes} disagrees with the churn trace {opts.churn!r}, which has {schedule.nodes} "
           "node line(s): drop -n (the trace sets the number of nodes) or fix the trace")
    _check(opts.stagger == 0, "--stagger has no meaning with --churn: the trace says when each node starts")
    opts.nodes = schedule.nodes
    opts.schedule = schedule


def _faults(opts, n):
    """The timeline of ``--faults FILE`` checked against the ``n`` nodes (None without one)."""
    if opts.faults is None:
        return None
    from splay.faults import FaultError
    from splay.faults.local import check_with_churn, load_for_run
    try:
        timeline = load_for_run(opts.faults, n)        # errors name the file as the user did
        check_with_churn(timeline, opts.schedule)
    except FaultError as e:
        raise UsageError(f"--faults: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--faults: cannot read {opts.faults!r}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    opts.faults = os.path.abspath(opts.faults)
    return timeline


def _workers_value(text):
    """The value of ``--workers``: an integer, or :data:`CORES` (``--workers`` alone)."""
    if text == CORES:
        return CORES
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes, got {text!r}") from None


def _workers(opts, n):
    """Check ``--workers`` and set ``opts.workers``: 1 without it, the number of cores for
    ``--workers`` alone, K for ``--workers K``."""
    from . import workers
    given = workers.default_workers() if opts.workers == CORES else opts.workers
    problem = workers.check(given, n, opts.in_process)
    _check(problem is None, problem)
    opts.workers = 1 if given is None else given
    if opts.workers == 1:
        return
    room = workers.ports_per_address(opts.first_port)
    _check(room >= n or not (opts.topology or opts.partition or opts.faults),
           f"--topology, --partition and --faults number the nodes on one address: {n} nodes from port "
           f"{opts.first_port} need several (127.0.0.1 has {room} ports below the ephemeral "
           "range); use fewer nodes or a lower --first-port")


def parse(argv):
    """Parse and check ``splay run`` arguments; ``UsageError`` says what is wrong."""
    argv = list(argv)
    # Everything after "--" belongs to the application, even what looks like an option.
    after = []
    if "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    opts = build_parser().parse_intermixed_args(argv)
    opts.app_args = list(opts.app_args) + after

    opts.app_origin = os.path.abspath(opts.app)
    try:
        opts.app_files = app_files.load(opts.app_origin)
    except (app_files.AppError, OSError) as e:
        raise UsageError(str(e)) from None
    # A directory runs its __main__.py; a zip archive is unpacked by the run (see run_cmd).
    opts.app = os.path.join(opts.app_origin, app_files.MAIN) if os.path.isdir(opts.app_origin) \
        else opts.app_origin
    _churn(opts)
    n = opts.nodes
    _check(n >= 1, f"-n must be at least 1, got {n}")
    _check(1 <= opts.first_port <= 65535, f"--first-port must be from 1 to 65535, got {opts.first_port}")
    _check(not (opts.sim and opts.workers is not None),
           "--workers cannot apply with --sim: a simulation runs every node in one process on one "
           "virtual clock; drop --workers")
    _workers(opts, n)
    last = opts.first_port + n - 1
    _check(last <= 65535 or opts.sim or opts.workers > 1, f"{n} nodes from port {opts.first_port} need ports up to {last}, past 65535: "
                          f"use --first-port {65536 - n} or lower, or fewer nodes")
    if opts.random_list is not None:
        _check(opts.list_size is None or opts.list_size == opts.random_list,
               "--random-list K and --list-size disagree; give only one of them")
        opts.random, opts.list_size = True, opts.random_list
    _check(opts.list_size is None or opts.list_size >= 0, f"--list-size must be >= 0, got {opts.list_size}")
    _check(opts.time_limit is None or opts.time_limit > 0,
           f"--time-limit must be a positive number of seconds, got {opts.time_limit}")
    _check(opts.stagger >= 0, f"--stagger must be >= 0 seconds, got {opts.stagger}")
    _check(opts.grace >= 0, f"--grace must be >= 0 seconds, got {opts.grace}")
    for key in SANDBOX_LIMITS:
        value = getattr(opts, key)
        flag = "--" + key.replace("_", "-")
        _check(value is None or opts.sandbox, f"{flag} is a sandbox limit: add --sandbox")
        _check(value is None or value > 0, f"{flag} must be a positive number, got {value}")
    _check(not opts.sandbox_opt or opts.sandbox, "--sandbox-opt is a sandbox option: add --sandbox")
    if opts.topology is not None:
        opts.topology = os.path.abspath(opts.topology)
        from splay.emulation import TopologyError, load_link_model
        try:
            model = load_link_model(opts.topology)
        except (OSError, TopologyError) as e:
            raise UsageError(f"--topology: {e}") from None
        _check(model.nodes is None or model.nodes >= n,
               f"--topology {opts.topology!r} describes {model.nodes} nodes, fewer than -n {n}")
    opts.partitions = []
    if opts.partition:
        from splay.emulation import parse_partition
        for text in opts.partition:
            try:
                spec = parse_partition(text)
            except ValueError as e:
                raise UsageError(f"--partition: {e}") from None
            _check(spec.highest() < n, f"--partition {text!r} names node {spec.highest()}, but "
                                       f"there are {n} nodes (positions 0 to {n - 1})")
            _check(spec.group_b is not None or len(spec.group_a) < n,
                   f"--partition {text!r} leaves no node on the other side")
            opts.partitions.append(spec)
    opts.fault_timeline = _faults(opts, n)
    opts.sandbox_kwargs = dict(_sandbox_opt(t) for t in opts.sandbox_opt)
    opts.net_settings = _net_settings(opts, n)
    _check(opts.metrics_interval > 0, f"--metrics-interval {opts.metrics_interval:g}: give a "
                                      "positive number of seconds, e.g. 1")
    _check(opts.metrics_port is None or 0 < opts.metrics_port < 65536,
           f"--metrics-port {opts.metrics_port}: give a TCP port between 1 and 65535")
    _check(opts.metrics or opts.metrics_port is None,
           "--metrics-port serves the run's metrics: it cannot go with --no-metrics")
    _check(opts.metrics or opts.report is None,
           "--report plots the run's metrics: it cannot go with --no-metrics")
    if opts.report is not None:
        opts.report = os.path.abspath(opts.report)
        _check(os.path.isdir(os.path.dirname(opts.report)),
               f"--report {opts.report!r}: its directory does not exist; create it or pick "
               "another file")

    python = shutil.which(opts.python)
    _check(python is not None, f"--python {opts.python!r}: no such executable interpreter")
    opts.python = os.path.abspath(python)

    log_dir = os.path.abspath(opts.log_dir or os.getcwd())
    opts.log = os.path.join(log_dir, opts.log or DEFAULT_LOG)
    _check(os.path.isdir(os.path.dirname(opts.log)),
           f"log directory {os.path.dirname(opts.log)!r} does not exist; create it or pick another --log/--log-dir")
    if opts.sim or opts.until is not None:
        from splay.sim.run_options import check_sim_options
        check_sim_options(opts)
    _check(not (opts.in_process and (opts.sandbox or opts.node_dirs)),
           "--in-process runs every node in one process: it cannot give them separate "
           "directories or sandboxes (--node-dirs, --sandbox); drop one of them")
    _check(not (opts.in_process and opts.seed is not None) or opts.sim,
           "--seed gives each node process its own random stream; --in-process nodes share one "
           "process's random: drop --in-process or --seed")
    if opts.sandbox and opts.node_dirs is None:
        opts.node_dirs = "splay-run-nodes"
    if opts.node_dirs is not None:
        opts.node_dirs = os.path.abspath(opts.node_dirs)
    if opts.name is None:
        opts.name = os.path.splitext(os.path.basename(opts.app_origin.rstrip(os.sep)))[0]
    return opts

"""The ``splay`` subcommands that drive a deployment: submit, jobs, job, kill, logs, daemons.

Each takes its argument list and returns an exit status scripts can rely on:

  0  done (submit: the job is RUNNING with no node failed, or ENDED; job: no node failed)
  1  the job did not get where it should (FAILED, NO_RESOURCES, KILLED, timeout), or a node
     failed (exited with an error status, was lost, could not start)
  2  bad command line or input refused by the controller
  3  the controller cannot be reached, or refused the token
  4  no such job

The controller is found with ``--controller URL`` / ``$SPLAY_CONTROLLER``, the token with
``--token`` / ``$SPLAY_TOKEN``; without them, the testbed's ``client.json`` (written by
``splay testbed up``) is used, then ``http://127.0.0.1:8800``.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

from splay.launch import net_options

from . import models as m
from .logs import format_line

OK, JOB_BAD, USAGE, UNREACHABLE, NOT_FOUND = 0, 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8800"
# Seconds `splay submit` watches a RUNNING job before returning: an application that raises at
# import fails in this time, and submit then says so instead of exiting 0.
SETTLE = 2.0


def splay_home():
    """Where the ``splay`` command keeps its files (``$SPLAY_HOME``, default ~/.splay)."""
    return os.environ.get("SPLAY_HOME") or os.path.join(os.path.expanduser("~"), ".splay")


class CommandError(Exception):
    """Ends a command with a message and an exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class Client:
    """A small client of the controller's HTTP JSON API."""

    def __init__(self, url, token, timeout=40.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method, path, body=None):
        """One API call; returns the decoded JSON or raises CommandError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                message = e.reason
            status = {401: UNREACHABLE, 404: NOT_FOUND}.get(e.code, USAGE if e.code < 500 else JOB_BAD)
            raise CommandError(f"controller: {message}", status) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CommandError(f"cannot reach the controller at {self.url} ({reason}); is it "
                               "running? (--controller URL or $SPLAY_CONTROLLER)", UNREACHABLE) from None

    def get(self, path):
        """GET ``path``."""
        return self.call("GET", path)

    def post(self, path, body=None):
        """POST ``body`` (JSON) to ``path``."""
        return self.call("POST", path, body if body is not None else {})


def connection_defaults():
    """(url, token) from the environment, else the testbed's client.json, else the defaults."""
    url, token = os.environ.get("SPLAY_CONTROLLER"), os.environ.get("SPLAY_TOKEN")
    if not (url and token):
        try:
            with open(os.path.join(splay_home(), "testbed", "client.json")) as f:
                saved = json.load(f)
            url, token = url or saved.get("url"), token or saved.get("token")
        except (OSError, ValueError):
            pass
    return url or DEFAULT_URL, token or ""


def parser(prog, description):
    """An argument parser with the connection options every subcommand has."""
    p = argparse.ArgumentParser(prog=f"splay {prog}", description=description)
    p.add_argument("--controller", help="controller API URL (default $SPLAY_CONTROLLER)")
    p.add_argument("--token", help="API token (default $SPLAY_TOKEN)")
    return p


def run(p, argv, body):
    """Parse ``argv`` with ``p`` and run ``body(args, client)``, turning errors into statuses."""
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return OK if e.code == 0 else USAGE
    url, token = connection_defaults()
    client = Client(args.controller or url, args.token or token)
    try:
        return body(args, client)
    except CommandError as e:
        print(f"splay {p.prog.split()[-1]}: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:          # `splay logs 3 | head`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def table(rows, columns):
    """Rows of dicts as an aligned text table; ``columns`` is [(title, key or function)]."""
    cells = [[title for title, _ in columns]]
    for row in rows:
        cells.append(["" if v is None else str(v) for v in
                      ((key(row) if callable(key) else row.get(key)) for _, key in columns)])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def when(stamp):
    """A time stamp as local 'YYYY-mm-dd HH:MM:SS'."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def parse_size(text):
    """'512M', '2G', '1048576' -> bytes."""
    from .daemon import parse_size as parse
    try:
        return parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 64M, 2G)") from None


def read_text(path, what):
    """The text of a file given on the command line; CommandError (usage) when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CommandError(f"cannot read {what} {path}: {e}", USAGE) from None


def read_app(path):
    """The application at ``path`` as submission fields: ``code`` (the main file's text, which
    the controller checks), ``bundle`` (every file, a base64 zip) and ``main`` (the file each
    node runs); CommandError (usage) when it cannot be read or is too big."""
    from splay import app_files
    try:
        app = app_files.load(os.path.abspath(path))
        return {"code": app.main_source(), "bundle": app.encoded(), "main": app.main}
    except (app_files.AppError, OSError) as e:
        raise CommandError(f"cannot read the application: {e}", USAGE) from None


def churn_trace(args):
    """The text of ``--churn``'s trace, checked here first (errors name the file and line); a
    churn script is compiled here, and its summary printed on stderr."""
    from splay.churn.detect import load_churn
    from splay.churn.errors import ChurnError
    read_text(args.churn, "the churn trace")          # unreadable: a clear usage error
    try:
        loaded = load_churn(args.churn)
    except ChurnError as e:
        raise CommandError(f"--churn: {e}", USAGE) from None
    for note in loaded.notes:
        print(f"splay submit: {note}", file=sys.stderr)
    schedule, text = loaded.schedule, loaded.trace_text
    if args.nodes is not None and args.nodes != schedule.nodes:
        raise CommandError(f"-n {args.nodes} but the churn trace {args.churn} has {schedule.nodes} "
                           "node lines: the trace sets the number of nodes (leave -n out)", USAGE)
    if not args.churn_speed > 0:
        raise CommandError(f"--churn-speed must be a positive factor, got {args.churn_speed:g}",
                           USAGE)
    return text


def fault_settings(path, nodes, churn):
    """The settings of ``--faults``'s file, checked here first (errors name the file and line)."""
    from splay.faults import FaultError, parse_faults
    from splay.faults.deployed import submit_settings
    from splay.faults.local import check_with_churn
    if nodes is None:
        raise CommandError("--faults needs the number of nodes: give -n N", USAGE)
    read_text(path, "the fault timeline")            # unreadable: a clear usage error
    try:
        settings = submit_settings(path, nodes)
        if churn is not None:
            check_with_churn(parse_faults(settings["faults"]["text"], path), churn)
    except FaultError as e:
        raise CommandError(f"--faults: {e}", USAGE) from None
    return settings


def topology_text(args, nodes):
    """The text of ``--topology``'s file, checked here first (errors name the file and line)."""
    from splay.emulation import TopologyError, load_link_model
    try:
        model = load_link_model(args.topology)
    except (OSError, TopologyError) as e:
        raise CommandError(f"--topology: {e}", USAGE) from None
    if nodes is not None and model.nodes is not None and model.nodes < nodes:
        raise CommandError(f"--topology {args.topology} describes {model.nodes} nodes, fewer than "
                           f"the job's {nodes}", USAGE)
    return read_text(args.topology, "the topology")


def progress_line(job):
    """One line about a deployment in progress."""
    counts = job["counts"]
    live = sum(counts.values())
    return (f"job {job['id']} {job['state']}: {counts.get(m.I_RUNNING, 0)}/{job['nb_nodes']} "
            f"running, {live} instance(s) reserved")


# -- subcommands -------------------------------------------------------------------------------

def submit(argv, settings=None, finished=None):
    """``splay submit APP.py -n N ... [-- ARGS...]``: submit a job and follow it until it runs;
    ARGS go to every node's ``sys.argv``. ``settings`` are added to the job's; ``finished(client,
    job, status)`` gives the exit status once the job is followed (``splay submit --maelstrom``
    waits for its checker there). ``--maelstrom`` submits a Maelstrom workload
    (:mod:`splay.maelstrom.submit_cmd`)."""
    argv = list(argv)
    if settings is None and any(a == "--maelstrom" or a.startswith("--maelstrom=")
                                for a in argv[:argv.index("--") if "--" in argv else None]):
        from splay.maelstrom.submit_cmd import main as maelstrom_submit
        return maelstrom_submit(argv)
    app_args = []
    if "--" in argv:                # everything after it belongs to the application
        cut = argv.index("--")
        argv, app_args = argv[:cut], argv[cut + 1:]
    p = parser("submit", "Submit an application to the controller and wait until it runs "
                         "(arguments after -- go to every node's sys.argv).")
    p.add_argument("app", help="the application: a Python file (shipped with the modules beside "
                               "it that it imports), a directory or a zip archive with __main__.py")
    p.add_argument("-n", "--nodes", type=int, help="number of nodes (with --churn: the trace's)")
    p.add_argument("--list-size", type=int, help="size of each node's list (default: all nodes)")
    p.add_argument("--random", action="store_true", help="random lists instead of the head")
    p.add_argument("--name", help="job name (default: the file name)")
    p.add_argument("--max-time", type=float, help="kill the job after SECONDS of running")
    p.add_argument("--factor", type=float, default=1.25,
                   help="register factor x nodes and keep the fastest (default %(default)s)")
    p.add_argument("--memory", type=parse_size, default=0, help="memory each node needs (e.g. 64M)")
    waiting = p.add_mutually_exclusive_group()
    waiting.add_argument("--no-wait", action="store_true", help="return once the job is queued")
    waiting.add_argument("--wait", action="store_true",
                         help="wait until the job has ended: exit 0 only when it ENDED (every "
                              "node exited with status 0)")
    p.add_argument("--settle", type=float, default=SETTLE, metavar="SECONDS",
                   help="once RUNNING, watch the nodes this long before returning: a node that "
                        "fails meanwhile (e.g. the application raises at import) makes submit "
                        "fail (default %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give up waiting for RUNNING after SECONDS")
    p.add_argument("--json", action="store_true", help="print the final job as JSON")
    p.add_argument("--churn", metavar="TRACE",
                   help="start and stop the nodes as the churn trace says (one line of up/down "
                        "times per node), or as a churn script (docs/churn.md) compiled here "
                        "says; the trace sets the number of nodes")
    p.add_argument("--churn-speed", type=float, default=1.0, metavar="X",
                   help="with --churn: replay the trace X times faster (default 1)")
    p.add_argument("--topology", metavar="FILE",
                   help="emulate the network of FILE (ModelNet XML, latency matrix or uniform "
                        "model) in every node's sockets")
    p.add_argument("--faults", metavar="FILE",
                   help="apply the fault timeline of FILE to the nodes (pause, kill, restart, "
                        "partition, skew, drift, slow, delay, loss, ...; docs/faults.md)")
    p.add_argument("--shaping", choices=("core", "kernel"),
                   help="with --topology: core (default) emulates it in every node's sockets; "
                        "kernel has each daemon shape its host's traffic with tc (daemons "
                        "started with --shaping-device, as root)")
    # No --ports: a daemon lets each node bind only its own port (its slot).
    net_options.add_to(p, defaults={"max_send": "the daemon's", "max_receive": "the daemon's",
                                    "max_sockets": "the daemon's"}, ports=False)

    def body(args, client):
        if args.shaping is not None and args.topology is None:
            raise CommandError(f"--shaping {args.shaping} says how to emulate a topology: give "
                               "the topology too (--topology FILE)", USAGE)
        try:
            net = net_options.settings(args)
        except ValueError as e:
            raise CommandError(str(e), USAGE) from None
        request = {"name": args.name or os.path.basename(os.path.abspath(args.app)),
                   **read_app(args.app),
                   "nodes": args.nodes, "list_type": "random" if args.random else "head",
                   "factor": args.factor, "memory": args.memory}
        if args.churn is not None:
            request["churn"] = {"trace": churn_trace(args), "speed": args.churn_speed}
            if args.nodes is None:
                del request["nodes"]
        elif args.nodes is None:
            raise CommandError("say how many nodes to run with -n N (or give a --churn trace)",
                               USAGE)
        if args.topology is not None:
            request["settings"] = {"topology_text": topology_text(args, request.get("nodes"))}
            if args.shaping == "kernel":
                request["settings"]["shaping"] = "kernel"
        if net:
            request["settings"] = {**request.get("settings", {}), **net}
        if args.faults is not None:
            request["settings"] = {**request.get("settings", {}),
                                   **fault_settings(args.faults, request.get("nodes"), args.churn)}
        if settings:
            request["settings"] = {**request.get("settings", {}), **settings}
        if app_args:
            request["args"] = app_args
        if args.list_size is not None:
            request["list_size"] = args.list_size
        if args.max_time is not None:
            request["max_time"] = args.max_time
        job = client.post("/api/jobs", request)
        print(f"job {job['id']} (ref {job['ref']}) submitted: {job['nb_nodes']} nodes",
              file=sys.stderr)
        deadline = time.monotonic() + args.timeout
        shown = None
        while not args.no_wait and job["state"] not in m.JOB_FINAL and job["state"] != m.RUNNING:
            if time.monotonic() > deadline:
                raise CommandError(f"job {job['id']} still {job['state']} after {args.timeout:g} s",
                                   JOB_BAD)
            line = progress_line(job)
            if line != shown:
                if sys.stderr.isatty():
                    print("\r" + line.ljust(78), end="", file=sys.stderr, flush=True)
                else:
                    print(line, file=sys.stderr)
                shown = line
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}")
        if shown and sys.stderr.isatty():
            print(file=sys.stderr)
        ran = job["state"] == m.RUNNING
        if ran:
            job = follow_running(client, job, None if args.wait else args.settle)
        if args.json:
            print(json.dumps(job, indent=1))
        else:
            daemons = len({i["daemon"] for i in job["instances"]})
            detail = job["reason"] or (f"{job['counts'].get(m.I_RUNNING, 0)} nodes on {daemons} "
                                       "daemon(s)")
            print(f"job {job['id']} {job['state']}: {detail}")
        failures = m.failure_summary(job["instances"])
        if job["state"] == m.RUNNING and failures:
            print(f"splay submit: job {job['id']} runs but nodes failed ({failures}); see "
                  f"'splay logs {job['id']}'", file=sys.stderr)
            return JOB_BAD
        if job["state"] in (m.FAILED, m.NO_RESOURCES) and job["reason"]:
            print(f"splay submit: job {job['id']} {job['state']}: {job['reason']}; see "
                  f"'splay logs {job['id']}'", file=sys.stderr)
        status = submit_status(job, ran, args.wait)
        return status if finished is None else finished(client, job, status)

    return run(p, argv, body)


def submit_status(job, ran, waited):
    """The exit status of ``splay submit``: 0 when the job is queued (--no-wait), or it ran and
    none of its nodes failed (with --wait: it ENDED, or was KILLED by its --max-time or on
    request, without a failed node); 1 otherwise."""
    if job["state"] == m.QUEUED or job["state"] == m.ENDED:
        return OK
    if m.failure_summary(job["instances"]) or job["state"] in (m.FAILED, m.NO_RESOURCES):
        return JOB_BAD
    if waited:
        return OK if ran and job["state"] == m.KILLED else JOB_BAD
    return OK if ran else JOB_BAD


def follow_running(client, job, settle):
    """Watch a RUNNING job for ``settle`` seconds or until a node fails (``settle`` None: until
    the job has ended). Returns the job as last seen."""
    if settle is None:
        while job["state"] not in m.JOB_FINAL:
            time.sleep(0.3)
            job = client.get(f"/api/jobs/{job['id']}")
        return job
    deadline = time.monotonic() + settle
    while job["state"] == m.RUNNING and not m.failure_summary(job["instances"]):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
        job = client.get(f"/api/jobs/{job['id']}")
    return job


def list_command(argv, name, description, path, columns):
    """A listing subcommand: GET ``path`` and print it as a table of ``columns`` (or as JSON)."""
    p = parser(name, description)
    p.add_argument("--json", action="store_true", help="print JSON")

    def body(args, client):
        rows = client.get(path)
        print(json.dumps(rows, indent=1) if args.json else table(rows, columns))
        return OK

    return run(p, argv, body)


def jobs(argv):
    """``splay jobs``: list jobs, newest first."""
    return list_command(argv, "jobs", "List jobs, newest first.", "/api/jobs", [
        ("ID", "id"), ("REF", "ref"), ("NAME", "name"), ("STATE", "state"),
        ("NODES", "nb_nodes"), ("LIST", lambda r: f"{r['list_type']}:{r['list_size']}"),
        ("CREATED", lambda r: when(r["created_at"])), ("REASON", "reason")])


def job(argv):
    """``splay job ID``: a job's state and where its nodes run."""
    p = parser("job", "Show a job: its state and every node.")
    p.add_argument("id", help="job id or ref")
    p.add_argument("--json", action="store_true", help="print JSON")

    def body(args, client):
        info = client.get(f"/api/jobs/{args.id}")
        if args.json:
            print(json.dumps(info, indent=1))
            return job_status(info)
        print(f"job {info['id']} ({info['ref']}) {info['name']!r}: {info['state']}"
              + (f" - {info['reason']}" if info["reason"] else ""))
        print(f"  nodes {info['nb_nodes']}, {info['list_type']} lists of {info['list_size']}, "
              f"factor {info['factor']:g}, max time {info['max_time'] or 'none'}, "
              f"memory {(info['memory'] or 0) // 2**20 or 'any'} MiB")
        print(f"  created {when(info['created_at'])}, running {when(info['running_at'])}, "
              f"ended {when(info['ended_at'])}")
        print("  instances: " + ", ".join(f"{k} {v}" for k, v in sorted(info["counts"].items())))
        if info.get("check"):
            print("  check: " + info["check"].get("text", info["check"]["valid"])
                  .replace("\n", "\n  "))
        if info.get("log_lines_dropped"):
            print(f"  output lines dropped by the daemons' log limits: {info['log_lines_dropped']}")
        print(table(sorted(info["instances"], key=lambda i: (i["position"] is None, i["position"] or 0)),
                    [("POS", "position"), ("INSTANCE", "id"), ("DAEMON", "daemon"),
                     ("ADDRESS", lambda i: f"{i['ip']}:{i['port']}" if i["port"] else ""),
                     ("STATE", "state"), ("EXIT", "exit_code"), ("PID", "pid"),
                     ("REASON", "reason")]))
        return job_status(info)

    return run(p, argv, body)


def job_status(info):
    """The exit status of ``splay job``: 1 when the job failed (FAILED, NO_RESOURCES) or any of
    its nodes did (even while it still runs), else 0."""
    if info["state"] in (m.FAILED, m.NO_RESOURCES) or m.failure_summary(info["instances"]):
        return JOB_BAD
    return OK


def kill(argv):
    """``splay kill ID``: kill a job and wait until its processes are gone."""
    p = parser("kill", "Kill a job; waits until every node is stopped.")
    p.add_argument("id", help="job id or ref")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the nodes")

    def body(args, client):
        answer = client.post(f"/api/jobs/{args.id}/kill")
        info = answer["job"]
        if not answer["killed"]:
            print(f"job {info['id']} had already ended ({info['state']})")
            return OK
        deadline = time.monotonic() + args.timeout
        while any(i["state"] in m.INSTANCE_SHOWN_LIVE for i in info["instances"]):
            if time.monotonic() > deadline:
                live = sum(i["state"] in m.INSTANCE_SHOWN_LIVE for i in info["instances"])
                raise CommandError(f"job {info['id']} killed but {live} node(s) not confirmed "
                                   f"stopped after {args.timeout:g} s", JOB_BAD)
            time.sleep(0.2)
            info = client.get(f"/api/jobs/{info['id']}")
        print(f"job {info['id']} {info['state']}: " + ", ".join(
            f"{v} {k}" for k, v in sorted(info["counts"].items())))
        return OK

    return run(p, argv, body)


def log_rows(client, job):
    """Every log row of ``job`` so far, in time order (fetched page by page)."""
    path = f"/api/jobs/{job}/logs"
    after_time, after = -1.0, 0
    while True:
        page = client.get(f"{path}?after_time={after_time!r}&after={after}&limit=20000")
        yield from page["lines"]
        if len(page["lines"]) < 20000:
            return
        after_time, after = page["lines"][-1]["ts"], page["lines"][-1]["id"]


def logs(argv):
    """``splay logs ID [-f]``: print a job's log in time order; -f follows it live."""
    p = parser("logs", "Print a job's log lines (all nodes, controller time order).")
    p.add_argument("id", help="job id or ref")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new lines until the job ends")
    p.add_argument("--raw", action="store_true", help="only the text of each line")

    def body(args, client):
        show = (lambda r: r["line"]) if args.raw else format_line
        path = f"/api/jobs/{args.id}/logs"
        if not args.follow:
            for row in log_rows(client, args.id):
                print(show(row))
            return OK
        after = 0
        while True:
            page = client.get(f"{path}?after={after}&limit=20000&wait=5")
            rows = sorted(page["lines"], key=lambda r: (r["ts"], r["id"]))
            for row in rows:
                print(show(row), flush=True)
            if page["lines"]:
                after = max(r["id"] for r in page["lines"])
            elif page["state"] in m.JOB_FINAL:
                return OK

    return run(p, argv, body)


def daemons(argv):
    """``splay daemons``: list the daemons the controller knows."""
    return list_command(argv, "daemons", "List daemons, their limits and how busy they are.",
                        "/api/daemons", [
        ("ID", "id"), ("NAME", "name"), ("IP", "ip"), ("STATE", "state"),
        ("INSTANCES", lambda d: f"{d['instances']}/{d['limits']['max_instances']}"),
        ("MEMORY", lambda d: f"{d['limits']['max_memory'] // 2**20}M"),
        ("PORTS", lambda d: f"{d['limits']['start_port']}-{d['limits']['end_port']}"),
        ("RTT_MS", "rtt_ms"), ("LAST_SEEN", lambda d: when(d["last_seen"]))])

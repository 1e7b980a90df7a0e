"""The controller's HTTP JSON API (used by the ``splay`` command and the web page).

Every ``/api/`` request needs ``Authorization: Bearer TOKEN``. Errors come back as
``{"error": "what was wrong"}`` with a 4xx status.

  GET  /api/status                        controller figures
  GET  /api/daemons                       daemons, their limits, state and instance count
  GET  /api/jobs                          jobs, newest first
  POST /api/jobs                          submit {name, code, nodes, list_size, list_type,
                                          max_time, factor, memory, settings, args,
                                          churn: {trace, speed}, bundle, main} -> the job (201)
                                          (bundle: the application's files, a base64 zip, see
                                          splay.app_files; main: the file each node runs)
  GET  /api/jobs/ID                       a job (ID or ref) with its instances
  POST /api/jobs/ID/kill                  kill it -> {"killed": bool, "job": ...}
  GET  /api/jobs/ID/logs?after=&limit=&wait=[&after_time=]   its log lines (see Database.logs)
  GET  /api/jobs/ID/rundata?since=T       the job's run-data document (splay.observatory)
  GET  /api/jobs/ID/stream                Server-Sent Events: what is new in the run data
  GET  /api/jobs/ID/report                the job's self-contained HTML report
  GET  /metrics                           Prometheus exposition (same token)
  GET  /                                  the web page (static/index.html, static/*.js)

The server (:mod:`splay.deploy.http`) runs on the controller's asyncio loop; the calls below
that touch the database run in its worker threads.
"""
import concurrent.futures

from . import models as m


class BadRequest(Exception):
    """A request the API refuses; carries the HTTP status."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def validate_submission(body):
    """The job fields of a submission, checked; raises BadRequest saying what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")

    def number(name, default, kind=int, low=None):
        value = body.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind is int and value != int(value)):
            raise BadRequest(f"'{name}' must be a{'n integer' if kind is int else ' number'}")
        if low is not None and value < low:
            raise BadRequest(f"'{name}' must be at least {low} (got {value})")
        return kind(value)

    bundle = validate_bundle(body)
    # With files, 'code' is the main file's text (what the controller checks for syntax errors).
    code = body.get("code") if bundle is None else bundle.main_source()
    if not isinstance(code, str):
        raise BadRequest("'code' (the application's source text) is missing")
    churn = validate_churn(body.get("churn"))
    nodes = number("nodes", None if churn is None else len(churn["times"]), int, 1)
    if nodes is None:
        raise BadRequest("'nodes' (how many nodes to run) is missing")
    if churn is not None and nodes != len(churn["times"]):
        raise BadRequest(f"'nodes' is {nodes} but the churn trace has {len(churn['times'])} "
                         "node lines: the trace sets the number of nodes (leave 'nodes' out)")
    list_type = body.get("list_type", "head")
    if list_type not in m.LIST_TYPES:
        raise BadRequest(f"'list_type' must be one of {', '.join(m.LIST_TYPES)}")
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise BadRequest("'settings' must be an object")
    validate_shaping(settings)
    validate_network_limits(settings)
    validate_faults(settings, nodes, churn)
    args = body.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise BadRequest("'args' must be a list of strings (the nodes' command-line arguments)")
    if args:
        settings = dict(settings, app_args=args)      # the daemons put them in sys.argv
    if bundle is not None:                            # the daemons unpack it for the nodes
        settings = dict(settings, app_bundle={"archive": body["bundle"], "main": bundle.main})
    name = body.get("name") or "job"
    if not isinstance(name, str):
        raise BadRequest("'name' must be a string")
    return {"name": name[:200], "code": code, "nb_nodes": nodes,
            "list_size": number("list_size", nodes, int, 1),
            "list_type": list_type, "factor": number("factor", 1.25, float, 1.0),
            "max_time": number("max_time", None, float, 0.001),
            "memory": number("memory", 0, int, 0), "settings": settings, "churn": churn}


def validate_faults(settings, nodes, churn):
    """``settings["faults"]`` (``splay submit --faults``), when present, must be a valid fault
    timeline for ``nodes`` nodes (see splay.faults.deployed.validate)."""
    from splay.faults.deployed import validate
    try:
        validate(settings, nodes, churn is not None)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def validate_network_limits(settings):
    """The restricted-socket limits among ``settings`` (``max_send``, ``blacklist``...) must be
    valid; the daemons lower them to their own and give each node its slot's port."""
    from splay import restricted_socket
    if restricted_socket.has_settings(settings):
        try:
            restricted_socket.new_policy(settings)
        except ValueError as e:
            raise BadRequest(f"'settings': {e}") from None


def validate_bundle(body):
    """The application's files of a submission (``bundle``: a base64 zip archive, ``main``: the
    file each node runs), as a :class:`splay.app_files.App`, or None when the submission gives
    only ``code``; BadRequest saying what is wrong (too big, no such main file, ...)."""
    if "bundle" not in body:
        return None
    from splay import app_files
    try:
        app = app_files.decode(body["bundle"], body.get("main"))
        app.main_source()
        return app
    except app_files.AppError as e:
        raise BadRequest(f"bad application files: {e}", 413 if "more than" in str(e) else 400) \
            from None


def validate_shaping(settings):
    """``settings["shaping"]``, when present, must be "core" (the topology is emulated in the
    nodes' sockets) or "kernel" (each daemon shapes its host with tc), and "kernel" needs the
    topology (``topology_text``); raises BadRequest saying what is wrong."""
    from .host_shaping import SHAPING_MODES
    if "shaping" not in settings:
        return
    shaping = settings["shaping"]
    if not isinstance(shaping, str) or shaping not in SHAPING_MODES:
        raise BadRequest(f"'settings.shaping' must be \"core\" (emulate the topology in the "
                         f"nodes' sockets) or \"kernel\" (shape each daemon's host with tc), "
                         f"got {shaping!r}")
    if shaping == "kernel" and not isinstance(settings.get("topology_text"), str):
        raise BadRequest("'settings.shaping' \"kernel\" needs 'settings.topology_text' (the "
                         "topology the daemons shape)")


def validate_churn(churn):
    """The churn replay of a submission, ``{"trace": TEXT, "speed": X}``, parsed into
    ``{"times": [[up, down, ...] per node], "speed": X}`` (None when absent); BadRequest with the
    trace's line and column when it does not parse."""
    if churn is None:
        return None
    from splay.churn.errors import TraceError
    from splay.churn.trace import parse_trace
    if not isinstance(churn, dict) or not isinstance(churn.get("trace"), str):
        raise BadRequest("'churn' must be an object with 'trace' (the text of a churn trace)")
    speed = churn.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
        raise BadRequest(f"'churn.speed' must be a positive number (got {speed!r})")
    try:
        schedule = parse_trace(churn["trace"], "churn trace")
    except TraceError as e:
        raise BadRequest(f"bad churn trace: {e}") from None
    if schedule.nodes == 0:
        raise BadRequest("the churn trace has no node line (one line of times per node)")
    return {"times": [list(schedule.times(i)) for i in range(schedule.nodes)], "speed": float(speed)}


def parse_error(code, name):
    """None when ``code`` compiles as Python, else where and why it does not."""
    try:
        compile(code, name, "exec")
    except SyntaxError as e:
        return f"the application does not parse: {e.msg} (line {e.lineno})"
    except ValueError as e:
        return f"the application does not parse: {e}"
    return None


class API:
    """The API's logic, callable from any thread; loop-side work goes through ``in_loop``."""

    def __init__(self, controller, token):
        self.controller = controller
        self.db = controller.db
        self.token = token

    def in_loop(self, function, *args):
        """Run ``function(*args)`` in the controller's loop and return its result."""
        result = concurrent.futures.Future()

        def run():
            try:
                result.set_result(function(*args))
            except Exception as e:
                result.set_exception(e)
        self.controller.loop.call_soon_threadsafe(run)
        return result.result(timeout=30)

    def find_job(self, key):
        """The job with id or ref ``key``; BadRequest 404 when there is none."""
        job = self.db.job(int(key)) if key.isdigit() else None
        if job is None:
            job = self.db.job(key)          # a ref (which may happen to be all digits)
        if job is None:
            raise BadRequest(f"no job {key!r}", 404)
        return job

    def submit(self, body):
        """Create a job from a submission: FAILED at once when its code does not parse, else
        QUEUED and handed to the controller's loop."""
        fields = validate_submission(body)
        problem = parse_error(fields["code"], fields["name"])
        job = self.db.add_job(**fields, state=m.FAILED if problem else m.QUEUED,
                              reason=problem or "")
        if problem:
            self.db.update_job(job["id"], ended_at=job["created_at"])
        else:
            self.controller.loop.call_soon_threadsafe(self.controller.submit, job["id"])
        return self.describe(job["id"])

    def describe(self, key):
        """A job (without its code) with its instances and their counts by state."""
        job = self.find_job(str(key))
        job.pop("code")
        bundle = job["settings"].pop("app_bundle", None)
        if bundle is not None:
            job["settings"]["app_main"] = bundle["main"]
        instances = self.db.instances(job["id"])
        # A live instance of a daemon whose connection dropped shows as UNREACHABLE (models.py).
        job["instances"] = [{**{k: i[k] for k in ("id", "position", "daemon", "ip", "port",
                                                  "exit_code", "pid", "reason")},
                             "state": m.shown_state(i)} for i in instances]
        counts = {}
        for instance in job["instances"]:
            counts[instance["state"]] = counts.get(instance["state"], 0) + 1
        job["counts"] = counts
        job["log_lines_dropped"] = self.controller.logs.dropped.get(job["id"], 0)
        if job["churn"] is not None:
            job["churn"] = self.controller.churn_summary(job)
        from splay.maelstrom.deployed import check_of
        job["check"] = check_of(job)       # a Maelstrom job's verdict, else None
        return job

    def kill(self, key):
        """Kill a job (in the controller's loop); says whether it was still alive."""
        job = self.find_job(key)
        killed = self.in_loop(self.controller.kill, job["id"], "killed on request")
        return {"killed": killed, "job": self.describe(job["id"])}

    def logs(self, key, query):
        """A page of a job's log lines, as the query asks (after, after_time, limit, wait)."""
        job = self.find_job(key)

        def arg(name, kind, default):
            try:
                return kind(query[name][0]) if name in query else default
            except ValueError:
                raise BadRequest(f"query parameter {name!r} must be a number") from None
        rows = self.controller.logs.read(
            job["id"], after=arg("after", int, 0), limit=min(arg("limit", int, 10000), 100000),
            wait=min(arg("wait", float, 0.0), 30.0), after_time=arg("after_time", float, None),
            finished=lambda: self.db.job(job["id"])["state"] in m.JOB_FINAL)
        return {"lines": rows, "state": self.db.job(job["id"])["state"]}

    def daemons(self):
        """Every daemon with its round-trip time when connected."""
        rows = self.db.daemons()
        for row in rows:
            session = self.controller.sessions.get(row["id"])
            row["rtt_ms"] = round(session.best_rtt * 1000, 3) if session and \
                session.best_rtt != float("inf") else None
        return rows



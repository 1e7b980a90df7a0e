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
  GET  /                                  the web page (static/index.html)
"""
import concurrent.futures
import hmac
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from . import models as m

log = logging.getLogger("splay.api")
STATIC = os.path.join(os.path.dirname(__file__), "static")
MAX_BODY = 32 * 1024 * 1024


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


def make_handler(api):
    """The request handler class bound to ``api``."""

    class Handler(BaseHTTPRequestHandler):
        """Routes each request to the API (see the module docstring for the calls)."""
        server_version = "splay-controller"
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            """Requests go to the debug log, not to stderr."""
            log.debug("%s %s", self.address_string(), format % args)

        def reply(self, status, payload, content_type="application/json"):
            """Send ``payload`` (JSON-encoded unless bytes) with ``status``."""
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self):
            """True when the request carries the API token."""
            header = self.headers.get("Authorization", "")
            given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
            return hmac.compare_digest(given.encode(), api.token.encode())

        def body(self):
            """The request's JSON body."""
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise BadRequest(f"body larger than {MAX_BODY} bytes", 413)
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError as e:
                raise BadRequest(f"the body is not JSON: {e}") from None

        def handle_any(self, method):
            """Serve one request; every error becomes a JSON answer."""
            url = urlparse(self.path)
            parts = [p for p in url.path.split("/") if p]
            try:
                if method == "GET" and (not parts or parts == ["index.html"]):
                    with open(os.path.join(STATIC, "index.html"), "rb") as f:
                        return self.reply(200, f.read(), "text/html; charset=utf-8")
                if not parts or parts[0] != "api":
                    raise BadRequest(f"no such page {url.path!r}", 404)
                if not self.authorised():
                    raise BadRequest("missing or wrong API token (Authorization: Bearer TOKEN)", 401)
                route = (method, *parts[1:2], len(parts))
                if route == ("GET", "status", 2):
                    return self.reply(200, api.in_loop(api.controller.status))
                if route == ("GET", "daemons", 2):
                    return self.reply(200, api.daemons())
                if route == ("GET", "jobs", 2):
                    return self.reply(200, api.db.jobs())
                if route == ("POST", "jobs", 2):
                    return self.reply(201, api.submit(self.body()))
                if route == ("GET", "jobs", 3):
                    return self.reply(200, api.describe(parts[2]))
                if route == ("POST", "jobs", 4) and parts[3] == "kill":
                    return self.reply(200, api.kill(parts[2]))
                if route == ("GET", "jobs", 4) and parts[3] == "logs":
                    return self.reply(200, api.logs(parts[2], parse_qs(url.query)))
                raise BadRequest(f"no such API call: {method} {url.path}", 404)
            except BadRequest as e:
                self.reply(e.status, {"error": str(e)})
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as e:
                log.exception("API %s %s failed", method, url.path)
                self.reply(500, {"error": f"{type(e).__name__}: {e}"})

        def do_GET(self):
            """GET requests."""
            self.handle_any("GET")

        def do_POST(self):
            """POST requests."""
            self.handle_any("POST")

    return Handler


class APIServer(ThreadingHTTPServer):
    """The HTTP server, with a listen backlog for many clients at once."""

    request_queue_size = 128
    daemon_threads = True


def start_api(controller, token, host, port):
    """Serve the API in background threads; returns the server (``.shutdown()`` stops it)."""
    server = APIServer((host, port), make_handler(API(controller, token)))
    threading.Thread(target=server.serve_forever, name="splay-api", daemon=True).start()
    return server

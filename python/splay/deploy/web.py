"""The controller's HTTP server: aiohttp on the controller's asyncio loop.

Routes the calls of :mod:`splay.deploy.api` (whose docstring lists them), serves the web page and
its scripts (plotly.js from the ``plotly`` package: the page needs no internet), ``/metrics`` for
Prometheus and the Server-Sent Events stream of a job's run data. Database work runs in the
loop's worker threads, so a slow query never stalls the daemons' channels.

The token is never logged: aiohttp's access log is off, and the page receives it in the URL
fragment (``/#token=...``), which browsers do not send to the server.
"""
import asyncio
import concurrent.futures
import hmac
import json
import logging
import os

from aiohttp import web

from splay.observatory import page_data

from .api import API, BadRequest

log = logging.getLogger("splay.api")
STATIC = os.path.join(os.path.dirname(__file__), "static")
MAX_BODY = 32 * 1024 * 1024
STREAM_PERIOD = 1.0         # how long the stream waits for new log lines before a sample check
STREAM_GAP = 0.5           # at least this long between two updates: a busy job sends batches
STREAM_HEARTBEAT = 15.0     # a comment line this often keeps proxies from closing a quiet stream
WORKERS = 64                # threads for database calls; long-polls and streams each hold one


def plotly_js_path():
    """The path of plotly.min.js inside the installed ``plotly`` package."""
    import plotly
    return os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")


def json_reply(status, payload):
    """A JSON response."""
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        content_type="application/json")


def make_app(api):
    """The aiohttp application serving ``api`` (an :class:`~splay.deploy.api.API`)."""
    loop_calls = LoopCalls(api)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[errors_as_json])
    app["api"] = api
    app.router.add_get("/", loop_calls.page)
    app.router.add_get("/index.html", loop_calls.page)
    app.router.add_get("/static/{name}", loop_calls.static)
    app.router.add_get("/metrics", loop_calls.metrics)
    app.router.add_route("*", "/api/{tail:.*}", loop_calls.api_call)
    return app


@web.middleware
async def errors_as_json(request, handler):
    """Every error becomes ``{"error": ...}`` with its status."""
    try:
        return await handler(request)
    except BadRequest as e:
        return json_reply(e.status, {"error": str(e)})
    except web.HTTPException as e:
        if e.status >= 400:
            return json_reply(e.status, {"error": f"no such page {request.path!r}"
                                         if e.status == 404 else e.reason})
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:
        log.exception("API %s %s failed", request.method, request.path)
        return json_reply(500, {"error": f"{type(e).__name__}: {e}"})


class LoopCalls:
    """The request handlers (coroutines on the controller's loop)."""

    def __init__(self, api):
        self.api = api
        self.workers = concurrent.futures.ThreadPoolExecutor(WORKERS, "splay-api")

    def authorise(self, request):
        """Raise BadRequest 401 unless the request carries the API token."""
        header = request.headers.get("Authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), self.api.token.encode()):
            raise BadRequest("missing or wrong API token (Authorization: Bearer TOKEN)", 401)

    async def blocking(self, function, *args):
        """``function(*args)`` in a worker thread (it may query the database or wait)."""
        return await asyncio.get_running_loop().run_in_executor(self.workers, function, *args)

    async def page(self, request):
        """The web page."""
        return web.FileResponse(os.path.join(STATIC, "index.html"),
                                headers={"Content-Type": "text/html; charset=utf-8"})

    async def static(self, request):
        """The page's scripts and styles; ``plotly.min.js`` comes from the plotly package."""
        name = request.match_info["name"]
        if name == "plotly.min.js":
            return web.FileResponse(plotly_js_path(), headers={
                "Content-Type": "text/javascript", "Cache-Control": "max-age=86400"})
        if "/" in name or name.startswith(".") or not os.path.isfile(os.path.join(STATIC, name)):
            raise BadRequest(f"no such page {request.path!r}", 404)
        return web.FileResponse(os.path.join(STATIC, name))

    async def metrics(self, request):
        """Prometheus exposition of the controller's figures and its jobs' nodes."""
        self.authorise(request)
        from .prometheus_figures import exposition
        body, content_type = await self.blocking(exposition, self.api)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def api_call(self, request):
        """Route an ``/api/`` call (see splay.deploy.api)."""
        self.authorise(request)
        api, method = self.api, request.method
        parts = [p for p in request.path.split("/") if p]
        query = {k: request.query.getall(k) for k in request.query}
        route = (method, *parts[1:2], len(parts))
        if route == ("GET", "status", 2):
            return json_reply(200, await self.blocking(api.in_loop, api.controller.status))
        if route == ("GET", "daemons", 2):
            return json_reply(200, await self.blocking(api.daemons))
        if route == ("GET", "jobs", 2):
            return json_reply(200, await self.blocking(api.db.jobs))
        if route == ("POST", "jobs", 2):
            return json_reply(201, await self.blocking(api.submit, await self.body(request)))
        if route == ("GET", "jobs", 3):
            return json_reply(200, await self.blocking(api.describe, parts[2]))
        if route == ("POST", "jobs", 4) and parts[3] == "kill":
            return json_reply(200, await self.blocking(api.kill, parts[2]))
        if route == ("GET", "jobs", 4) and parts[3] == "logs":
            return json_reply(200, await self.blocking(api.logs, parts[2], query))
        if route == ("GET", "jobs", 4) and parts[3] == "rundata":
            since = number_arg(query, "since")
            return json_reply(200, await self.blocking(self.run_data, parts[2], since))
        if route == ("GET", "jobs", 4) and parts[3] == "report":
            return web.Response(body=await self.blocking(self.report, parts[2]),
                                content_type="text/html", charset="utf-8")
        if route == ("GET", "jobs", 4) and parts[3] == "stream":
            return await self.stream(request, parts[2])
        raise BadRequest(f"no such API call: {method} {request.path}", 404)

    async def body(self, request):
        """The request's JSON body."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadRequest(f"body larger than {MAX_BODY} bytes", 413)
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BadRequest(f"body larger than {MAX_BODY} bytes", 413) from None
        try:
            return json.loads(data or b"null")
        except ValueError as e:
            raise BadRequest(f"the body is not JSON: {e}") from None

    def run_data(self, key, since=None):
        """The run-data document of job ``key`` (id or ref)."""
        job = self.api.find_job(key)
        return page_data.run_data(self.api.controller, job["id"], since)

    def report(self, key):
        """The self-contained HTML report of job ``key``."""
        from splay.observatory.report import render
        return render(self.run_data(key)).encode()

    def wait_for_news(self, job_id, after):
        """Wait up to STREAM_PERIOD for log lines after id ``after``; the newest id."""
        self.api.controller.logs.read(job_id, after=after, limit=1, wait=STREAM_PERIOD)
        return self.api.db.last_log_id(job_id)

    async def stream(self, request, key):
        """Server-Sent Events: first the whole run data (event ``rundata``), then each time
        something changed, what is new (event ``update``: samples, events, logs, job and node
        states). Ends after the job has ended and its last update was sent."""
        job = await self.blocking(self.api.find_job, key)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        doc = await self.blocking(self.run_data, str(job["id"]))
        await send_event(response, "rundata", doc)
        last_log = await self.blocking(self.api.db.last_log_id, job["id"])
        since = latest_t(doc)
        shown = (doc["run"]["state"], [n["state"] for n in doc["nodes"]])
        quiet = 0.0
        while doc["run"]["ended"] is None:
            newest = await self.blocking(self.wait_for_news, job["id"], last_log)
            doc = await self.blocking(self.run_data, str(job["id"]), since)
            states = (doc["run"]["state"], [n["state"] for n in doc["nodes"]])
            if newest != last_log or doc["samples"] or doc["events"] or states != shown:
                await send_event(response, "update", doc)
                last_log, shown, quiet = newest, states, 0.0
                since = max(since, latest_t(doc))
                await asyncio.sleep(STREAM_GAP)
            else:
                quiet += STREAM_PERIOD
                if quiet >= STREAM_HEARTBEAT:
                    await response.write(b": still here\n\n")
                    quiet = 0.0
        await send_event(response, "end", {"state": doc["run"]["state"]})
        return response


def latest_t(doc):
    """The newest ``t`` among a document's samples, events and logs (-1 when none)."""
    return max([-1.0] + [x["t"] for part in ("samples", "events", "logs") for x in doc[part]])


async def send_event(response, name, payload):
    """One Server-Sent Event named ``name`` carrying ``payload`` as JSON."""
    await response.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())


def number_arg(query, name):
    """Query parameter ``name`` as a float (None when absent); BadRequest when not a number."""
    if name not in query:
        return None
    try:
        return float(query[name][0])
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be a number") from None


class APIServer:
    """The running HTTP server: ``port`` it listens on, ``close()`` to stop it."""

    def __init__(self, runner, port):
        self.runner = runner
        self.port = port

    async def close(self):
        """Stop serving (open streams are cut)."""
        await self.runner.cleanup()


async def start_api(controller, token, host, port):
    """Serve the API on the controller's loop; returns the APIServer."""
    runner = web.AppRunner(make_app(API(controller, token)), access_log=None,
                           handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=128)
    await site.start()
    bound = runner.addresses[0][1]
    return APIServer(runner, bound)

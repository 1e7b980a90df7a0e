"""splay-controller: accepts daemons, deploys jobs onto them, follows them, and stores their logs.

The controller is one asyncio loop (daemon connections, job deployments, timers) plus the HTTP API
in its own threads (:mod:`splay.deploy.api`); both go through the same :class:`~splay.deploy.db.Database`.
All state that matters lives in the database, so a restarted controller continues where it stopped:
running jobs keep running, daemons reconnect and report what they still run.
"""
import argparse
import asyncio
import hmac
import json
import logging
import math
import os
import signal
import sys
import time

from . import models as m
from . import scheduler
from .db import open_database, redact
from .logs import LogHub
from .metrics_ingest import MetricsIngest
from .metrics_store import MetricsStore, store_options
from .protocol import DAEMON_MESSAGES, Channel, ProtocolError, decode, server_tls
from splay.maelstrom import deployed as maelstrom_deployed
from .report_dedup import ReportMarks, ReportReceiver
from .report_spool import REPORTED

log = logging.getLogger("splay.controller")

HELLO_TIMEOUT = 10.0
SILENCE_LIMIT = 30.0
NODES_UPDATE_DELAY = 0.5
CHURN_NODES_UPDATE_DELAY = 0.02   # a churn job's nodes follow its actions closely
# Time 0 of a churn trace is this far after the start message (plus a little per node), so that the
# daemons create the first processes ahead of it and the first ups are on time.
CHURN_LEAD = 2.0
CHURN_LEAD_PER_NODE = 0.02
LIMIT_KEYS = ("max_instances", "max_memory", "start_port", "end_port", "max_bandwidth")


class ConnectionLost(Exception):
    """The daemon went away before answering."""


class DaemonSession:
    """One connected daemon: its channel, clock offset and the replies awaited from it."""

    def __init__(self, daemon_id, name, ip, limits, channel, offset):
        self.id = daemon_id
        self.name = name
        self.ip = ip
        self.limits = limits
        self.channel = channel
        self.offset = offset          # daemon clock - controller clock, seconds
        self.best_rtt = math.inf
        self.last_heard = time.monotonic()
        self.waiters = {}             # (reply type, job ref) -> Future
        self.reports = None           # ReportReceiver of a daemon that numbers its reports

    def expect(self, kind, ref):
        """A future resolved by the daemon's next ``kind`` message about job ``ref``."""
        future = asyncio.get_running_loop().create_future()
        self.waiters[(kind, ref)] = future
        return future

    def resolve(self, kind, ref, message):
        """Hand ``message`` to whoever awaits it; False when nobody does."""
        future = self.waiters.pop((kind, ref), None)
        if future is None or future.done():
            return False
        future.set_result(message)
        return True

    def fail_waiters(self):
        """The connection is gone: every pending request fails."""
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(ConnectionLost(self.name))
        self.waiters.clear()


class Controller:
    """The controller's logic. ``start()`` binds the daemon port; the rest is driven by events."""

    def __init__(self, database, key, host="127.0.0.1", port=11000, tls=None, daemon_timeout=30.0,
                 register_timeout=10.0, start_timeout=60.0, ping_interval=5.0):
        self.db = database
        self.key = key
        self.host = host
        self.port = port
        self.tls = tls
        self.daemon_timeout = daemon_timeout
        self.register_timeout = register_timeout
        self.start_timeout = start_timeout
        self.ping_interval = ping_interval
        self.logs = LogHub(database)
        self.report_marks = ReportMarks(database)
        self.sessions = {}            # daemon id -> DaemonSession
        self.lost_timers = {}         # daemon id -> TimerHandle
        self.max_time_timers = {}     # job id -> TimerHandle
        self.deployments = {}         # job id -> Task
        self.instance_job = {}        # instance id -> job id (cache for log lines)
        self.alive_nodes = {}         # job id -> the alive nodes last sent to its daemons
        self.nodes_updates = {}       # job id -> TimerHandle of the next nodes update
        self.churn_accuracy = {}      # job id -> Accuracy of its churn replay's actions
        self.schedule_lock = asyncio.Lock()
        self.server = None
        self.loop = None
        self.stats = {"refused_daemons": 0, "protocol_errors": 0}
        self.metrics_store = MetricsStore(database)     # the nodes' samples and events
        self.metrics_ingest = MetricsIngest(self.metrics_store, database)

    # -- start-up and recovery -----------------------------------------------------------
    async def start(self):
        """Recover state left by a previous run, then listen for daemons."""
        self.loop = asyncio.get_running_loop()
        self.recover()
        self.server = await asyncio.start_server(self.accept, self.host, self.port, ssl=self.tls,
                                                 limit=2**26)
        self.port = self.server.sockets[0].getsockname()[1]
        self.loop.create_task(self.watch_daemons())
        self.metrics_store.start(self.loop)

    def recover(self):
        """Continue after a restart: daemons must reconnect, unfinished deployments fail, queued
        jobs are deployed, running jobs keep their max time."""
        self.db.set_daemons_state(m.D_CONNECTED, m.D_DISCONNECTED)
        for daemon in self.db.daemons():
            if daemon["state"] == m.D_DISCONNECTED:
                self.arm_lost_timer(daemon["id"], daemon["name"])
        for job in self.db.jobs(states=[m.REGISTERING, m.STARTING]):
            reason = "the controller restarted while the job was being deployed"
            self.db.update_job(job["id"], state=m.FAILED, reason=reason, ended_at=time.time())
            live = [i["id"] for i in self.db.instances(job["id"], states=m.INSTANCE_LIVE)]
            self.db.update_instances(live, state=m.I_KILLED, reason=reason, ended_at=time.time())
        for job in self.db.jobs(states=[m.QUEUED]):
            self.submit(job["id"])
        for job in self.db.jobs(states=[m.RUNNING]):
            self.arm_max_time(job)
        maelstrom_deployed.resume_checks(self)     # verdicts a restart interrupted

    def submit(self, job_id):
        """Deploy a QUEUED job (runs in the loop; the API calls it through ``call_soon_threadsafe``)."""
        task = self.loop.create_task(self.deploy(job_id))
        self.deployments[job_id] = task
        task.add_done_callback(lambda t: self.deployments.pop(job_id, None))

    # -- daemon connections --------------------------------------------------------------
    async def accept(self, reader, writer):
        """Serve one daemon connection from its hello to its end."""
        channel = Channel(reader, writer)
        session = None
        try:
            session = await self.handshake(channel)
            if session is None:
                return
            while True:
                try:
                    line = await channel.receive_line()
                except ProtocolError as e:
                    self.stats["protocol_errors"] += 1
                    log.warning("daemon %s: %s; closing its connection", session.name, e)
                    return
                if line is None:
                    return
                session.last_heard = time.monotonic()
                try:
                    await self.dispatch(session, decode(line, DAEMON_MESSAGES))
                except (ProtocolError, KeyError, TypeError, ValueError, AttributeError) as e:
                    self.stats["protocol_errors"] += 1
                    log.warning("daemon %s sent a malformed message (%s: %s); ignored",
                                session.name, type(e).__name__, e)
                    channel.send_nowait({"type": "error", "reason": f"malformed message: {e}"})
        except Exception:
            log.exception("daemon connection %s failed", channel.peer)
        finally:
            channel.close()
            if session is not None and self.sessions.get(session.id) is session:
                self.disconnected(session)

    async def handshake(self, channel):
        """Read and check the hello; returns the new session, or None after refusing it."""
        try:
            line = await asyncio.wait_for(channel.receive_line(), HELLO_TIMEOUT)
            if line is None:
                return None
            hello = decode(line, {"hello"})
            key = hello.get("key")
            if not isinstance(key, str) or not hmac.compare_digest(key.encode(), self.key.encode()):
                return await self.refuse(channel, "wrong daemon key")
            name, ip, limits = hello["name"], hello["ip"], hello["limits"]
            if not (isinstance(name, str) and name and isinstance(ip, str) and ip):
                raise ValueError("name and ip must be non-empty strings")
            limits = {k: int(limits[k]) for k in LIMIT_KEYS}
            reported = [(int(r["id"]), str(r["state"]), r.get("exit_code"))
                        for r in hello.get("instances", [])]
            offset = float(hello["time"]) - time.time()
            incarnation = hello.get("incarnation")
            if incarnation is not None and not (isinstance(incarnation, str) and incarnation):
                raise ValueError("incarnation must be a non-empty string")
        except asyncio.TimeoutError:
            return await self.refuse(channel, f"no hello within {HELLO_TIMEOUT:.0f} s")
        except (ProtocolError, KeyError, TypeError, ValueError) as e:
            return await self.refuse(channel, f"bad hello: {type(e).__name__}: {e}")
        old = next((s for s in self.sessions.values() if s.name == name), None)
        if old is not None:
            log.warning("daemon %s connected again; dropping its previous connection", name)
            old.channel.close()
            self.disconnected(old)
        daemon_id = self.db.daemon_connected(name, ip, limits, time.time())
        session = DaemonSession(daemon_id, name, ip, limits, channel, offset)
        welcome = {"type": "welcome", "daemon_id": daemon_id, "time": time.time()}
        if incarnation is not None:
            session.reports = ReportReceiver(self.report_marks, name, incarnation, self.stats)
            welcome["acked"] = session.reports.applied
            self.spool_overflow(name, hello.get("spool_dropped"))
        self.sessions[daemon_id] = session
        timer = self.lost_timers.pop(daemon_id, None)
        if timer:
            timer.cancel()
        try:
            await channel.send(welcome)
        except (ConnectionError, OSError):
            self.disconnected(session)
            return None
        log.info("daemon %s (%s, id %d) connected from %s, %d instance(s) reported",
                 name, ip, daemon_id, channel.peer, len(reported))
        self.reconcile(session, reported)
        self.resend_nodes(session)
        channel.send_nowait({"type": "ping", "t0": time.time()})
        return session

    async def refuse(self, channel, reason):
        """Tell a daemon why it is refused and close."""
        self.stats["refused_daemons"] += 1
        log.warning("refused daemon connection from %s: %s", channel.peer, reason)
        try:
            await channel.send({"type": "refused", "reason": reason})
        except (ConnectionError, OSError):
            pass
        return None

    def reconcile(self, session, reported):
        """Match what a (re)connected daemon runs with what the database says it should."""
        known = {i["id"]: i for i in self.db.instances(daemon_id=session.id, states=m.INSTANCE_LIVE)}
        to_stop = []
        now = time.time()
        ended_jobs = set()
        for instance_id, state, exit_code in reported:
            row = known.pop(instance_id, None)
            if state in (m.I_EXITED, m.I_KILLED):
                if row is not None:
                    self.db.update_instances([instance_id], state=state, exit_code=exit_code,
                                             ended_at=now)
                    ended_jobs.add(row["job_id"])
            elif row is None:
                to_stop.append(instance_id)          # ended, killed or unknown here: stop it
            elif row["state"] == m.I_STARTING and state == m.I_RUNNING:
                self.db.update_instances([instance_id], state=m.I_RUNNING, started_at=now)
        for row in known.values():
            self.db.update_instances([row["id"]], state=m.I_LOST, ended_at=now,
                                     reason=f"daemon {session.name} came back without it")
            ended_jobs.add(row["job_id"])
        if to_stop:
            session.channel.send_nowait({"type": "stop", "instances": to_stop})
        for job_id in ended_jobs:
            self.check_job_end(job_id)

    def disconnected(self, session):
        """A daemon's connection ended: wait ``daemon_timeout`` for it before losing its instances."""
        self.sessions.pop(session.id, None)
        session.fail_waiters()
        self.metrics_ingest.disconnected(session)
        self.db.update_daemon(session.id, state=m.D_DISCONNECTED, last_seen=time.time())
        log.warning("daemon %s disconnected", session.name)
        self.arm_lost_timer(session.id, session.name)

    def arm_lost_timer(self, daemon_id, name):
        """After ``daemon_timeout`` without the daemon, its instances are LOST."""
        old = self.lost_timers.pop(daemon_id, None)
        if old:
            old.cancel()
        self.lost_timers[daemon_id] = self.loop.call_later(
            self.daemon_timeout, self.daemon_lost, daemon_id, name)

    def daemon_lost(self, daemon_id, name):
        """The daemon did not come back in time."""
        self.lost_timers.pop(daemon_id, None)
        if daemon_id in self.sessions:
            return
        self.db.update_daemon(daemon_id, state=m.D_LOST)
        live = self.db.instances(daemon_id=daemon_id, states=m.INSTANCE_LIVE)
        reason = f"daemon {name} unreachable for more than {self.daemon_timeout:g} s"
        self.db.update_instances([i["id"] for i in live], state=m.I_LOST, reason=reason,
                                 ended_at=time.time())
        self.metrics_store.node_events([i["id"] for i in live], "node_crash", reason)
        for job_id in sorted({i["job_id"] for i in live}):
            self.logs.note(job_id, f"{sum(i['job_id'] == job_id for i in live)} instance(s) lost: "
                                   f"{reason}")
            self.check_job_end(job_id)
        if live:
            log.warning("%s: %d instance(s) lost", reason, len(live))

    async def watch_daemons(self):
        """Ping every daemon; close connections that stay silent too long (three intervals, at
        least 30 s: a daemon spawning hundreds of processes on a loaded host answers late)."""
        silence = max(3 * self.ping_interval, SILENCE_LIMIT)
        while True:
            await asyncio.sleep(self.ping_interval)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_heard > silence:
                    log.warning("daemon %s silent for %.0f s; closing", session.name,
                                now - session.last_heard)
                    session.channel.close()
                else:
                    session.channel.send_nowait({"type": "ping", "t0": time.time()})

    # -- daemon messages -------------------------------------------------------------------
    async def dispatch(self, session, message):
        """Act on one message from a daemon."""
        if message.get("seq") is not None and session.reports is not None:
            return await self.receive_numbered(session, message)
        kind = message["type"]
        if kind == "log":
            self.logs.ingest(self.job_of, session.offset, message["lines"])
        elif kind == "exited":
            self.instance_exited(session, int(message["id"]), message.get("exit_code"),
                                 message.get("state", m.I_EXITED), message.get("reason", ""))
        elif kind == "pong":
            self.pong(session, float(message["t0"]), float(message["time"]))
        elif kind == "registered":
            if not session.resolve("registered", message["job"], message):
                self.free_late(session, message)
        elif kind == "started":
            self.instances_started(session, message)
        elif kind == "churn":
            self.instance_churn(session, message)
        elif kind == "metrics":
            self.metrics_ingest.receive(session, message)
        elif kind == "hello":
            raise ProtocolError("hello sent twice")

    async def receive_numbered(self, session, message):
        """A numbered report (see report_dedup.py): apply it unless it is a repeat, then ack it."""
        seq, kind = message["seq"], message["type"]
        if type(seq) is not int or not 0 < seq < 2**62:
            raise ValueError(f"a report number must be an integer from 1 to 2**62, not {seq!r}")
        if kind not in REPORTED:
            raise ProtocolError(f"a {kind!r} message cannot be numbered")
        receiver = session.reports
        if not receiver.is_repeat(seq):
            if kind == "log":
                self.logs.ingest(self.job_of, session.offset, message["lines"],
                                 store=lambda rows: receiver.applied_now(seq, rows))
            else:
                await self.dispatch(session, {k: v for k, v in message.items() if k != "seq"})
                receiver.applied_now(seq)
        session.channel.send_nowait({"type": "ack", "seq": seq})

    def spool_overflow(self, name, dropped):
        """A daemon's spool overflowed while the controller was away: say how much was lost."""
        try:
            messages, lines = int(dropped["messages"]), int(dropped.get("lines", 0))
        except (TypeError, KeyError, ValueError, AttributeError):
            if dropped is not None:
                log.warning("daemon %s: unreadable spool_dropped %r in its hello; ignored", name,
                            dropped)
            return
        if messages <= 0:
            return
        self.stats["reports_overflowed"] = self.stats.get("reports_overflowed", 0) + messages
        self.stats["lines_overflowed"] = self.stats.get("lines_overflowed", 0) + lines
        log.warning("daemon %s: its report spool overflowed while the controller was away: %d "
                    "report(s) with %d output line(s) lost", name, messages, lines)

    def pong(self, session, t0, daemon_time):
        """Keep the offset measured over the fastest round trip (the least uncertain)."""
        now = time.time()
        rtt = now - t0
        if rtt <= session.best_rtt * 1.5 or rtt < 0.005:
            session.best_rtt = min(session.best_rtt, rtt)
            session.offset = daemon_time - (t0 + now) / 2
        self.db.update_daemon(session.id, last_seen=now, clock_offset=session.offset)

    def job_of(self, instance_id):
        """The job of an instance (cached), or None if the instance is unknown."""
        job_id = self.instance_job.get(instance_id)
        if job_id is None:
            job_id = self.db.job_of_instance(int(instance_id))
            if job_id is not None:
                self.instance_job[instance_id] = job_id
        return job_id

    def free_late(self, session, message):
        """Registrations that came after the deployment stopped waiting: give them back."""
        ids = [int(i) for i in message.get("ports", {})]
        if ids:
            session.channel.send_nowait({"type": "free", "instances": ids})
            self.db.delete_instances(ids)

    def instances_started(self, session, message):
        """Record processes a daemon started (before the deployment task sees the reply, so an
        exit that follows is never overwritten)."""
        now = time.time()
        updates = {int(entry["id"]): {"state": m.I_RUNNING, "pid": entry.get("pid"),
                                      "started_at": now}
                   for entry in message.get("instances", [])}
        updates.update({int(instance_id): {"state": m.I_FAILED, "reason": str(reason),
                                           "ended_at": now}
                        for instance_id, reason in message.get("failed", {}).items()})
        # A churn job's instances wait, down, for their first up time (the daemon replays them).
        updates.update({int(instance_id): {"state": m.I_DOWN}
                        for instance_id in message.get("scheduled", [])})
        # The daemon may report an exit (a stop that overtook the start) before this message.
        self.db.update_instances_each(updates, only_states=(m.I_REGISTERED, m.I_STARTING))
        self.metrics_store.node_events([e["id"] for e in message.get("instances", [])],
                                       "node_start", "started", now)
        session.resolve("started", message["job"], message)

    def instance_exited(self, session, instance_id, exit_code, state, reason):
        """A process ended: record how, then see whether its job is over."""
        row = self.db.instance(instance_id)
        if row is None or row["daemon_id"] != session.id or row["state"] not in m.INSTANCE_LIVE:
            return                      # not this daemon's, or already ended (a repeat)
        if state not in (m.I_EXITED, m.I_KILLED):
            state = m.I_EXITED
        if not reason:
            reason = "stopped" if state == m.I_KILLED else f"exit status {exit_code}"
        self.db.update_instances([instance_id], state=state, exit_code=exit_code, reason=reason,
                                 ended_at=time.time())
        self.metrics_store.node_ended(instance_id, state, exit_code, reason)
        self.check_job_end(row["job_id"])

    def instance_churn(self, session, message):
        """A daemon's churn replay brought an instance up or down (or saw it crash while up)."""
        instance_id, change = int(message["id"]), message["change"]
        if change not in ("up", "down", "crashed"):
            raise ValueError(f"unknown churn change {change!r} (up, down or crashed)")
        row = self.db.instance(instance_id)
        if row is None or row["daemon_id"] != session.id or row["state"] not in m.INSTANCE_LIVE:
            return                      # not this daemon's, or already ended
        job_id = row["job_id"]
        at, scheduled = float(message["at"]), float(message["scheduled"])
        if change == "up":
            fields = {"state": m.I_RUNNING, "pid": message.get("pid"),
                      "started_at": at - session.offset, "exit_code": None, "reason": ""}
        else:
            fields = {"state": m.I_DOWN, "exit_code": message.get("exit_code"),
                      "reason": str(message.get("reason") or f"churn: {change}")}
        self.db.update_instances_each({instance_id: fields}, only_states=m.INSTANCE_LIVE)
        t0 = (self.db.job(job_id) or {}).get("churn_t0") or 0.0
        note = (f"churn: node {row['position']} {change} at {at - session.offset - t0:.3f} "
                f"(scheduled {scheduled - session.offset - t0:.3f})")
        if change == "crashed":
            note += f": {fields['reason']}"
        else:
            # Both times are on the daemon's clock: the lag carries no clock-offset error.
            self.churn_accuracy.setdefault(job_id, _accuracy()).record(change, at - scheduled)
        self.logs.note(job_id, note)
        self.metrics_store.churn_event(instance_id, change, at - session.offset, note)
        self.schedule_nodes_update(job_id)

    def churn_summary(self, job):
        """What the API shows of a churn job: its trace's size and how late its actions were."""
        churn = job["churn"]
        accuracy = self.churn_accuracy.get(job["id"])
        lags = sorted(accuracy.all_lags) if accuracy else []
        return {"nodes": len(churn["times"]), "speed": churn["speed"], "t0": job.get("churn_t0"),
                "starts": len(accuracy.lags["up"]) if accuracy else 0,
                "stops": len(accuracy.lags["down"]) if accuracy else 0,
                "max_lag_ms": round(lags[-1] * 1000, 3) if lags else None,
                "median_lag_ms": round(lags[len(lags) // 2] * 1000, 3) if lags else None}

    def check_job_end(self, job_id):
        """A RUNNING job with no live instance left is over: ENDED when every node ended well
        (status 0, or stopped by its churn trace), else FAILED with what went wrong."""
        job = self.db.job(job_id)
        if job is None or job["state"] != m.RUNNING:
            return
        instances = self.db.instances(job_id)
        if any(i["state"] in m.INSTANCE_LIVE for i in instances):
            self.schedule_nodes_update(job_id)
            return
        failures = m.failure_summary(instances)
        if failures:
            self.finish(job_id, m.FAILED, f"all {len(instances)} instances ended ({failures})")
        else:
            self.finish(job_id, m.ENDED, f"all {len(instances)} instances ended (0 with an error "
                                         "status, 0 lost)")

    def schedule_nodes_update(self, job_id):
        """Soon (coalescing bursts of ends), tell the daemons of a job which nodes are alive."""
        if job_id not in self.nodes_updates:
            delay = CHURN_NODES_UPDATE_DELAY if job_id in self.churn_accuracy else NODES_UPDATE_DELAY
            self.nodes_updates[job_id] = self.loop.call_later(delay, self.send_nodes, job_id)

    def send_nodes(self, job_id):
        """Send the alive nodes of a running job to the daemons that run its nodes, when the list
        changed: they rewrite each node's nodes file, which ``splay.job.nodes()`` reads."""
        self.nodes_updates.pop(job_id, None)
        job = self.db.job(job_id)
        if job is None or job["state"] != m.RUNNING:
            return
        instances = self.db.instances(job_id)
        running = sorted((i for i in instances if i["state"] == m.I_RUNNING),
                         key=lambda i: i["position"])
        alive = [{"ip": i["ip"], "port": i["port"]} for i in running]
        if alive == self.alive_nodes.get(job_id):
            return
        self.alive_nodes[job_id] = alive
        # Daemons of instances that are down now too: their next process starts with this list.
        holders = {i["daemon_id"] for i in instances if i["state"] in (m.I_RUNNING, m.I_DOWN)}
        for daemon_id in holders:
            session = self.sessions.get(daemon_id)
            if session is not None:
                session.channel.send_nowait({"type": "nodes", "job": job["ref"], "nodes": alive})

    def resend_nodes(self, session):
        """Send a (re)connected daemon the alive nodes of every running job it holds nodes of:
        ``send_nodes`` sends only changes, and a change made while the daemon was away (or
        while its connection was dying) would leave its nodes files (``job.nodes()``) stale."""
        held = {i["job_id"] for i in self.db.instances(daemon_id=session.id,
                                                       states=(m.I_RUNNING, m.I_DOWN))}
        for job_id in sorted(held):
            job = self.db.job(job_id)
            if job is None or job["state"] != m.RUNNING:
                continue
            running = sorted((i for i in self.db.instances(job_id) if i["state"] == m.I_RUNNING),
                             key=lambda i: i["position"])
            session.channel.send_nowait({"type": "nodes", "job": job["ref"], "nodes": [
                {"ip": i["ip"], "port": i["port"]} for i in running]})

    def finish(self, job_id, state, reason):
        """Put a job in a final state."""
        self.db.update_job(job_id, state=state, reason=reason, ended_at=time.time())
        timer = self.max_time_timers.pop(job_id, None)
        if timer:
            timer.cancel()
        self.logs.note(job_id, f"job {state}: {reason}")
        if job_id in self.churn_accuracy:
            self.logs.note(job_id, "churn: " + self.churn_accuracy[job_id].summary())
        log.info("job %d %s: %s", job_id, state, reason)
        self.loop.call_later(60.0, self.forget, job_id)
        maelstrom_deployed.start_check(self, job_id)     # a Maelstrom job: judge its history

    def forget(self, job_id):
        """Drop the per-instance caches of an ended job (a minute later: its last lines may still
        be on their way)."""
        self.alive_nodes.pop(job_id, None)
        ended = [i for i, j in self.instance_job.items() if j == job_id]
        for instance_id in ended:
            del self.instance_job[instance_id]
            self.logs.last_time.pop(instance_id, None)

    # -- jobs ------------------------------------------------------------------------------
    def connected_daemons(self):
        """Connected daemons as the scheduler sees them (limits and live instance count)."""
        live = {d["id"]: d["instances"] for d in self.db.daemons()}
        return [{"id": s.id, "name": s.name, "limits": s.limits, "live": live.get(s.id, 0)}
                for s in self.sessions.values()]

    async def deploy(self, job_id):
        """Register, select, start: the whole deployment of one job."""
        try:
            async with self.schedule_lock:
                job = self.db.job(job_id)
                if job["state"] != m.QUEUED:
                    return                      # killed before its turn came
                daemons = self.connected_daemons()
                reason = scheduler.check_resources(job["nb_nodes"], job["memory"], daemons)
                if reason:
                    self.finish(job_id, m.NO_RESOURCES, reason)
                    return
                plan = scheduler.plan_registration(job["nb_nodes"], job["factor"], job["memory"],
                                                   daemons)
                self.db.update_job(job_id, state=m.REGISTERING)
                slots = {d: self.db.add_instances(job_id, [d] * n, m.I_REGISTERED)
                         for d, n in plan.items()}
            chosen = await self.register(job, slots)
            if chosen is None:
                return
            await self.start_nodes(job, chosen)
        except Exception as e:
            log.exception("deployment of job %d failed", job_id)
            if self.db.job(job_id)["state"] not in m.JOB_FINAL:
                self.kill(job_id, f"deployment failed: {type(e).__name__}: {e}", m.FAILED)

    async def register(self, job, slots):
        """Ask each daemon for its slots; keep the first ``nb_nodes`` that answer, free the rest.
        Returns [(instance id, session, port)] in position order, or None if the job stopped."""
        job_id, ref, needed = job["id"], job["ref"], job["nb_nodes"]
        asks = {}
        for daemon_id, ids in slots.items():
            session = self.sessions.get(daemon_id)
            if session is None:
                continue
            asks[session] = asyncio.ensure_future(_answer(session, session.expect("registered", ref)))
            session.channel.send_nowait({"type": "register", "job": ref, "memory": job["memory"],
                                         "instances": ids})
        chosen, refusals, answered = [], [], set()
        try:
            for next_reply in asyncio.as_completed(list(asks.values()),
                                                   timeout=self.register_timeout):
                try:
                    session, reply = await next_reply
                except ConnectionLost as e:
                    refusals.append(f"daemon {e} disconnected")
                    continue
                answered.add(session)
                ports = {int(k): int(v) for k, v in reply.get("ports", {}).items()}
                refusals.extend(f"{session.name}: {r}" for r in set(reply.get("refused", {}).values()))
                keep = sorted(ports)[:needed - len(chosen)]
                chosen.extend((i, session, ports[i]) for i in keep)
                extra = [i for i in slots[session.id] if i not in keep]
                if extra:
                    session.channel.send_nowait({"type": "free", "instances": extra})
                    self.db.delete_instances(extra)
                if len(chosen) == needed:
                    break
        except asyncio.TimeoutError:
            refusals.append(f"no answer within {self.register_timeout:g} s")
        for session, task in asks.items():
            if task.done() and not task.cancelled():
                task.exception()        # seen: a lost daemon is already counted above
            if session not in answered:
                # Slower than the others (or gone): its slots are not needed.
                session.waiters.pop(("registered", ref), None)
                task.cancel()
                session.channel.send_nowait({"type": "free", "instances": slots[session.id]})
                self.db.delete_instances(slots[session.id])
        if self.db.job(job_id)["state"] != m.REGISTERING:
            # Killed meanwhile: its stops may have overtaken the registrations, so free them too.
            for instance_id, session, _ in chosen:
                session.channel.send_nowait({"type": "free", "instances": [instance_id]})
            return None
        if len(chosen) < needed:
            for instance_id, session, _ in chosen:
                session.channel.send_nowait({"type": "free", "instances": [instance_id]})
            self.db.delete_instances([c[0] for c in chosen])
            why = "; ".join(sorted(set(refusals))) or "daemons refused"
            self.finish(job_id, m.NO_RESOURCES,
                        f"only {len(chosen)} of {needed} nodes could be registered ({why})")
            return None
        return chosen

    async def start_nodes(self, job, chosen):
        """Give each node its position and list, start them, and wait until all run."""
        job_id, ref = job["id"], job["ref"]
        nodes = [{"ip": session.ip, "port": port} for _, session, port in chosen]
        lists = scheduler.node_lists(len(chosen), job["list_size"], job["list_type"])
        self.db.update_instances_each({
            instance_id: {"position": position, "ip": session.ip, "port": port,
                          "state": m.I_STARTING}
            for position, (instance_id, session, port) in enumerate(chosen)})
        for instance_id, _, _ in chosen:
            self.instance_job[instance_id] = job_id
        # A churn job starts with nobody up: its first nodes update follows the first ups.
        self.alive_nodes[job_id] = [] if job["churn"] else nodes
        churn = job["churn"]
        per_daemon = {}
        for position, (instance_id, session, _) in enumerate(chosen):
            entry = {"id": instance_id, "position": position, "list": lists[position]}
            if churn:
                entry["times"] = churn["times"][position]
            per_daemon.setdefault(session, []).append(entry)
        settings = dict(job["settings"])
        if settings.get("topology_text") is not None:
            settings["topology_nodes"] = nodes          # job positions -> addresses, fixed
        from splay.faults import deployed as faults
        settings = faults.stamp(settings, nodes, time.time())  # --faults: time 0 is now
        spec = {"ref": ref, "name": job["name"], "code": job["code"], "list_type": job["list_type"],
                "list_size": job["list_size"], "settings": settings,
                "memory": job["memory"]}
        if self.db.job(job_id)["state"] != m.REGISTERING:
            return
        self.db.update_job(job_id, state=m.STARTING)
        t0 = None
        if churn:
            t0 = time.time() + CHURN_LEAD + CHURN_LEAD_PER_NODE * len(chosen)
            self.db.update_job(job_id, churn_t0=t0)
            self.churn_accuracy[job_id] = _accuracy()
        waits = []
        for session, entries in per_daemon.items():
            waits.append(session.expect("started", ref))
            message = {"type": "start", "job": faults.for_daemon(spec, session.offset),
                       "nodes": nodes, "instances": entries}
            if churn:
                message["churn"] = {"t0": t0 + session.offset, "speed": churn["speed"]}
            session.channel.send_nowait(message)
        done, pending = await asyncio.wait(waits, timeout=self.start_timeout)
        for future in pending:
            future.cancel()
        for future in done:
            future.exception()      # a lost daemon shows as its instances not running
        job_now = self.db.job(job_id)
        if job_now["state"] != m.STARTING:
            return
        instances = self.db.instances(job_id)
        # An instance that already exited did start; the others must run now.
        problems = [i for i in instances if i["state"] not in (m.I_RUNNING, m.I_EXITED, m.I_DOWN)]
        if problems:
            reasons = sorted({i["reason"] or f"still {i['state']} on {i['daemon']}" for i in problems})
            self.kill(job_id, f"{len(problems)} of {len(instances)} nodes did not start: "
                              + "; ".join(reasons[:3]), m.FAILED)
            return
        self.db.update_job(job_id, state=m.RUNNING, running_at=time.time())
        for session in per_daemon:
            session.channel.send_nowait({"type": "release", "job": ref})
        self.logs.note(job_id, f"job RUNNING: {len(instances)} nodes on {len(per_daemon)} daemon(s)")
        log.info("job %d RUNNING: %d nodes on %d daemon(s)", job_id, len(instances), len(per_daemon))
        self.arm_max_time(self.db.job(job_id))
        if settings.get("faults"):
            self.loop.create_task(faults.note_actions(
                settings, lambda text: self.logs.note(job_id, text),
                lambda: (self.db.job(job_id) or {}).get("state") not in m.JOB_FINAL))
        if churn:
            self.logs.note(job_id, f"churn: replaying a trace of {len(churn['times'])} node(s) "
                                   f"at speed {churn['speed']:g}, time 0 at {t0:.3f}")
            self.schedule_nodes_update(job_id)
        self.check_job_end(job_id)

    def arm_max_time(self, job):
        """Kill ``job`` when its maximum time (counted from RUNNING) is reached."""
        if not job["max_time"]:
            return
        left = job["running_at"] + job["max_time"] - time.time()
        self.max_time_timers[job["id"]] = self.loop.call_later(
            max(0.0, left), self.kill, job["id"], f"maximum time of {job['max_time']:g} s reached")

    def kill(self, job_id, reason="killed on request", state=m.KILLED):
        """Stop every instance of a job and put it in ``state``. False if it had already ended."""
        job = self.db.job(job_id)
        if job is None or job["state"] in m.JOB_FINAL:
            return False
        self.finish(job_id, state, reason)
        live = self.db.instances(job_id, states=m.INSTANCE_LIVE)
        by_daemon = {}
        for instance in live:
            by_daemon.setdefault(instance["daemon_id"], []).append(instance["id"])
        now = time.time()
        for daemon_id, ids in by_daemon.items():
            session = self.sessions.get(daemon_id)
            if session is not None:
                session.channel.send_nowait({"type": "stop", "instances": ids})
            else:
                # The daemon stops them when it reconnects (reconcile sees them ended here).
                self.db.update_instances(ids, state=m.I_KILLED, ended_at=now,
                                         reason="killed while its daemon was disconnected")
        return True

    def status(self):
        """Numbers about the controller itself (for the API and the figures)."""
        return {"daemons_connected": len(self.sessions), "daemon_port": self.port,
                "log_lines_ingested": self.logs.ingested, "pid": os.getpid(),
                "max_rss_kib": _max_rss_kib(), **self.stats}


def _accuracy():
    from splay.launch.churn_replay import Accuracy
    return Accuracy()


async def _answer(session, future):
    """(session, its reply) once ``future`` resolves."""
    return session, await future


def _max_rss_kib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def parse_address(text, default_host):
    """'HOST:PORT' or 'PORT' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return (host or default_host), int(port)


def read_secret(value, path, what):
    """A secret given inline or in a file (its first line); raises ValueError saying which."""
    if path:
        try:
            with open(path) as f:
                return f.readline().strip()
        except OSError as e:
            raise ValueError(f"cannot read the {what} from {path}: {e.strerror}") from None
    return value


def build_parser():
    """The command-line options of splay-controller."""
    p = argparse.ArgumentParser(prog="splay-controller", description=__doc__.splitlines()[0])
    p.add_argument("--db", default="splay-controller.db",
                   help="SQLite file (default %(default)s) or postgresql://user:pw@host/db URL")
    p.add_argument("--listen", default="127.0.0.1:11000",
                   help="HOST:PORT where daemons connect (port 0: any free port)")
    p.add_argument("--api", default="127.0.0.1:8800", help="HOST:PORT of the HTTP JSON API")
    p.add_argument("--daemon-key", help="shared key daemons must present")
    p.add_argument("--daemon-key-file", help="file whose first line is the daemon key")
    p.add_argument("--token", help="token the API requires (Authorization: Bearer TOKEN)")
    p.add_argument("--token-file", help="file whose first line is the API token")
    p.add_argument("--tls-cert", help="PEM certificate: daemons then connect with TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA: daemons must show a certificate it signed")
    p.add_argument("--daemon-timeout", type=float, default=30.0,
                   help="seconds a daemon may stay away before its instances are LOST")
    p.add_argument("--register-timeout", type=float, default=10.0,
                   help="seconds to wait for daemons to register a job's nodes")
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="seconds to wait for daemons to start a job's nodes")
    p.add_argument("--ping-interval", type=float, default=5.0, help="seconds between pings")
    p.add_argument("--ready-file", help="write {daemon_port, api_port, pid} here once serving")
    metrics = p.add_argument_group(
        "metrics store", "the deployed jobs' node samples (see docs/metrics.md): older samples are "
        "downsampled, and each job's share is capped (beyond, all its samples are thinned)")
    metrics.add_argument("--metrics-tiers", default="10m=10s,1h=1m,1d=10m", metavar="AGE=RES,...",
                         help="samples older than AGE keep one per node per RES "
                              "(default %(default)s; s, m, h, d suffixes)")
    metrics.add_argument("--metrics-max-rows", type=int, default=1_000_000, metavar="N",
                         help="samples (rows) one job may hold (default %(default)s)")
    metrics.add_argument("--metrics-max-bytes", default="512M", metavar="SIZE",
                         help="bytes of sample data one job may hold (K/M/G; default %(default)s)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv=None):
    """Run the controller until SIGINT/SIGTERM. Returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        key = read_secret(args.daemon_key, args.daemon_key_file, "daemon key")
        token = read_secret(args.token, args.token_file, "API token")
    except ValueError as e:
        print(f"splay-controller: {e}", file=sys.stderr)
        return 2
    if not key or not token:
        print("splay-controller: give --daemon-key (or --daemon-key-file) and --token "
              "(or --token-file)", file=sys.stderr)
        return 2
    try:
        metrics_options = store_options(args.metrics_tiers, args.metrics_max_rows,
                                        args.metrics_max_bytes)
    except ValueError as e:
        print(f"splay-controller: {e}", file=sys.stderr)
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        print("splay-controller: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        database = open_database(args.db)
    except Exception as e:
        print(f"splay-controller: cannot open database {redact(args.db)}: {e}", file=sys.stderr)
        return 1
    tls = server_tls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    host, port = parse_address(args.listen, "127.0.0.1")
    api_host, api_port = parse_address(args.api, "127.0.0.1")
    try:
        return asyncio.run(serve(args, database, key, token, tls, host, port, api_host, api_port,
                                 metrics_options))
    finally:
        database.close()


def page_link(host, port, token):
    """The URL that opens the web page signed in: the token rides in the fragment, which the
    browser keeps to itself (the page moves it to sessionStorage and out of the address bar)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/#token={token}"


def print_page_link(host, port, token):
    """Print the signed-in page link on a terminal only: a redirected stdout may be a log file,
    and the token must never land in a log."""
    if sys.stdout.isatty():
        print(f"web page (signed in): {page_link(host, port, token)}", flush=True)
    else:
        print(f"web page: {page_link(host, port, 'TOKEN')} (put the API token after #token=)",
              flush=True)


async def serve(args, database, key, token, tls, host, port, api_host, api_port,
                metrics_options=None):
    """Run the controller and its API until a stop signal."""
    from .web import start_api
    controller = Controller(database, key, host, port, tls, args.daemon_timeout,
                            args.register_timeout, args.start_timeout, args.ping_interval)
    for name, value in (metrics_options or {}).items():
        setattr(controller.metrics_store, name, value)
    try:
        await controller.start()
        api = await start_api(controller, token, api_host, api_port)
    except OSError as e:
        log.error("cannot listen: %s", e)
        return 1
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        controller.loop.add_signal_handler(signum, stop.set)
    ready = {"daemon_port": controller.port, "api_port": api.port, "pid": os.getpid()}
    log.info("controller ready: daemons on %s:%d (%s), API on http://%s:%d, database %s",
             host, controller.port, "TLS" if tls else "plain TCP", api_host, ready["api_port"],
             redact(args.db))
    print_page_link(api_host, api.port, token)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ready, f)
        os.replace(tmp, args.ready_file)
    await stop.wait()
    log.info("controller stopping (daemons keep their jobs and reconnect later)")
    await api.close()
    controller.metrics_store.flush()        # the samples received last
    controller.server.close()
    for session in list(controller.sessions.values()):
        session.channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

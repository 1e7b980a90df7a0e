"""The controller's metrics store: deployed jobs' node samples and events, in its database.

Samples arrive from the daemons (checked by :mod:`.metrics_ingest`) and wait in memory, at most
one per node and whole second of sample time (the newest wins: a flood of samples cannot grow the
store faster than one row per node per second); :meth:`MetricsStore.flush` writes them in one
transaction every :data:`FLUSH_INTERVAL`. Every sample is cumulative (RPC counts, bytes, CPU...),
so keeping fewer of them loses resolution, never totals. That is how the store stays bounded:

- **downsampling** -- samples older than each tier's age keep one per node per tier resolution
  (default :data:`DEFAULT_TIERS`: 1 s for 10 min, then 10 s, 1 min after 1 h, 10 min after a day);
- **retention** -- when a job holds more than ``max_rows`` rows or ``max_bytes`` bytes of sample
  data, all its samples are thinned to the one resolution that brings it to half of both caps
  (new samples then come at full resolution again). The whole run stays visible, coarser.

Events (node start, stop, crash, churn actions, metrics cut off) are written at once, up to
``max_events`` per job. The store
also keeps each node's newest sample in memory for ``GET /metrics``
(:meth:`MetricsStore.prometheus_view`) and builds the samples/events part of a deployed job's
run-data document (:meth:`MetricsStore.run_data`).
"""
import asyncio
import collections
import json
import logging
import math
import time

from . import models as m

log = logging.getLogger("splay.controller")

DEFAULT_TIERS = ((600, 10), (3600, 60), (86400, 600))
"""(age, resolution) in seconds: samples older than ``age`` keep one per node per ``resolution``."""

DEFAULT_MAX_ROWS = 1_000_000
"""Samples one job may hold (rows)."""

DEFAULT_MAX_BYTES = 512 * 2 ** 20
"""Bytes of sample data one job may hold."""

DEFAULT_MAX_EVENTS = 200_000
"""Events one job may hold (a churn trace of many short lives); later ones are counted, not kept."""

NODE_LIFE = ("node_start", "node_stop", "node_crash")

FLUSH_INTERVAL = 1.0
COMPACT_INTERVAL = 10.0
CHUNK_ROWS = 20_000
"""Rows one downsampling step reads at most (the loop runs other work between steps)."""

RECENT = 600.0
"""Seconds an ended job stays in ``GET /metrics``."""

MAX_DOCUMENT_SAMPLES = 200_000
"""Samples a run-data document carries at most (older ones thinned when a job holds more)."""

MAX_PENDING_SECONDS = 120
"""Seconds of samples one node may have waiting for the next write (a backlog's oldest go)."""


def parse_tiers(text):
    """``"10m=10s,1h=1m,1d=10m"`` -> ``((600, 10), (3600, 60), (86400, 600))``; ValueError saying
    what is wrong (ages and resolutions must increase)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def seconds(part):
        part = part.strip()
        scale = units.get(part[-1:], None)
        number = part[:-1] if scale else part
        try:
            value = float(number) * (scale or 1)
        except ValueError:
            raise ValueError(f"{part!r} is not a duration (e.g. 90, 10m, 2h, 1d)") from None
        if value < 1:
            raise ValueError(f"{part!r}: durations are at least one second")
        return int(value)
    tiers = []
    for item in text.split(","):
        age, sep, res = item.partition("=")
        if not sep:
            raise ValueError(f"tier {item.strip()!r} must be AGE=RESOLUTION (e.g. 10m=10s)")
        tiers.append((seconds(age), seconds(res)))
    for (a1, r1), (a2, r2) in zip(tiers, tiers[1:]):
        if a2 <= a1 or r2 <= r1:
            raise ValueError("tiers must have increasing ages and resolutions "
                             f"({a1}={r1} then {a2}={r2})")
    return tuple(tiers)


def parse_size(text):
    """``"512M"`` -> bytes (K, M, G suffixes); ValueError unless a positive size."""
    text = text.strip().upper()
    scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:], None)
    try:
        value = int(float(text[:-1] if scale else text) * (scale or 1))
    except ValueError:
        raise ValueError("not a size (e.g. 512M, 2G, 1000000)") from None
    if value < 1:
        raise ValueError("give a positive size")
    return value


def store_options(tiers, max_rows, max_bytes):
    """The controller's ``--metrics-tiers``, ``--metrics-max-rows``, ``--metrics-max-bytes`` as
    MetricsStore attributes; ValueError saying which option is wrong and why."""
    try:
        parsed = parse_tiers(tiers)
    except ValueError as e:
        raise ValueError(f"--metrics-tiers {tiers!r}: {e}") from None
    if max_rows < 1:
        raise ValueError(f"--metrics-max-rows {max_rows}: give at least 1")
    try:
        size = parse_size(max_bytes)
    except ValueError as e:
        raise ValueError(f"--metrics-max-bytes {max_bytes!r}: {e}") from None
    return {"tiers": parsed, "max_rows": max_rows, "max_bytes": size}


class _JobSize:
    """What the store knows of one job's stored samples."""

    def __init__(self, rows=0, size=0, first_sec=None, last_sec=None):
        self.rows = rows
        self.bytes = size
        self.first_sec = first_sec
        self.last_sec = last_sec
        self.compacted = {}        # tier resolution -> seconds below which it is applied


class MetricsStore:
    """Samples and events of deployed jobs (see the module docstring)."""

    def __init__(self, db, tiers=DEFAULT_TIERS, max_rows=DEFAULT_MAX_ROWS,
                 max_bytes=DEFAULT_MAX_BYTES, max_events=DEFAULT_MAX_EVENTS, clock=time.time):
        self.db = db
        self.tiers = tuple(tiers)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.events = collections.Counter()   # job -> events stored (counted once, then kept)
        self.clock = clock
        self.pending = {}          # (job, node) -> {second: (t, data text)}
        self.written = {}          # (job, node) -> the newest second written (replaced if sent again)
        self.pending_dropped = collections.Counter()   # job -> samples lost, not yet written
        self.latest = {}           # job -> {node: (t, sample)}: its newest sample
        self.up = {}               # (job, node) -> whether its last start/stop event was a start
        self.sizes = None          # job -> _JobSize (loaded at start)
        self.stats = collections.Counter()   # figures for GET /metrics
        self.task = None

    # -- writing --------------------------------------------------------------------------------
    def add(self, job_id, node, t, sample, data):
        """Keep ``sample`` (a checked dict; ``data`` its JSON text) of ``node`` of ``job_id``,
        taken at controller time ``t``; written at the next flush."""
        seconds = self.pending.setdefault((job_id, node), {})
        second = int(t // 1)
        if second not in seconds and len(seconds) >= MAX_PENDING_SECONDS:
            del seconds[min(seconds)]
            self.pending_dropped[job_id] += 1
        elif second in seconds:
            self.stats["samples_merged"] += 1
        seconds[second] = (t, data)
        newest = self.latest.setdefault(job_id, {})
        if node not in newest or newest[node][0] <= t:
            newest[node] = (t, sample)

    def add_dropped(self, job_id, count):
        """``count`` samples of ``job_id`` were lost on the way (node, daemon or refused)."""
        if count > 0:
            self.pending_dropped[job_id] += count

    def node_events(self, instance_ids, kind, detail="", t=None):
        """Events of ``kind`` for the nodes of ``instance_ids`` (those placed in a job), at ``t``
        (controller time, default now)."""
        t = self.clock() if t is None else t
        rows = []
        for instance_id in instance_ids:
            row = self.db.instance(int(instance_id))
            if row is None or row["position"] is None:
                continue
            key = (row["job_id"], row["position"])
            if kind in ("node_stop", "node_crash") and self.up.get(key) is False:
                continue        # already down (a churned node's final end, after its last down)
            if kind in NODE_LIFE:
                self.up[key] = kind == "node_start"
            if self._event_count(row["job_id"]) >= self.max_events:
                self.stats["events_dropped"] += 1
                continue
            self.events[row["job_id"]] += 1
            rows.append((row["job_id"], t, kind, row["position"], detail))
        self.db.add_metric_events(rows)

    def _event_count(self, job_id):
        if job_id not in self.events:
            self.events[job_id] = len(self.db.metric_events(job_id))
        return self.events[job_id]

    def node_ended(self, instance_id, state, exit_code, reason):
        """An instance's process ended for good: ``node_stop`` when it was stopped or exited
        with status 0, else ``node_crash``."""
        self.flush()      # its last samples came before its end: a report made now has them
        clean = state == m.I_KILLED or (state == m.I_EXITED and exit_code in (0, None))
        self.node_events([instance_id], "node_stop" if clean else "node_crash", reason)

    def churn_event(self, instance_id, change, t, note):
        """A churn action (``up``, ``down``) or a crash while up, at controller time ``t``."""
        self.node_events([instance_id], "churn", note, t)
        kind = {"up": "node_start", "down": "node_stop"}.get(change, "node_crash")
        self.node_events([instance_id], kind, f"churn: {change}", t)

    def flush(self):
        """Write the waiting samples and lost-sample counts (one transaction each)."""
        now = self.clock()
        rows, sizes, again = [], self._sizes(), []
        for (job_id, node), seconds in self.pending.items():
            size = sizes.get(job_id)
            if size is None:
                size = sizes[job_id] = _JobSize()
            # A node's samples come in time order: only the second written last can come again
            # (its final sample, sent right after a flush): the newer one replaces it.
            if self.written.get((job_id, node)) in seconds:
                again.append((job_id, node, self.written[(job_id, node)]))
                size.rows -= 1
            self.written[(job_id, node)] = max(seconds)
            for second, (t, data) in seconds.items():
                rows.append((job_id, node, t, second, 1, now, data))
                size.rows += 1
                size.bytes += len(data)
                size.first_sec = second if size.first_sec is None else min(size.first_sec, second)
                size.last_sec = second if size.last_sec is None else max(size.last_sec, second)
        self.pending = {}
        self.db.delete_metric_samples_at(again)
        self.db.add_metric_samples(rows)
        self.stats["samples_stored"] += len(rows)
        if self.pending_dropped:
            self.db.add_metric_dropped(dict(self.pending_dropped))
            self.stats["samples_dropped"] += sum(self.pending_dropped.values())
            self.pending_dropped.clear()

    def _sizes(self):
        if self.sizes is None:
            self.sizes = {r["job_id"]: _JobSize(r["n_rows"], r["n_bytes"] or 0, r["first_sec"],
                                                r["last_sec"]) for r in self.db.metric_sizes()}
        return self.sizes

    # -- the background work ----------------------------------------------------------------------
    def start(self, loop):
        """Flush every FLUSH_INTERVAL and downsample every COMPACT_INTERVAL, on ``loop``."""
        self.task = loop.create_task(self.run())

    async def run(self):
        """The store's background loop (see :meth:`start`)."""
        next_compaction = time.monotonic() + COMPACT_INTERVAL
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
                if time.monotonic() >= next_compaction:
                    next_compaction = time.monotonic() + COMPACT_INTERVAL
                    self._forget_ended()
                    for job_id in list(self._sizes()):
                        for _ in self.compact(job_id):
                            await asyncio.sleep(0)       # daemons and requests get their turn
            except Exception:
                log.exception("metrics store: writing or downsampling failed; going on")

    def _forget_ended(self):
        """Drop what is kept in memory of jobs ended more than RECENT seconds ago."""
        for job_id in set(self.latest) | {job for job, _ in self.up} | {job for job, _ in self.written}:
            job = self.db.job(job_id)
            if job is None or (job["state"] in m.JOB_FINAL and
                               (job["ended_at"] or 0) < self.clock() - RECENT):
                self.latest.pop(job_id, None)
                self.events.pop(job_id, None)
                for key in [k for k in self.up if k[0] == job_id]:
                    del self.up[key]
                for key in [k for k in self.written if k[0] == job_id]:
                    del self.written[key]

    # -- downsampling and retention ----------------------------------------------------------
    def compact(self, job_id):
        """Downsample one job by the tiers, then thin it under its caps. A generator: each step
        (at most CHUNK_ROWS rows) yields, so the caller can let other work run in between."""
        size = self._sizes().get(job_id)
        if size is None or size.first_sec is None:
            return
        now = self.clock()
        for age, res in self.tiers:
            end = min(int(now - age) // res * res, (size.last_sec // res + 1) * res)
            start = size.compacted.get(res, size.first_sec // res * res)
            yield from self._thin_range(job_id, size, start, end, res)
            size.compacted[res] = max(start, end)
        passes = 0
        while (size.rows > self.max_rows or size.bytes > self.max_bytes) and passes < 8:
            passes += 1
            yield from self._retention_pass(job_id, size)
            if size.rows <= 0.75 * self.max_rows and size.bytes <= 0.75 * self.max_bytes:
                break

    def _retention_pass(self, job_id, size):
        """Thin all of a job's samples to the resolution that brings it to half its caps."""
        nodes = max(1, len(self._latest(job_id)))
        span = size.last_sec - size.first_sec + 1
        row_bytes = max(1.0, size.bytes / max(1, size.rows))
        target = max(1.0, min(0.5 * self.max_rows, 0.5 * self.max_bytes / row_bytes))
        res = max(2, math.ceil(nodes * span / target))
        self.stats["retention_passes"] += 1
        log.info("metrics of job %s over their cap (%d rows, %d bytes): thinned to one sample "
                 "per %d s per node", job_id, size.rows, size.bytes, res)
        yield from self._thin_range(job_id, size, size.first_sec // res * res,
                                    size.last_sec + 1, res)
        if nodes >= target:
            # More nodes than the cap holds samples: only the newest samples can stay.
            yield from self._drop_oldest(job_id, size, size.first_sec + span // 2)

    def _thin_range(self, job_id, size, start, end, res):
        """Keep the newest sample per node per ``res`` seconds among ``start <= sec < end``."""
        nodes = max(1, len(self.latest.get(job_id, ())) or 1)
        step = max(res, (CHUNK_ROWS // nodes) // res * res)
        while start < end:
            stop = min(end, start + step)
            rows = self.db.metric_sample_keys(job_id, start, stop)
            newest = {}
            for r in rows:                       # arrival order: a node's newest comes last
                newest[(r["node"], r["sec"] // res)] = r
            kept = {r["id"] for r in newest.values()}
            delete = [r for r in rows if r["id"] not in kept]
            coarser = [r["id"] for r in newest.values() if r["res"] < res]
            if delete or coarser:
                self.db.thin_metric_samples([r["id"] for r in delete], coarser, res)
                size.rows -= len(delete)
                size.bytes -= sum(r["size"] for r in delete)
                self.stats["samples_thinned"] += len(delete)
            start = stop
            yield

    def _drop_oldest(self, job_id, size, end):
        rows = self.db.metric_sample_keys(job_id, size.first_sec, end)
        self.db.thin_metric_samples([r["id"] for r in rows], [], 0)
        size.rows -= len(rows)
        size.bytes -= sum(r["size"] for r in rows)
        size.first_sec = end
        self.stats["samples_expired"] += len(rows)
        yield

    # -- reading ------------------------------------------------------------------------------
    def run_data(self, job_id, started, since=None):
        """The samples, events and lost-sample count of a job for its run-data document:
        ``{"samples", "events", "dropped": {"samples", "logs"}}``, times in seconds since
        ``started`` (unix time); a sample's time is the whole second it was taken in. With
        ``since``: only the samples *stored* after ``started + since`` (a live page asking for
        what is new never misses a sample that arrived late) and the events after ``since``."""
        received_after = None if since is None else started + since
        rows = self.db.metric_samples(job_id, received_after=received_after)
        if since is None and len(rows) > MAX_DOCUMENT_SAMPLES:
            rows = self._fewer(rows)
        samples = []
        for r in rows:
            sample = json.loads(r["data"])
            # The whole second of the sample: the nodes' samples of one second line up (a plot
            # sums them per time), whatever the phase of each node's sampler.
            sample["t"] = round(r["sec"] - started, 6)
            sample["node"] = r["node"]
            samples.append(sample)
        events = [{"t": round(e["t"] - started, 6), "kind": e["kind"], "node": e["node"],
                   "detail": e["detail"]} for e in self.db.metric_events(job_id)]
        if since is not None:
            events = [e for e in events if e["t"] > since]
        dropped = self.db.metric_dropped(job_id) + self.pending_dropped.get(job_id, 0)
        return {"samples": samples, "events": events, "dropped": {"samples": dropped, "logs": 0}}

    @staticmethod
    def _fewer(rows):
        """At most about MAX_DOCUMENT_SAMPLES of ``rows``: the newest per node per bucket."""
        span = max(1.0, rows[-1]["t"] - rows[0]["t"])
        nodes = len({r["node"] for r in rows})
        res = max(1.0, span * nodes / MAX_DOCUMENT_SAMPLES)
        newest = {}
        for r in rows:
            newest[(r["node"], int(r["t"] // res))] = r
        return sorted(newest.values(), key=lambda r: (r["t"], r["id"]))

    def prometheus_view(self):
        """Per job active or ended less than RECENT seconds ago: its nodes by state and each
        node's newest sample, for :func:`splay.observatory.prometheus.families`; plus the
        store's own figures."""
        now = self.clock()
        jobs = []
        for job in self.db.jobs():
            if job["state"] in m.JOB_FINAL and (job["ended_at"] or 0) < now - RECENT:
                continue
            states = collections.Counter(m.shown_state(i) for i in self.db.instances(job["id"])
                                         if i["position"] is not None)
            jobs.append({"job": str(job["id"]), "nodes": dict(states),
                         "latest": self._latest(job["id"])})
        figures = [
            ("splay_controller_metric_samples_stored", "counter",
             "node samples written to the metrics store", self.stats["samples_stored"]),
            ("splay_controller_metric_samples_dropped", "counter",
             "node samples lost on the way (nodes, daemons, refused batches)",
             self.stats["samples_dropped"] + sum(self.pending_dropped.values())),
            ("splay_controller_metric_samples_thinned", "counter",
             "stored samples removed by downsampling and retention",
             self.stats["samples_thinned"] + self.stats["samples_expired"]),
            ("splay_controller_metric_batches_refused", "counter",
             "metrics messages refused (malformed or oversized)", self.stats["batches_refused"]),
            ("splay_controller_metric_events_dropped", "counter",
             "node events not kept (a job over its event cap)", self.stats["events_dropped"]),
        ]
        return {"controller": figures, "jobs": jobs}

    def _latest(self, job_id):
        newest = self.latest.get(job_id)
        if newest is None:        # a job of before a restart: its newest samples are stored
            newest = self.latest[job_id] = {
                r["node"]: (r["t"], json.loads(r["data"]))
                for r in self.db.latest_metric_samples(job_id)}
        return [sample for _, sample in newest.values()]

"""The controller's checks of the ``metrics`` messages daemons send (see daemon_metrics.py).

A message is taken whole or refused whole. It is refused, with the reason logged and sent back
to the daemon as an ``error`` message, when it is malformed (not ``{"samples": [[instance_id,
sample], ...], "dropped": {instance_id: n}, "cut": {instance_id: reason}}``, a sample that is not a valid run-data sample), too
big (more than :data:`MAX_SAMPLES_PER_MESSAGE` samples, a sample over :data:`MAX_SAMPLE_BYTES`),
or names an instance the daemon does not run. After :data:`MAX_REFUSALS` refused messages the
daemon's metrics are cut off until it reconnects: its later ``metrics`` messages are ignored
(counted as dropped), while its jobs, logs and everything else go on as usual.

Accepted samples go to the :class:`~.metrics_store.MetricsStore`, on the controller's clock
(the daemon's clock offset, measured by ping/pong, is taken off their time).
"""
import json
import logging
import math
import time

from splay.observatory import rundata

log = logging.getLogger("splay.controller")

MAX_SAMPLES_PER_MESSAGE = 5000
"""Samples one ``metrics`` message may carry (a daemon sends at most 1000)."""

MAX_SAMPLE_BYTES = 256 * 1024
"""JSON bytes one sample may take (RPC functions and application metrics included)."""

MAX_PLACEMENTS = 500_000
"""Instances whose job and position are cached (the cache starts afresh beyond)."""

MAX_REFUSALS = 3
"""Refused messages after which a daemon's metrics are cut off until it reconnects."""

TIME_SLACK = 300.0
"""Seconds a sample's time may be ahead of the controller's clock (after the offset correction)."""


class Refused(Exception):
    """A metrics message that is not taken: the message says why."""


class MetricsIngest:
    """Checks daemons' ``metrics`` messages and hands their samples to ``store``."""

    def __init__(self, store, db):
        self.store = store
        self.db = db
        self.placement = {}        # instance id -> (job id, position, daemon id)
        self.refusals = {}         # daemon session -> refused messages
        self.cut_off = set()       # sessions whose metrics are ignored

    def receive(self, session, message):
        """Take one ``metrics`` message of ``session`` (a DaemonSession), or refuse it."""
        if session in self.cut_off:
            self._count_dropped(session, message)
            return
        try:
            accepted, dropped, cut = self.check(session, message)
        except Refused as e:
            self.refuse(session, str(e))
            return
        for job_id, node, t, sample, data in accepted:
            self.store.add(job_id, node, t, sample, data)
        for job_id, count in dropped.items():
            self.store.add_dropped(job_id, count)
        for instance_id, reason in cut.items():
            self.store.node_events([instance_id], "fault", f"metrics cut off: {reason}")

    def check(self, session, message):
        """``([(job, node, t, sample, data)], {job: dropped}, {instance: why cut off})`` of a
        message; Refused says what is wrong with it."""
        samples, dropped = message.get("samples"), message.get("dropped", {})
        cut = message.get("cut", {})
        if not isinstance(samples, list) or not isinstance(dropped, dict) or \
                not isinstance(cut, dict):
            raise Refused('not {"samples": [[instance_id, sample], ...], "dropped": {...}}')
        if len(samples) > MAX_SAMPLES_PER_MESSAGE:
            raise Refused(f"{len(samples)} samples in one message (at most "
                          f"{MAX_SAMPLES_PER_MESSAGE})")
        latest = time.time() + TIME_SLACK
        accepted = []
        for entry in samples:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
                raise Refused("a sample entry that is not [instance_id, sample]: "
                              f"{str(entry)[:80]}")
            sample = dict(entry[1])
            ts = sample.pop("ts", None)
            if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
                raise Refused(f"a sample of instance {entry[0]} without its time 'ts'")
            data = json.dumps(sample, separators=(",", ":"))
            if len(data) > MAX_SAMPLE_BYTES:
                raise Refused(f"a sample of instance {entry[0]} of {len(data)} bytes (at most "
                              f"{MAX_SAMPLE_BYTES})")
            job_id, node = self.place(session, entry[0])
            t = ts - session.offset
            if t > latest:
                raise Refused(f"a sample of instance {entry[0]} from the future "
                              f"({t - time.time():.0f} s ahead)")
            sample["t"], sample["node"] = 0.0, node
            try:
                rundata.validate_sample(sample, f"sample of instance {entry[0]}")
            except ValueError as e:
                raise Refused(str(e)) from None
            del sample["t"], sample["node"]
            accepted.append((job_id, node, t, sample, data))
        lost = {}
        for instance_id, count in dropped.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise Refused(f"dropped count {count!r} of instance {instance_id} is not a "
                              "non-negative integer")
            job_id, _ = self.place(session, instance_id)
            lost[job_id] = lost.get(job_id, 0) + count
        reasons = {}
        for instance_id, reason in cut.items():
            if not isinstance(reason, str):
                raise Refused(f"the reason instance {instance_id} was cut off is not a string")
            self.place(session, instance_id)
            reasons[int(instance_id)] = reason[:200]
        return accepted, lost, reasons

    def place(self, session, instance_id):
        """(job id, position) of an instance of ``session``'s daemon; Refused otherwise."""
        try:
            key = int(instance_id)
        except (TypeError, ValueError):
            raise Refused(f"instance id {str(instance_id)[:40]!r} is not a number") from None
        placement = self.placement.get(key)
        if placement is None:
            row = self.db.instance(key)
            if row is None or row["position"] is None:
                raise Refused(f"samples of instance {key}, which is not a started node")
            if len(self.placement) >= MAX_PLACEMENTS:
                self.placement.clear()
            placement = self.placement[key] = (row["job_id"], row["position"], row["daemon_id"])
        if placement[2] != session.id:
            raise Refused(f"samples of instance {key}, which runs on another daemon")
        return placement[0], placement[1]

    def refuse(self, session, reason):
        """Log and answer a refused message; cut the daemon's metrics off after MAX_REFUSALS."""
        self.store.stats["batches_refused"] += 1
        count = self.refusals[session] = self.refusals.get(session, 0) + 1
        log.warning("daemon %s: metrics message refused: %s", session.name, reason)
        answer = f"metrics message refused: {reason}"
        if count >= MAX_REFUSALS:
            self.cut_off.add(session)
            log.warning("daemon %s: metrics cut off after %d refused messages, until it "
                        "reconnects", session.name, count)
            answer += f"; metrics of this daemon ignored until it reconnects ({count} refused)"
        session.channel.send_nowait({"type": "error", "reason": answer})

    def _count_dropped(self, session, message):
        """A cut-off daemon's samples count as dropped for the jobs they name (when known)."""
        samples = message.get("samples")
        if not isinstance(samples, list):
            return
        for entry in samples[:MAX_SAMPLES_PER_MESSAGE]:
            try:
                job_id, _ = self.place(session, entry[0])
            except (Refused, TypeError, IndexError, KeyError):
                continue
            self.store.add_dropped(job_id, 1)

    def disconnected(self, session):
        """Forget a session's refusals (a reconnected daemon starts afresh)."""
        self.refusals.pop(session, None)
        self.cut_off.discard(session)

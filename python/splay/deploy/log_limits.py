"""Output limits at the daemon: one job cannot flood the controller or fill its database.

Every output line of an instance passes :meth:`LogLimiter.admit` before it is queued for the
controller. Four limits, from ``splayd``'s options (:class:`splay.deploy.job_limits.Limits`):

* ``log_node_bytes``: bytes forwarded per instance in all (default 10 MiB);
* ``log_job_bytes``: bytes forwarded per job from this daemon in all (default 100 MiB);
* ``log_node_rate``: bytes per second per instance, as a token bucket holding up to
  :data:`BURST_SECONDS` seconds of it (default 1 MiB/s);
* ``log_job_rate``: bytes per second per job from this daemon, the same way (default 4 MiB/s).

A line past a limit is dropped and counted. The count reaches the controller as a marker line
on the stream ``"splay"``, e.g. ``[splay] node 3: 12345 lines dropped (log limit 10 MiB per
node)``: when a rate-limited node's next line gets through, when a node first reaches a total
limit (``log limit reached ...``), and when the node ends. The controller adds up the counts of
the markers on the job (``log_lines_dropped`` in the API, ``splay job``). Markers are not
counted against the limits; there is at most one per forwarded line plus two per node.
"""
import re
import time

__all__ = ["LogLimiter", "MARKER_STREAM", "dropped_in_marker", "BURST_SECONDS"]

MARKER_STREAM = "splay"
BURST_SECONDS = 4.0
_DROPPED = re.compile(r"^\[splay\] node \S+: (\d+) lines dropped ")


def dropped_in_marker(stream, text):
    """How many dropped lines a marker line reports (0 for any other line)."""
    if stream != MARKER_STREAM:
        return 0
    match = _DROPPED.match(text)
    return int(match.group(1)) if match else 0


def _size(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % (scale // 16) == 0:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


class _NodeLog:
    """The output accounting of one instance."""
    __slots__ = ("name", "bytes", "tokens", "last", "pending", "reason", "full")

    def __init__(self, name, tokens, now):
        self.name = name
        self.bytes = 0
        self.tokens = tokens
        self.last = now
        self.pending = 0          # lines dropped since the last marker
        self.reason = None        # the limit that dropped them
        self.full = False         # a total limit was reached: every later line is dropped


class LogLimiter:
    """Per-instance and per-job output limits (see the module docstring). ``None`` disables a
    limit. ``clock``: seconds, monotonic (tests may pass their own)."""

    def __init__(self, node_bytes=None, job_bytes=None, node_rate=None, job_rate=None,
                 clock=time.monotonic):
        self.node_bytes = node_bytes
        self.job_bytes = job_bytes
        self.node_rate = node_rate
        self.job_rate = job_rate
        self.burst = None if node_rate is None else node_rate * BURST_SECONDS
        self.clock = clock
        self.nodes = {}            # instance id -> _NodeLog
        self.jobs = {}             # job ref -> bytes forwarded
        self.job_buckets = {}      # job ref -> [tokens, last refill] of log_job_rate

    def _node(self, instance_id, name):
        node = self.nodes.get(instance_id)
        if node is None:
            node = self.nodes[instance_id] = _NodeLog(name, self.burst, self.clock())
        return node

    def _marker(self, node):
        text = f"[splay] node {node.name}: {node.pending} lines dropped ({node.reason})"
        node.pending = 0
        return text

    def admit(self, instance_id, name, job_ref, size):
        """May a line of ``size`` bytes of instance ``instance_id`` (shown as node ``name``) of
        job ``job_ref`` go to the controller? Returns ``(admitted, markers)``: the marker lines
        to forward before it (possibly none)."""
        node = self._node(instance_id, name)
        markers = []
        if node.full:
            node.pending += 1
            return False, markers
        job_total = self.jobs.get(job_ref, 0)
        total = None
        if self.node_bytes is not None and node.bytes + size > self.node_bytes:
            total = f"log limit {_size(self.node_bytes)} per node"
        elif self.job_bytes is not None and job_total + size > self.job_bytes:
            total = f"log limit {_size(self.job_bytes)} per job on this daemon"
        if total is not None:
            if node.pending:
                markers.append(self._marker(node))
            node.full, node.reason, node.pending = True, total, 1
            markers.append(f"[splay] node {name}: {total} reached: its further lines are "
                           f"dropped and counted")
            return False, markers
        now = self.clock()
        if self.node_rate is not None:
            node.tokens = min(self.burst, node.tokens + (now - node.last) * self.node_rate)
            node.last = now
            if node.tokens < size:
                node.pending += 1
                node.reason = f"log rate limit {_size(self.node_rate)}/s per node"
                return False, markers
        if self.job_rate is not None:
            bucket = self.job_buckets.setdefault(job_ref, [self.job_rate * BURST_SECONDS, now])
            bucket[0] = min(self.job_rate * BURST_SECONDS, bucket[0] + (now - bucket[1]) * self.job_rate)
            bucket[1] = now
            if bucket[0] < size:
                node.pending += 1
                node.reason = f"log rate limit {_size(self.job_rate)}/s per job on this daemon"
                return False, markers
            bucket[0] -= size
        if self.node_rate is not None:
            node.tokens -= size
        if node.pending:
            markers.append(self._marker(node))
        node.bytes += size
        self.jobs[job_ref] = job_total + size
        return True, markers

    def end(self, instance_id):
        """The instance's output ended: the marker of its lines dropped since the last one, or
        None. Its accounting is kept (a churned instance's next life goes on counting)."""
        node = self.nodes.get(instance_id)
        if node is None or not node.pending:
            return None
        return self._marker(node)

    def forget_job(self, job_ref, instance_ids):
        """Drop the accounting of a job that ended here."""
        self.jobs.pop(job_ref, None)
        self.job_buckets.pop(job_ref, None)
        for instance_id in instance_ids:
            self.nodes.pop(instance_id, None)

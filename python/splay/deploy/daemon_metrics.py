"""The daemon's side of a deployed job's metrics: read each node's metrics pipe, ship batches.

Every node process the daemon starts gets a pipe named by ``SPLAY_METRICS_FD`` (as ``splay run``
does, see :mod:`splay.observatory.sampler`): the node writes one JSON line
``{"samples": [...], "dropped": n}`` per sampling interval. :class:`MetricsRelay` reads the pipes
from the daemon's event loop (non-blocking, never waiting on a node), keeps the samples in one
bounded buffer, and every :data:`SHIP_INTERVAL` seconds sends them to the controller as
``metrics`` messages (see :mod:`.protocol`)::

    {"type": "metrics", "samples": [[instance_id, sample], ...], "dropped": {instance_id: n},
     "cut": {instance_id: reason}}

``dropped`` counts, per instance, the samples lost since the previous message: those its node
process reported dropping (its pipe was full) and those this daemon dropped (its buffer was full:
the controller away or slow). Metrics are lossy by design -- a node, the daemon
and the controller never wait for them.

A node whose pipe carries garbage (not a batch, a line longer than :data:`MAX_LINE_BYTES`) is
cut off: its pipe is closed (the node's sampler then drops its samples silently), the reason is
logged and sent in the next message's ``cut`` (the controller marks it as a ``fault`` event on the
job's timeline).
"""
import asyncio
import collections
import json
import logging
import os

log = logging.getLogger("splay.daemon")

SHIP_INTERVAL = 1.0
"""Seconds between two metrics messages to the controller."""

MAX_BUFFERED_SAMPLES = 100_000
"""Samples kept while the controller is away or slow; older ones are dropped (and counted)."""

SAMPLES_PER_MESSAGE = 1000
"""Samples in one ``metrics`` message at most (a long backlog goes in several)."""

MAX_LINE_BYTES = 1024 * 1024
"""Longest batch line a node may write; a longer one cuts the node's metrics off."""

READ_SIZE = 65536
END_WAIT = 3.0
"""Seconds an ended node's pipe may stay open (a child holding it) before the daemon closes it."""


class _Pipe:
    """The read end of one node process's metrics pipe."""

    def __init__(self, instance_id, fd):
        self.instance_id = instance_id
        self.fd = fd
        self.partial = bytearray()
        self.closed = asyncio.get_running_loop().create_future()


class MetricsRelay:
    """Reads the metrics pipes of a daemon's nodes and ships their samples (module docstring)."""

    def __init__(self, capacity=MAX_BUFFERED_SAMPLES):
        self.samples = collections.deque(maxlen=capacity)
        self.capacity = capacity
        self.node_dropped = {}         # instance id -> what its process last reported dropping
        self.dropped = collections.Counter()   # instance id -> samples lost since the last message
        self.cut_off = 0               # nodes cut off since the daemon started
        self.cut = {}                  # instance id -> why it was cut off, not yet sent
        self.pipes = {}                # fd -> _Pipe

    def open(self, instance_id):
        """A new pipe for a node process of ``instance_id``: returns the write end, to pass to
        the process as ``SPLAY_METRICS_FD``; the caller closes it once the process is started
        (or failed to start: the read end then sees its end at once and closes itself)."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)
        pipe = _Pipe(instance_id, read_end)
        self.pipes[read_end] = pipe
        asyncio.get_running_loop().add_reader(read_end, self._readable, pipe)
        # A process reports its own drops counting from 0.
        self.node_dropped.pop(instance_id, None)
        return write_end

    async def ended(self, instance_id, timeout=END_WAIT):
        """Wait until the metrics pipes of ``instance_id`` are read to their end (its last
        samples are then buffered), at most ``timeout`` seconds."""
        waits = [p.closed for p in self.pipes.values() if p.instance_id == instance_id]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
            for pipe in [p for p in self.pipes.values() if p.instance_id == instance_id]:
                self._close(pipe)
        self.node_dropped.pop(instance_id, None)

    def _readable(self, pipe):
        try:
            data = os.read(pipe.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(pipe)
            return
        pipe.partial += data
        while True:
            nl = pipe.partial.find(b"\n")
            if nl < 0:
                if len(pipe.partial) > MAX_LINE_BYTES:
                    self._cut(pipe, f"a metrics line longer than {MAX_LINE_BYTES} bytes")
                return
            line = bytes(pipe.partial[:nl])
            del pipe.partial[:nl + 1]
            reason = self._batch(pipe.instance_id, line)
            if reason is not None:
                self._cut(pipe, reason)
                return

    def _batch(self, instance_id, line):
        """Buffer the samples of one batch line; the reason it is refused, or None."""
        if len(line) > MAX_LINE_BYTES:
            return f"a metrics line longer than {MAX_LINE_BYTES} bytes"
        try:
            batch = json.loads(line)
        except ValueError:
            return f"a metrics line that is not JSON ({line[:60]!r})"
        if not isinstance(batch, dict) or not isinstance(batch.get("samples"), list) or \
                isinstance(batch.get("dropped"), bool) or not isinstance(batch.get("dropped"), int):
            return 'a metrics line that is not {"samples": [...], "dropped": n}'
        if not all(isinstance(s, dict) for s in batch["samples"]):
            return "a sample that is not a JSON object"
        before = self.node_dropped.get(instance_id, 0)
        self.node_dropped[instance_id] = batch["dropped"]
        if batch["dropped"] > before:
            self.dropped[instance_id] += batch["dropped"] - before
        for sample in batch["samples"]:
            if len(self.samples) == self.capacity:
                self.dropped[self.samples[0][0]] += 1      # the deque drops its oldest sample
            self.samples.append((instance_id, sample))
        return None

    def _cut(self, pipe, reason):
        self.cut_off += 1
        self.node_dropped.pop(pipe.instance_id, None)
        self.cut[pipe.instance_id] = f"it sent {reason}"
        log.warning("instance %s: metrics cut off: it sent %s", pipe.instance_id, reason)
        self._close(pipe)

    def _close(self, pipe):
        if self.pipes.pop(pipe.fd, None) is None:
            return
        asyncio.get_running_loop().remove_reader(pipe.fd)
        os.close(pipe.fd)
        if not pipe.closed.done():
            pipe.closed.set_result(None)

    def messages(self):
        """The buffered samples as ``metrics`` messages (emptying the buffer); [] when there is
        nothing to say."""
        out = []
        while self.samples or self.dropped or self.cut:
            chunk = [self.samples.popleft()
                     for _ in range(min(SAMPLES_PER_MESSAGE, len(self.samples)))]
            message = {"type": "metrics", "samples": [[i, s] for i, s in chunk],
                       "dropped": {str(i): n for i, n in self.dropped.items()}}
            if self.cut:
                message["cut"] = {str(i): why for i, why in self.cut.items()}
            out.append(message)
            self.dropped.clear()
            self.cut.clear()
        return out

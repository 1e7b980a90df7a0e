"""The node side of the metrics pipeline: sample the nodes of this process, ship the samples.

A :class:`Sampler` runs in its own OS thread (so that it never keeps a node's event loop alive and
never waits for a node's threads): every ``interval`` seconds it takes one cumulative sample per
node of the process -- RPC counters (:mod:`splayc.rpcstats`), bytes sent and received (the node's
:class:`splayc.accounting.NetPolicy`), live threads, RSS, CPU, application metrics
(:mod:`splay.metrics`) -- and writes them as one JSON line ``{"samples": [...], "dropped": n}``
to the metrics pipe the launcher or daemon gave the process (``SPLAY_METRICS_FD``).

The pipe is non-blocking and what cannot be written waits in a bounded buffer
(:data:`BUFFER_BYTES`): when the collector is slow or gone, samples are dropped and counted
(``dropped``), and the node goes on at full speed.
"""
import json
import os
import threading
import time

from splay.pacing import wait_after
from splayc import rpcstats
from splayc.accounting import NetPolicy, default_policy, install_default, policy_of

METRICS_FD_ENV = "SPLAY_METRICS_FD"
"""The environment variable naming the write end of the metrics pipe of a node process."""

INTERVAL_ENV = "SPLAY_METRICS_INTERVAL"
"""The environment variable giving the sampling interval in seconds (default 1)."""

SAMPLING_SHARE = 0.05
"""The largest share of the process's time its sampler takes: a round over N nodes holds the
interpreter for 25-50 us per node (seconds for 100,000 simulated nodes), and the next round waits
until that is at most this share of the time since the last one began (about a minute between
rounds at 100,000 nodes) instead of taking the interpreter from the nodes half of the time."""

BUFFER_BYTES = 256 * 1024
LINE_BYTES = 32 * 1024          # a line of samples is cut near this size (ship)
"""Bytes of unsent batches a process keeps before it drops new samples."""

_PAGE = os.sysconf("SC_PAGE_SIZE")
_statm = None        # /proc/self/statm, opened once before any sandbox closes /proc


def attach(node):
    """Give ``node`` (an ``--in-process`` node object, or None for the process's node) its own
    RPC counters and application metrics, and a counting socket policy when it has none."""
    from splay.metrics import Registry
    if node is None:
        if default_policy() is None:
            install_default(NetPolicy())      # unlimited: it only counts bytes
        return
    node.rpc_stats = rpcstats.RpcStats()
    node.app_metrics = Registry()
    if getattr(node, "net_policy", None) is None:
        node.net_policy = NetPolicy()


def _rss_and_cpu():
    try:
        rss = int(os.pread(_statm, 256, 0).split()[1]) * _PAGE
    except (OSError, TypeError, ValueError, IndexError):
        rss = 0
    t = os.times()
    return rss, t.user + t.system


def sample(index, node, threads, share=1, usage=None):
    """One cumulative sample of ``node`` (None: the process's node) as node ``index``.

    ``threads`` is its number of live threads; ``share`` the number of nodes sharing the process,
    whose RSS and CPU are divided among them; ``usage`` the process's ``(rss, cpu)`` if already
    read (one read per round serves all the nodes of the process).
    """
    from splay import metrics
    rss, cpu = usage or _rss_and_cpu()
    policy = policy_of(node) if node is not None else default_policy()
    sent, received = policy.stats()[:2] if policy is not None else (0, 0)
    return {"ts": time.time(), "node": index, "rpc": rpcstats.stats_of(node).snapshot(),
            "bytes_sent": sent, "bytes_received": received, "threads": threads,
            "rss": rss // share, "cpu": cpu / share,
            "app": metrics.registry(node if node is not None else _PROCESS).snapshot()}


class _ProcessNode:
    """Stands for the process's node when asking :func:`splay.metrics.registry` for it."""
    app_metrics = None


_PROCESS = _ProcessNode()


def next_wait(interval, took):
    """Seconds to wait after a sampling round that took ``took`` seconds: ``interval``, or longer
    so that the rounds take at most :data:`SAMPLING_SHARE` of the time."""
    return wait_after(took, SAMPLING_SHARE, at_least=interval)


class BatchWriter:
    """Writes lines to a non-blocking pipe; keeps at most ``capacity`` bytes waiting, drops more."""

    def __init__(self, fd, capacity=BUFFER_BYTES):
        self.fd = fd
        self.capacity = capacity
        self.pending = bytearray()
        self.closed = False
        os.set_blocking(fd, False)

    def offer(self, line):
        """Queue ``line`` (bytes) unless the buffer is full or the reader gone; False if dropped."""
        if self.closed or len(self.pending) + len(line) > self.capacity:
            self.flush()
            return False
        self.pending += line
        self.flush()
        return True

    def flush(self):
        """Write what the pipe accepts now; never waits."""
        while self.pending and not self.closed:
            try:
                n = os.write(self.fd, self.pending)
            except BlockingIOError:
                return
            except (BrokenPipeError, OSError):
                self.closed = True             # the collector is gone: drop from now on
                self.pending.clear()
                return
            del self.pending[:n]

    def drain(self, timeout):
        """Try to write everything for up to ``timeout`` seconds (at the process's end)."""
        end = time.monotonic() + timeout
        self.flush()
        while self.pending and not self.closed and time.monotonic() < end:
            time.sleep(0.01)
            self.flush()


class Sampler:
    """Samples ``nodes()`` (``[(index, node object or None)]``) every ``interval`` s into ``fd``."""

    def __init__(self, fd, interval, nodes, hub):
        self.writer = BatchWriter(fd)
        self.interval = interval
        self.nodes = nodes
        self.hub = hub
        self.dropped = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="splay-metrics", daemon=True)

    def start(self):
        """Start sampling in the background."""
        self._thread.start()
        return self

    def _loop(self):
        wait = self.interval
        while not self._stop.wait(wait):
            began = time.monotonic()
            self.ship()
            wait = next_wait(self.interval, time.monotonic() - began)

    def ship(self, nodes=None, deadline=None):
        """Take one sample of each node (or of ``nodes``) and queue them, in lines of about
        LINE_BYTES: a process of many nodes (--in-process, --sim) would otherwise make one line
        larger than the writer's buffer, dropped whole every time. With ``deadline`` (a
        ``time.monotonic()`` value: the last sample), wait for the reader until then rather than
        drop."""
        with self._lock:
            nodes = self.nodes() if nodes is None else nodes
            threads = rpcstats.threads_by_node(self.hub)
            share, usage = max(1, len(nodes)), _rss_and_cpu()
            encoded = [json.dumps(sample(i, n, threads.get(n, 0), share, usage),
                                  separators=(",", ":")).encode() for i, n in nodes]
            start = 0
            while start < len(encoded):
                end, size = start, 0
                while end < len(encoded) and (end == start or size + len(encoded[end]) < LINE_BYTES):
                    size += len(encoded[end]) + 1
                    end += 1
                line = b'{"samples":[' + b",".join(encoded[start:end]) + \
                    b'],"dropped":' + str(self.dropped).encode() + b"}\n"
                if not self.writer.offer(line) and not (
                        deadline is not None and self._offer_by(line, deadline)):
                    self.dropped += end - start
                start = end

    def _offer_by(self, line, deadline):
        """Offer ``line`` again while the reader empties the pipe, until ``deadline``."""
        self.writer.drain(max(0.0, deadline - time.monotonic()))
        return self.writer.offer(line)

    def stop(self, timeout=2.0):
        """Stop the thread, ship a last sample and wait up to ``timeout`` s for it to be read."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.ship(deadline=deadline)
        self.writer.drain(max(0.0, deadline - time.monotonic()))


def from_environment(nodes, environ=os.environ):
    """A started :class:`Sampler` when the launcher or daemon gave this process a metrics pipe
    (``SPLAY_METRICS_FD``), else None."""
    global _statm
    fd = environ.get(METRICS_FD_ENV)
    if not fd:
        return None
    if _statm is None:
        try:
            _statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            _statm = -1
    from splayc import hub
    interval = float(environ.get(INTERVAL_ENV) or 1.0)
    return Sampler(int(fd), interval, nodes, hub.hub()).start()

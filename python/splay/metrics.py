"""Application metrics: an application reports its own figures next to the RPC counters.

The prometheus_client vocabulary::

    from splay import metrics
    lookups = metrics.counter("lookups")          # only goes up
    view = metrics.gauge("view_size")             # goes up and down
    hops = metrics.histogram("hops", buckets=[1, 2, 4, 8, 16])
    lookups.inc(); view.set(len(neighbours)); hops.observe(3)

Each node has its own metrics (``--in-process`` nodes too); the observatory samples them with the
node's RPC counters into the run's samples (``"app"``), and Prometheus shows them as
``splay_app_<name>``. Asking twice for the same name returns the same metric; asking for it as
another kind raises ValueError. Names are ``[a-zA-Z_][a-zA-Z0-9_]*``, at most 100 characters;
values are finite numbers. Mistakes raise ValueError or TypeError at the call, saying what to do.
"""
import bisect
import math
import re

from splay.observatory.buckets import LATENCY_BOUNDS

__all__ = ["counter", "gauge", "histogram", "Counter", "Gauge", "Histogram", "Registry",
           "registry"]

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
MAX_NAME = 100
"""Longest accepted metric name."""


def check_name(name):
    """``name`` if it is a valid metric name, else ValueError saying what a name must be."""
    if not isinstance(name, str):
        raise TypeError(f"a metric name is a string, not {type(name).__name__} ({name!r:.60})")
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise ValueError(f"invalid metric name {name!r:.120}: use letters, digits and '_' "
                         f"(not starting with a digit), at most {MAX_NAME} characters, "
                         "e.g. 'lookup_hops'")
    return name


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__} ({value!r:.60})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value}")
    return value


class Counter:
    """A value that only goes up (calls made, messages delivered)."""
    __slots__ = ("name", "value")

    def __init__(self, name):
        self.name = name
        self.value = 0.0

    def inc(self, amount=1):
        """Add ``amount`` (default 1, never negative: a counter does not go down)."""
        amount = _number(amount, f"the increment of counter {self.name!r}")
        if amount < 0:
            raise ValueError(f"counter {self.name!r} cannot go down (inc({amount:g})); "
                             "use a gauge for a value that decreases")
        self.value += amount

    def sample(self):
        """The entry of this metric in a sample's ``"app"``."""
        return {"type": "counter", "value": self.value}


class Gauge:
    """A value that goes up and down (view size, queue length)."""
    __slots__ = ("name", "value")

    def __init__(self, name):
        self.name = name
        self.value = 0.0

    def set(self, value):
        """Set the gauge to ``value``."""
        self.value = _number(value, f"the value of gauge {self.name!r}")

    def inc(self, amount=1):
        """Add ``amount`` (default 1; may be negative)."""
        self.value += _number(amount, f"the increment of gauge {self.name!r}")

    def dec(self, amount=1):
        """Subtract ``amount`` (default 1)."""
        self.value -= _number(amount, f"the decrement of gauge {self.name!r}")

    def sample(self):
        """The entry of this metric in a sample's ``"app"``."""
        return {"type": "gauge", "value": self.value}


class Histogram:
    """Observations counted in buckets (hops per lookup, delivery delay)."""
    __slots__ = ("name", "bounds", "counts", "sum", "custom")

    def __init__(self, name, buckets=None):
        self.name = name
        self.custom = buckets is not None
        if buckets is None:
            self.bounds = LATENCY_BOUNDS
        else:
            try:
                bounds = tuple(_number(b, f"a bucket bound of histogram {name!r}") for b in buckets)
            except TypeError as e:
                raise TypeError(f"{e}; buckets is a list of numbers, e.g. [1, 2, 4, 8]") from None
            if not bounds or any(a >= b for a, b in zip(bounds, bounds[1:])):
                raise ValueError(f"the buckets of histogram {name!r} must be a non-empty list of "
                                 f"strictly increasing numbers, not {list(buckets)!r:.100}")
            self.bounds = bounds
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        """Count one observation of ``value``."""
        value = _number(value, f"an observation of histogram {self.name!r}")
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def sample(self):
        """The entry of this metric in a sample's ``"app"``."""
        out = {"type": "histogram", "counts": list(self.counts), "sum": self.sum}
        if self.custom:
            out["bounds"] = list(self.bounds)
        return out


class Registry:
    """The application metrics of one node, by name."""

    def __init__(self):
        self.metrics = {}

    def _get(self, kind, name, *args):
        # A name found was checked when its metric was made (applications ask again and again).
        m = self.metrics.get(name) if type(name) is str else None
        if m is None:
            m = self.metrics[check_name(name)] = kind(name, *args)
        elif type(m) is not kind:
            raise ValueError(f"metric {name!r} is already a {type(m).__name__.lower()}; "
                             f"pick another name for a {kind.__name__.lower()}")
        return m

    def snapshot(self):
        """``{name: entry}`` of every metric, as in a sample's ``"app"``."""
        return {name: m.sample() for name, m in self.metrics.items()}


_default = Registry()


_hub = None     # splayc.hub once a registry was asked for (an import in the call cost ~1 µs)


def registry(node=None):
    """The metrics of ``node`` (default: the running thread's node)."""
    global _hub
    if node is None:
        if _hub is None:
            from splayc import hub as _hub
        node = _hub.current_node()
    if node is None:
        return _default
    reg = getattr(node, "app_metrics", None)
    return _default if reg is None else reg


def counter(name):
    """The counter ``name`` of this node (created at 0 on first use)."""
    return registry()._get(Counter, name)


def gauge(name):
    """The gauge ``name`` of this node (created at 0 on first use)."""
    return registry()._get(Gauge, name)


def histogram(name, buckets=None):
    """The histogram ``name`` of this node; ``buckets`` are its upper bounds (default: the
    latency buckets of :mod:`splay.observatory.buckets`, 10 µs … 84 s)."""
    return registry()._get(Histogram, name, buckets)

"""The SPLAY churn trace format, and the `Schedule` it describes.

A trace has one line per node. Each line holds times in seconds from the start of the experiment,
separated by spaces or tabs; they say alternately when the node goes up and when it goes down:

    30 600 660          node 0: up at 30 s, down at 600 s, up again at 660 s and stays up
    0 120               node 1: up from the start, down for good at 120 s

Times are numbers (``12``, ``12.5``, ``1e3``), never negative, strictly increasing along a line.
A line that ends on an up time leaves its node up until the experiment ends. Text after ``#`` is a
comment; lines that are blank or only a comment define no node (pysplay extension; the original
format has neither). Nodes are numbered from 0 in the order of their lines.

A node is *up* at time ``t`` when one of its intervals ``[up, down)`` contains ``t``: it counts as
up at the very instant it goes up, and as down at the instant it goes down.
"""
import math

from .errors import TraceError

UP = "up"
DOWN = "down"


def format_time(t):
    """Format a time in seconds for a trace: an integer when whole, else up to 3 decimals."""
    if t == int(t):
        return str(int(t))
    text = f"{t:.3f}".rstrip("0").rstrip(".")
    return text


def _parse_time(token, filename, line, column):
    """One time of a trace line, or a TraceError saying why it is not one."""
    try:
        value = float(token)
    except ValueError:
        raise TraceError(f"{token!r} is not a time in seconds (expected a number such as 30 or 12.5)",
                         filename, line, column) from None
    if not math.isfinite(value):
        raise TraceError(f"{token!r} is not a finite time in seconds", filename, line, column)
    if value < 0:
        raise TraceError(f"negative time {token} (times count seconds from the start, from 0 on)",
                         filename, line, column)
    return value


def parse_trace(text, filename="<trace>"):
    """Parse the text of a churn trace into a `Schedule`; raise `TraceError` on bad input.

    The error names the line and column of the first bad time and says what is wrong with it:
    not a number, negative, or not after the time before it on the same line.
    """
    nodes = []
    for line_number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0]
        times = []
        position = 0
        for token in content.split():
            column = content.index(token, position) + 1
            position = column - 1 + len(token)
            value = _parse_time(token, filename, line_number, column)
            if times and value <= times[-1]:
                state = UP if len(times) % 2 == 0 else DOWN
                raise TraceError(
                    f"time {token} is not after the previous time {format_time(times[-1])} on this line "
                    f"(it would be a '{state}' time; times alternate up, down, up, ... and must increase)",
                    filename, line_number, column)
            times.append(value)
        if times:
            nodes.append(times)
    return Schedule(nodes)


def read_trace(path):
    """Read and parse the churn trace file at ``path`` (errors name that file)."""
    with open(path, encoding="utf-8") as f:
        return parse_trace(f.read(), filename=str(path))


class Schedule:
    """When each node of a churn experiment is up: per node, a list of up intervals.

    Build one from per-node time lists (the trace format: up, down, up, ...), with
    `parse_trace` / `read_trace`, or from a churn script (`splay.churn.lang.compile_script`).
    """

    def __init__(self, node_times=()):
        self._times = []
        for index, times in enumerate(node_times):
            times = [float(t) for t in times]
            for position, t in enumerate(times):
                if not math.isfinite(t) or t < 0:
                    raise TraceError(f"node {index}: time {t!r} is negative or not finite", line=index + 1)
                if position and t <= times[position - 1]:
                    raise TraceError(f"node {index}: time {format_time(t)} is not after "
                                     f"{format_time(times[position - 1])}", line=index + 1)
            self._times.append(tuple(times))

    @classmethod
    def from_intervals(cls, node_intervals):
        """A schedule from, per node, a list of ``(up, down)`` pairs; ``down`` None = stays up."""
        node_times = []
        for intervals in node_intervals:
            times = []
            for up, down in intervals:
                times.append(up)
                if down is not None:
                    times.append(down)
            node_times.append(times)
        return cls(node_times)

    def __len__(self):
        return len(self._times)

    def __eq__(self, other):
        return isinstance(other, Schedule) and self._times == other._times

    def __repr__(self):
        return f"<Schedule {len(self)} nodes, {sum(len(t) for t in self._times)} events, ends at {format_time(self.end_time)} s>"

    @property
    def nodes(self):
        """The number of nodes (trace lines)."""
        return len(self._times)

    @property
    def end_time(self):
        """The last time that appears in the trace (0 for an empty one)."""
        return max((times[-1] for times in self._times if times), default=0.0)

    def times(self, node):
        """The up/down times of ``node`` as in its trace line (a tuple of floats)."""
        return self._times[node]

    def intervals(self, node):
        """The up intervals of ``node``: a list of ``(up, down)``; ``down`` is None when it stays up."""
        times = self._times[node]
        return [(times[k], times[k + 1] if k + 1 < len(times) else None) for k in range(0, len(times), 2)]

    def events(self):
        """Every change, in time order: a list of ``(t, node_index, "up" | "down")``.

        At one instant, downs come before ups (so the population never overshoots), then by node.
        """
        out = []
        for node, times in enumerate(self._times):
            for position, t in enumerate(times):
                out.append((t, node, UP if position % 2 == 0 else DOWN))
        out.sort(key=lambda e: (e[0], 0 if e[2] == DOWN else 1, e[1]))
        return out

    def is_up(self, node, t):
        """True when ``node`` is up at time ``t``."""
        for up, down in self.intervals(node):
            if up <= t and (down is None or t < down):
                return True
        return False

    def alive_at(self, t):
        """The sorted indices of the nodes up at time ``t``."""
        return [node for node in range(len(self._times)) if self.is_up(node, t)]

    def population_at(self, t):
        """How many nodes are up at time ``t``."""
        return len(self.alive_at(t))

    def population_before(self, t):
        """How many nodes are up just before time ``t`` (before the changes that happen at ``t``)."""
        count = 0
        for node in range(len(self._times)):
            for up, down in self.intervals(node):
                if up < t and (down is None or t <= down):
                    count += 1
                    break
        return count

    def max_population(self):
        """The largest number of nodes up at once over the whole trace."""
        population = peak = 0
        for _, _, change in self.events():  # downs before ups at one instant: no overshoot
            population += 1 if change == UP else -1
            peak = max(peak, population)
        return peak

    def population_curve(self, step, end=None):
        """``[(t, population), ...]`` for t = 0, step, 2*step, ... up to ``end`` (default: end_time).

        The last point is always ``end`` itself, so the final population shows.
        """
        if not step > 0:
            raise ValueError(f"population_curve step must be a positive number of seconds, not {step!r}")
        end = self.end_time if end is None else end
        samples = []
        k = 0
        while k * step < end:
            samples.append(k * step)
            k += 1
        samples.append(end)
        # One sweep over the sorted events instead of a scan of every node per sample.
        events = self.events()
        points, population, position = [], 0, 0
        for t in samples:
            while position < len(events) and events[position][0] <= t:
                population += 1 if events[position][2] == UP else -1
                position += 1
            points.append((t, population))
        return points

    def to_text(self):
        """The trace text: one line per node, times separated by single spaces."""
        return "".join(" ".join(format_time(t) for t in times) + "\n" for times in self._times)

    def write(self, path):
        """Write the trace to the file at ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_text())

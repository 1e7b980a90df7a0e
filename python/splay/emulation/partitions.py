"""Partitions on a schedule: ``splay run ... --partition "0,1|2,3@5-10"``.

A partition spec names two groups of job positions and a time window, in seconds from the run's
start (the launcher's ``partition_epoch``)::

    0,1|2,3@5-10       cut nodes 0 and 1 from nodes 2 and 3 from 5 s to 10 s
    0-9|10-19@30       cut 0..9 from 10..19 from 30 s on, never healed
    4@2.5-8            cut node 4 from every other node from 2.5 s to 8 s

Positions are integers or ranges ``i-j`` (both ends included), separated by commas; without a
second group, the cut is between the first group and every other node. During the window, each
node's emulation (:mod:`splay.emulation.apply`) refuses connections and drops datagrams across the
cut, exactly as ``Emulation.cut`` does from code; at the end it is healed.

:class:`PartitionSchedule` applies a list of specs to a link model from a background thread of
the node's process (a cut only changes the model's links, which the socket layer reads at each
connect and send; the thread never touches a socket). The thread is a daemon thread: it never keeps
the node alive, and a schedule whose window has passed is applied at once when it starts (a node
that comes up in the middle of a partition is cut at once).
"""
import threading
import time

__all__ = ["PartitionSpec", "parse_partition", "PartitionSchedule", "format_positions"]


class PartitionSpec:
    """One scheduled cut: ``group_a`` | ``group_b`` (None: every other node), from ``start`` to
    ``end`` seconds (None: never healed)."""

    def __init__(self, group_a, group_b, start, end):
        if not group_a:
            raise ValueError("a partition needs at least one node in its first group")
        if group_b is not None and set(group_a) & set(group_b):
            raise ValueError(f"nodes {sorted(set(group_a) & set(group_b))} are on both sides "
                             "of the partition")
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"the partition's window {start:g}-{'' if end is None else f'{end:g}'}"
                             " must start at 0 s or later and end after it starts")
        self.group_a = tuple(sorted(group_a))
        self.group_b = None if group_b is None else tuple(sorted(group_b))
        self.start = float(start)
        self.end = None if end is None else float(end)

    def as_dict(self):
        """The spec as JSON-able job settings."""
        return {"a": list(self.group_a), "b": None if self.group_b is None else list(self.group_b),
                "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, d):
        """The spec of :meth:`as_dict`'s output (job settings)."""
        return cls(d["a"], d.get("b"), d["start"], d.get("end"))

    def highest(self):
        """The highest position the spec names."""
        return max(self.group_a + (self.group_b or ()))

    def __repr__(self):
        other = "others" if self.group_b is None else ",".join(map(str, self.group_b))
        end = "" if self.end is None else f"{self.end:g}"
        return f"<PartitionSpec {','.join(map(str, self.group_a))}|{other}@{self.start:g}-{end}>"


def format_positions(nodes):
    """Node positions as the ranges this module reads back: [0, 1, 2, 5] -> "0-2,5"."""
    parts, nodes = [], sorted(nodes)
    i = 0
    while i < len(nodes):
        j = i
        while j + 1 < len(nodes) and nodes[j + 1] == nodes[j] + 1:
            j += 1
        parts.append(str(nodes[i]) if i == j else f"{nodes[i]}-{nodes[j]}")
        i = j + 1
    return ",".join(parts)


def _positions(text, spec):
    positions = set()
    for item in text.split(","):
        item = item.strip()
        low, dash, high = item.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"partition {spec!r}: {item!r} is not a node position or a range "
                             "like 3-7") from None
        if first < 0 or last < first:
            raise ValueError(f"partition {spec!r}: bad range {item!r} (positions count from 0, "
                             "low-high)")
        positions.update(range(first, last + 1))
    return positions


def _seconds(text, spec, what):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"partition {spec!r}: {what} {text!r} is not a number of seconds") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"partition {spec!r}: {what} {text!r} is not a finite number of seconds")
    return value


def parse_partition(spec):
    """The :class:`PartitionSpec` of ``"A[|B]@START[-END]"`` (see the module docstring);
    ValueError saying what is wrong and what is expected."""
    groups, at, window = spec.partition("@")
    if not at or not groups.strip() or not window.strip():
        raise ValueError(f"partition {spec!r}: expected GROUP[|GROUP]@START[-END], for example "
                         "0,1|2,3@5-10 (seconds from the start)")
    first, bar, second = groups.partition("|")
    start_text, dash, end_text = window.strip().partition("-")
    start = _seconds(start_text, spec, "start")
    end = _seconds(end_text, spec, "end") if dash and end_text.strip() else None
    try:
        return PartitionSpec(_positions(first, spec), _positions(second, spec) if bar else None,
                             start, end)
    except ValueError as e:
        if str(e).startswith("partition "):
            raise
        raise ValueError(f"partition {spec!r}: {e}") from None


class PartitionSchedule:
    """Applies :class:`PartitionSpec` windows to one link model on the clock: ``epoch`` is the
    ``time.time()`` of second 0. ``cut(a, b)`` and ``heal(partition)`` are the model operations
    (those of :mod:`splay.emulation.apply`, which refresh every node using the model)."""

    def __init__(self, specs, epoch, cut, heal, clock=time.time):
        self.events = []
        for index, spec in enumerate(specs):
            self.events.append((spec.start, 0, index, spec))
            if spec.end is not None:
                self.events.append((spec.end, 1, index, spec))
        self.events.sort(key=lambda e: (e[0], -e[1], e[2]))   # at one instant, heal first
        self.epoch = float(epoch)
        self.cut, self.heal, self.clock = cut, heal, clock
        self.in_force = {}                                    # spec index -> Partition
        self.stopped = threading.Event()
        self.thread = None

    def step(self):
        """Apply every event that is due; returns the time (seconds from the epoch) of the next
        one, or None when none is left."""
        elapsed = self.clock() - self.epoch
        while self.events and self.events[0][0] <= elapsed:
            _, kind, index, spec = self.events.pop(0)
            if kind == 0:
                self.in_force[index] = self.cut(list(spec.group_a),
                                                None if spec.group_b is None else list(spec.group_b))
            elif index in self.in_force:
                self.heal(self.in_force.pop(index))
        return self.events[0][0] if self.events else None

    def start(self):
        """Apply what is due now, then the rest from a daemon thread; returns self. In a
        simulation (virtual time) the clock is the virtual one and the rest is applied by a
        thread of the scheduler, outside every node (:meth:`_run_virtual`)."""
        from splay.sim import clock as sim_clock
        if sim_clock.is_virtual():
            self.clock = sim_clock.wall_time
            if self.step() is not None:
                from splayc import hub
                hub.spawn_in_node(None, self._run_virtual)
            return self
        if self.step() is not None:
            self.thread = threading.Thread(target=self._run, name="splay-partitions", daemon=True)
            self.thread.start()
        return self

    def _run_virtual(self):
        from splay import events
        upcoming = self.step()
        while upcoming is not None and not self.stopped.is_set():
            events.sleep(max(0.0, upcoming - (self.clock() - self.epoch)))
            upcoming = self.step()

    def _run(self):
        upcoming = self.step()
        while upcoming is not None:
            if self.stopped.wait(max(0.0, upcoming - (self.clock() - self.epoch))):
                return
            upcoming = self.step()

    def stop(self):
        """No further event is applied (cuts in force stay)."""
        self.stopped.set()

"""Convert availability traces of real systems into churn traces.

Measured availability (of PlanetLab hosts, of peers of a file-sharing network, ...) usually comes
as a log of up/down events per machine. pysplay reads that log in this simple documented form,
one event per line::

    # node-id   time                   state
    host-a      0                      up
    host-b      2024-03-01T10:00:00Z   up
    host-a      3600.5                 down

- **node-id**: any word without spaces; the output numbers nodes 0, 1, ... in the order in which
  their ids first appear (nodes that are never up are left out: they would have an empty line).
- **time**: seconds from the start of the experiment (a number >= 0), or an ISO 8601 date-time
  (``2024-03-01T10:00:00``, optional fraction and ``Z`` / ``+02:00``). One file uses one kind.
  ISO times count from ``origin`` when given, else from the earliest time in the file.
- **state**: ``up`` or ``down`` (``on`` / ``off`` also accepted), any case.
- Text after ``#`` is a comment; blank lines are ignored.

Per node, events must be in increasing time order in the file and alternate: two ``up`` in a row
is an error (it usually means a lost ``down``). A node whose first event is ``down`` was up from
the start (time 0). Every error names the line and column and what was wrong.
"""
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from .errors import AvailabilityError
from .trace import Schedule, format_time

_STATES = {"up": True, "on": True, "down": False, "off": False}


@dataclass
class ConvertedAvailability:
    """The result of a conversion: the schedule, and the original id of each of its nodes."""
    schedule: Schedule
    node_ids: list
    origin: Optional[datetime] = None


def _parse_iso(token):
    text = token[:-1] + "+00:00" if token.endswith(("Z", "z")) else token
    return datetime.fromisoformat(text)


def parse_availability(text, filename="<availability>", origin=None):
    """Convert availability events (see the module docstring) into a `ConvertedAvailability`.

    ``origin``: a `datetime` that ISO times count from (default: the earliest one in the file).
    Raises `AvailabilityError` naming the line and column of the first problem.
    """
    records = []  # (line, column of the time, node id, time value, is_up)
    kind = None   # "seconds" or "iso", fixed by the first event
    kind_line = None
    for line_number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0]
        fields = content.split()
        if not fields:
            continue
        columns, position = [], 0
        for field in fields:
            column = content.index(field, position)
            columns.append(column + 1)
            position = column + len(field)
        if len(fields) != 3:
            raise AvailabilityError(f"expected 3 fields '<node-id> <time> up|down', found {len(fields)}",
                                    filename, line_number, 1)
        node_id, time_text, state_text = fields
        state = _STATES.get(state_text.lower())
        if state is None:
            raise AvailabilityError(f"state {state_text!r} is neither 'up' nor 'down'",
                                    filename, line_number, columns[2])
        try:
            value, this_kind = float(time_text), "seconds"
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
        except ValueError:
            try:
                value, this_kind = _parse_iso(time_text), "iso"
            except ValueError:
                raise AvailabilityError(f"{time_text!r} is neither a number of seconds nor an ISO 8601 "
                                        f"date-time such as 2024-03-01T10:00:00Z",
                                        filename, line_number, columns[1]) from None
        if this_kind == "seconds" and value < 0:
            raise AvailabilityError(f"negative time {time_text} (seconds count from 0)",
                                    filename, line_number, columns[1])
        if kind is None:
            kind, kind_line = this_kind, line_number
        elif this_kind != kind:
            described = "seconds" if kind == "seconds" else "ISO date-times"
            raise AvailabilityError(f"{time_text!r} mixes time kinds: line {kind_line} set this file to "
                                    f"{described}", filename, line_number, columns[1])
        records.append((line_number, columns[1], node_id, value, state))

    if kind == "iso":
        zoned = records[0][3].tzinfo is not None
        for line_number, column, _, value, _ in records:
            if (value.tzinfo is not None) != zoned:
                raise AvailabilityError(f"line {records[0][0]} gives a time {'with' if zoned else 'without'} a "
                                        f"time zone but this one {'has none' if zoned else 'has one'}; give "
                                        f"every time a zone (e.g. Z) or none", filename, line_number, column)
        base = origin if origin is not None else min(r[3] for r in records)
        if (base.tzinfo is not None) != zoned:
            raise AvailabilityError("the origin and the times of the file must all have a time zone or "
                                    "all have none", filename, records[0][0], records[0][1])
        converted = []
        for line_number, column, node_id, value, state in records:
            seconds = (value - base).total_seconds()
            if seconds < 0:
                raise AvailabilityError(f"time {value.isoformat()} is before the origin {base.isoformat()}",
                                        filename, line_number, column)
            converted.append((line_number, column, node_id, seconds, state))
        records = converted
    else:
        base = None

    order, times, last = [], {}, {}
    for line_number, column, node_id, seconds, state in records:
        if node_id not in times:
            order.append(node_id)
            times[node_id] = []
            if not state:
                # First seen going down: it was up since the start.
                if seconds > 0:
                    times[node_id].append(0.0)
                    times[node_id].append(seconds)
                last[node_id] = (line_number, seconds, state)
                continue
        else:
            previous_line, previous_time, previous_state = last[node_id]
            if seconds <= previous_time:
                raise AvailabilityError(f"time {format_time(seconds)} s of node {node_id!r} is not after its "
                                        f"previous event ({format_time(previous_time)} s, line {previous_line}); "
                                        f"list each node's events in time order",
                                        filename, line_number, column)
            if state == previous_state:
                word = "up" if state else "down"
                raise AvailabilityError(f"node {node_id!r} is already {word} since line {previous_line} "
                                        f"(states must alternate up, down, up, ...)",
                                        filename, line_number, column)
        times[node_id].append(seconds)
        last[node_id] = (line_number, seconds, state)

    kept = [node_id for node_id in order if times[node_id]]
    schedule = Schedule([times[node_id] for node_id in kept])
    return ConvertedAvailability(schedule, kept, base if kind == "iso" else None)


def read_availability(path, origin=None):
    """Read and convert the availability file at ``path`` (errors name that file)."""
    with open(path, encoding="utf-8") as f:
        return parse_availability(f.read(), filename=str(path), origin=origin)

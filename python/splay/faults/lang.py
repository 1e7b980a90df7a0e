"""The fault timeline language of ``--faults FILE``: one fault per line, a start and an optional end.

The reference, with examples, is docs/faults.md. A few lines::

    # a leader paused for 5 s, a clock 500 ms ahead, a partition, a crash and a restart
    pause 3 at 10s for 5s
    skew 0-4 +500ms from 20s
    partition 0-3|4-7 from 5s to 15s
    kill 2 at 5s
    restart 2 at 8s
    random seed 7 every 10s pick pause|partition|kill for 5s

A line is ``KIND TARGET [VALUE] WHEN``. ``WHEN`` is ``at T`` (an instant; with ``for D`` a
window of D), ``from T`` (until the end of the run) or ``from T to T2``. Times are numbers with
a unit (``ms``, ``s``, ``m``, ``h``; a bare number is seconds). Targets are node positions from
0: ``3``, ``0-4``, ``0,2,5-7`` or ``all``; a partition names groups separated by ``|`` (one
group: cut from every other node).

:func:`parse_faults` turns the text into a :class:`FaultTimeline` (every error names the line
and column); :meth:`FaultTimeline.check_nodes` checks the positions against the run's node
count; :mod:`splay.faults.schedule` puts the faults, random ones included, on one timeline.
"""
import re
from dataclasses import dataclass, field
from typing import Optional, Tuple

from splay.emulation.partitions import format_positions

from .errors import FaultError

__all__ = ["Fault", "RandomFaults", "FaultTimeline", "parse_faults", "load_faults",
           "LASTING", "INSTANT", "KINDS", "RANDOM_KINDS", "format_seconds"]

#: Faults that hold during a window (``at T for D``, ``from T [to T2]``).
LASTING = ("pause", "partition", "skew", "drift", "slow", "delay", "loss", "duplicate", "reorder")
#: Faults that happen at an instant (``at T``; ``kill N at T for D`` restarts the node after D).
INSTANT = ("kill", "restart")
KINDS = LASTING + INSTANT
#: What ``random ... pick`` may choose from.
RANDOM_KINDS = ("pause", "partition", "kill", "slow")
#: The factor of a ``slow`` drawn by ``random``.
RANDOM_SLOW_FACTOR = 4.0

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_TIME = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([a-z]*)$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)$")

# What each kind takes after its target, in words, for messages and docs/faults.md.
_VALUE_HELP = {
    "skew": "a signed offset, e.g. 'skew 0-4 +500ms from 20s'",
    "drift": "a clock rate, e.g. 'drift 1 1.001 from 0s' (1.001: 1 ms more per second)",
    "slow": "a slow-down factor, e.g. 'slow 2 x4 from 3s to 9s' (a quarter of the CPU)",
    "delay": "an added one-way delay, e.g. 'delay 1 200ms from 0s'",
    "loss": "a percentage of datagrams lost, e.g. 'loss 1 5% from 0s'",
    "duplicate": "a percentage of datagrams sent twice, e.g. 'duplicate 1 1% from 0s'",
    "reorder": "a percentage of datagrams held back behind later ones, e.g. 'reorder 1 1% from 0s'",
}


def format_seconds(seconds):
    """A duration for people: ``0.5`` -> ``"500ms"``, ``5`` -> ``"5s"``, ``90`` -> ``"90s"``."""
    if seconds is None:
        return "the end"
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


@dataclass
class Fault:
    """One fault: ``kind`` (see :data:`KINDS`) on ``nodes`` from ``start`` to ``end`` seconds
    (None: until the end of the run; instants have ``end`` None unless ``kill ... for D``).

    ``groups`` holds a partition's groups (a single group is cut from every other node);
    ``value`` is the kind's number: the skew in seconds, the drift rate, the slow-down factor,
    the delay in seconds, or a probability in [0, 1] for loss, duplicate and reorder.
    ``line``/``column`` locate it in its file (0 for faults drawn by ``random``)."""
    kind: str
    nodes: Optional[Tuple[int, ...]]          # None: every node ('all')
    start: float
    end: Optional[float] = None
    value: Optional[float] = None
    groups: Tuple[Tuple[int, ...], ...] = ()
    line: int = 0
    column: int = 0
    text: str = ""

    def describe(self):
        """The fault in the file's words: ``pause 3 at 10s for 5s``."""
        if self.text:
            return self.text
        target = ("|".join(format_positions(g) for g in self.groups) if self.groups
                  else "all" if self.nodes is None else format_positions(self.nodes))
        value = "" if self.value is None else " " + _format_value(self.kind, self.value)
        when = f"at {format_seconds(self.start)}"
        if self.end is not None:
            when += f" for {format_seconds(round(self.end - self.start, 6))}"
        return f"{self.kind} {target}{value} {when}"

    def targets(self, count):
        """The positions the fault acts on in a run of ``count`` nodes (``all``: every one)."""
        return tuple(range(count)) if self.nodes is None else self.nodes


@dataclass
class RandomFaults:
    """``random seed S every D pick K1|K2 for D [from T] [to T2] [on NODES]``: a fault drawn
    every ``every`` seconds (the first at ``start + every``) until ``end`` (None: forever)."""
    seed: int
    every: float
    kinds: Tuple[str, ...]
    duration: float
    start: float = 0.0
    end: Optional[float] = None
    nodes: Optional[Tuple[int, ...]] = None      # None: every node of the run
    line: int = 0
    column: int = 0
    text: str = ""


@dataclass
class FaultTimeline:
    """The parsed file: explicit ``faults`` and ``randoms`` generators, in file order."""
    faults: list = field(default_factory=list)
    randoms: list = field(default_factory=list)
    filename: str = "<faults>"
    text: str = ""

    def check_nodes(self, count):
        """Raise :class:`FaultError` at the first line naming a position ``>= count``, or a
        partition or random draw that needs more nodes than the run has."""
        for fault in self.faults:
            named = [n for g in fault.groups for n in g] if fault.groups else list(fault.nodes or ())
            bad = [n for n in named if n >= count]
            if bad:
                raise FaultError(f"'{fault.text}' names node {bad[0]}, but the run has {count} "
                                 f"node(s) (positions 0 to {count - 1})",
                                 self.filename, fault.line, fault.column)
            if fault.kind == "partition" and len(fault.groups) == 1 and len(fault.groups[0]) >= count:
                raise FaultError(f"'{fault.text}' leaves no node on the other side of the cut "
                                 f"({count} node(s) in the run)", self.filename, fault.line, fault.column)
        for spec in self.randoms:
            pool = spec.nodes if spec.nodes is not None else tuple(range(count))
            bad = [n for n in pool if n >= count]
            if bad:
                raise FaultError(f"'{spec.text}' names node {bad[0]}, but the run has {count} "
                                 f"node(s) (positions 0 to {count - 1})",
                                 self.filename, spec.line, spec.column)
            if "partition" in spec.kinds and len(pool) < 2:
                raise FaultError(f"'{spec.text}' may pick a partition, which needs at least 2 "
                                 f"nodes to draw from, not {len(pool)}",
                                 self.filename, spec.line, spec.column)

    def uses(self, *kinds):
        """True when some line may produce a fault of one of ``kinds``."""
        return (any(f.kind in kinds for f in self.faults)
                or any(k in kinds for spec in self.randoms for k in spec.kinds))


def _format_value(kind, value):
    if kind == "skew":
        return ("+" if value >= 0 else "-") + format_seconds(abs(value))
    if kind == "slow":
        return f"x{value:g}"
    if kind == "delay":
        return format_seconds(value)
    if kind in ("loss", "duplicate", "reorder"):
        return f"{value * 100:g}%"
    return f"{value:g}"


class _Line:
    """The words of one line, with their columns, consumed left to right."""

    def __init__(self, text, number, filename):
        self.number = number
        self.filename = filename
        self.words = [(m.group(), m.start() + 1) for m in re.finditer(r"\S+", text)]
        self.position = 0
        self.end_column = len(text.rstrip()) + 1

    def error(self, message, column=None):
        if column is None:
            column = self.words[self.position][1] if self.position < len(self.words) else self.end_column
        return FaultError(message, self.filename, self.number, column)

    def peek(self):
        return self.words[self.position][0].lower() if self.position < len(self.words) else None

    def take(self, what):
        """The next word and its column; an error naming ``what`` at the end of the line."""
        if self.position >= len(self.words):
            raise self.error(f"expected {what}, found the end of the line")
        word, column = self.words[self.position]
        self.position += 1
        return word, column

    def done(self):
        return self.position >= len(self.words)


def _seconds(line, what, allow_sign=False):
    word, column = line.take(what)
    text = word.lower()
    sign = 1.0
    if allow_sign:
        if text[:1] not in "+-" or len(text) < 2:
            raise line.error(f"expected {what} with its sign ('+500ms' or '-2s'), found {word!r}", column)
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
    match = _TIME.match(text)
    if match is None or (match.group(2) and match.group(2) not in _UNITS):
        raise line.error(f"expected {what} (a number with a unit: ms, s, m or h, as in '10s' or "
                         f"'500ms'), found {word!r}", column)
    return sign * float(match.group(1)) * _UNITS.get(match.group(2) or "s"), column


def _nodes(text, line, column, what="the nodes"):
    if text.lower() == "all":
        return None
    positions = set()
    for item in text.split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise line.error(f"expected {what} as positions from 0 ('3', '0-4', '0,2,5-7' or "
                             f"'all'), found {text!r}", column)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise line.error(f"the range {item!r} goes down: write it low-high, as "
                             f"'{last}-{first}'", column)
        positions.update(range(first, last + 1))
    return tuple(sorted(positions))


def _percent(line, kind):
    word, column = line.take(_VALUE_HELP[kind])
    if not word.endswith("%") or _NUMBER.match(word[:-1]) is None:
        raise line.error(f"expected {_VALUE_HELP[kind]}, found {word!r}", column)
    value = float(word[:-1])
    if not 0 < value <= 100:
        raise line.error(f"a percentage is above 0% and at most 100%, not {word}", column)
    return value / 100.0


def _value(line, kind):
    """The number after the target of ``kind`` (see :data:`_VALUE_HELP`), or None."""
    if kind == "skew":
        value, column = _seconds(line, "the skew", allow_sign=True)
        return value
    if kind == "drift":
        word, column = line.take(_VALUE_HELP[kind])
        if _NUMBER.match(word) is None or float(word) <= 0:
            raise line.error(f"expected {_VALUE_HELP[kind]}: a positive number, found {word!r}", column)
        return float(word)
    if kind == "slow":
        word, column = line.take(_VALUE_HELP[kind])
        if not word.lower().startswith("x") or _NUMBER.match(word[1:]) is None:
            raise line.error(f"expected {_VALUE_HELP[kind]}, found {word!r}", column)
        if float(word[1:]) < 1:
            raise line.error(f"a slow-down factor is at least x1 (x4: a quarter of the CPU), "
                             f"not {word}", column)
        return float(word[1:])
    if kind == "delay":
        value, _ = _seconds(line, _VALUE_HELP[kind])
        return value
    if kind in ("loss", "duplicate", "reorder"):
        return _percent(line, kind)
    return None


def _when(line, kind):
    """``(start, end)`` from ``at T [for D]``, ``from T [to T2]`` or ``from T for D``."""
    word, column = line.take("when: 'at T', 'at T for D', 'from T' or 'from T to T2'")
    word = word.lower()
    if word not in ("at", "from"):
        raise line.error(f"expected when the fault happens ('at T', 'at T for D', 'from T' or "
                         f"'from T to T2'), found {word!r}", column)
    start, _ = _seconds(line, f"the time after '{word}'")
    end = None
    follow = line.peek()
    if follow in ("for", "to"):
        follow_word, follow_column = line.take(follow)
        if kind == "restart":
            raise line.error("'restart' happens at an instant: write 'restart N at T'", follow_column)
        if follow == "to" and word == "at":
            raise line.error("'at T' is an instant: write 'from T1 to T2' or 'at T for D'", follow_column)
        value, value_column = _seconds(line, f"the {'duration' if follow == 'for' else 'end time'} "
                                              f"after '{follow}'")
        end = start + value if follow == "for" else value
        if end <= start:
            raise line.error(f"the fault ends ({format_seconds(end)}) before or when it starts "
                             f"({format_seconds(start)})", value_column)
    elif kind == "restart" and word == "from":
        raise line.error("'restart' happens at an instant: write 'restart N at T'", column)
    elif kind == "kill" and word == "from":
        raise line.error("'kill' happens at an instant: write 'kill N at T' (or 'kill N at T for D' "
                         "to restart it after D)", column)
    return start, end


def _fault(line, kind, text):
    first_column = line.words[0][1]
    target, column = line.take("the nodes (e.g. '3', '0-4' or 'all')" if kind != "partition"
                               else "the groups of the partition (e.g. '0-3|4-7')")
    groups = ()
    if kind == "partition":
        parts = target.split("|")
        if any(not p for p in parts):
            raise line.error(f"expected groups separated by '|', as '0-3|4-7', found {target!r}", column)
        groups = tuple(_nodes(p, line, column, "a group") for p in parts)
        if any(g is None for g in groups):
            raise line.error("a partition's groups name their nodes ('all' cannot be cut from anything)",
                             column)
        seen = set()
        for group in groups:
            if seen & set(group):
                raise line.error(f"node {sorted(seen & set(group))[0]} is in two groups of the "
                                 "partition", column)
            seen |= set(group)
        nodes = tuple(sorted(seen))
    else:
        nodes = _nodes(target, line, column)
    value = _value(line, kind)
    start, end = _when(line, kind)
    if not line.done():
        raise line.error(f"unexpected {line.words[line.position][0]!r} after the fault (one fault "
                         "per line)")
    return Fault(kind, nodes, start, end, value, groups, line.number, first_column, text)


def _random(line, text):
    first_column = line.words[0][1]
    spec = {"every": None, "pick": None, "for": None, "seed": None}
    start, end, nodes = 0.0, None, None
    while not line.done():
        word, column = line.take("a part of 'random'")
        key = word.lower()
        if key == "seed":
            value, value_column = line.take("the seed (a whole number)")
            if not value.isdigit():
                raise line.error(f"the seed is a whole number, not {value!r}", value_column)
            spec["seed"] = int(value)
        elif key in ("every", "for"):
            spec[key], value_column = _seconds(line, f"a duration after '{key}'")
            if spec[key] <= 0:
                raise line.error(f"the duration after '{key}' must be longer than 0s", value_column)
        elif key == "pick":
            value, value_column = line.take("the kinds to pick from, e.g. 'pause|partition|kill'")
            kinds = tuple(k.lower() for k in value.split("|"))
            bad = [k for k in kinds if k not in RANDOM_KINDS]
            if bad:
                raise line.error(f"'random' picks from {', '.join(RANDOM_KINDS)}; not {bad[0]!r}",
                                 value_column)
            spec["pick"] = kinds
        elif key == "from":
            start, _ = _seconds(line, "the time after 'from'")
        elif key == "to":
            end, value_column = _seconds(line, "the time after 'to'")
            if end <= start:
                raise line.error(f"'to {format_seconds(end)}' is not after the start "
                                 f"({format_seconds(start)})", value_column)
        elif key == "on":
            value, value_column = line.take("the nodes to draw from")
            nodes = _nodes(value, line, value_column)
        else:
            raise line.error(f"expected seed, every, pick, for, from, to or on in a 'random' line, "
                             f"found {word!r}", column)
    missing = [k for k in ("seed", "every", "pick", "for") if spec[k] is None]
    if missing:
        raise line.error(f"a 'random' line needs {', '.join(repr(m) for m in missing)}: e.g. 'random "
                         "seed 7 every 10s pick pause|partition|kill for 5s'", first_column)
    return RandomFaults(spec["seed"], spec["every"], spec["pick"], spec["for"], start, end, nodes,
                        line.number, first_column, text)


def parse_faults(text, filename="<faults>"):
    """Parse a fault timeline; :class:`FaultError` (file:line:col) at the first mistake.

    Comments start with ``#``; blank lines are ignored."""
    timeline = FaultTimeline(filename=filename, text=text)
    for number, raw in enumerate(text.splitlines(), start=1):
        source = raw.split("#", 1)[0]
        line = _Line(source, number, filename)
        if line.done():
            continue
        word, column = line.take("a fault")
        kind = word.lower()
        written = source.strip()
        if kind == "random":
            timeline.randoms.append(_random(line, written))
        elif kind in KINDS:
            timeline.faults.append(_fault(line, kind, written))
        else:
            raise line.error(f"unknown fault {word!r}: a line starts with one of {', '.join(KINDS)} "
                             "or random", column)
    return timeline


def load_faults(path):
    """Read and parse the fault timeline at ``path`` (errors name that file)."""
    with open(path, encoding="utf-8") as f:
        return parse_faults(f.read(), str(path))

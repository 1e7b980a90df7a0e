"""The churn language: a script of timed instructions, compiled into a churn trace (`Schedule`).

The vocabulary is the one of the original SPLAY churn generator; the reference, with examples,
is docs/churn.md. One instruction per line::

    at 30s join 10
    from 5m to 10m inc 10
    from 10m to 15m const churn 50%
    at 15m leave 50%
    from 15m to 20m inc 10 churn 150%
    at 20m stop

`parse_script` turns the text into `Instruction` objects (a tokenizer and a recursive-descent
parser; every error names its line and column); `compile_script` turns them into a `Schedule`,
deterministically for a given seed.
"""
import math
import random
from dataclasses import dataclass, field
from typing import Optional

from .errors import ScriptError
from .trace import Schedule, format_time

# ----------------------------------------------------------------------------------------------
# Vocabulary (case-insensitive). Synonyms are those of the original generator.

JOIN_WORDS = {"join", "add", "increase", "inc"}
LEAVE_WORDS = {"leave", "remove", "decrease", "dec"}
CONST_WORDS = {"const", "constant", "keep"}
STOP_WORDS = {"stop", "end"}
PER_WORDS = {"per", "each"}
PLUS_WORDS = {"and"}

UNIT_SECONDS = {}
for _names, _seconds in ((("s", "sec", "secs", "second", "seconds"), 1),
                         (("m", "min", "mins", "minute", "minutes"), 60),
                         (("h", "hr", "hrs", "hour", "hours"), 3600),
                         (("d", "day", "days"), 86400)):
    for _name in _names:
        UNIT_SECONDS[_name] = _seconds

# When the original generator's replacement ratio is not set: 20% of joins bring a new node.
DEFAULT_REPLACEMENT_RATIO = 0.2

# Churn without "per T" is spread over windows of at least this many seconds (at most
# MAX_CHURN_WINDOWS of them), so that replacements follow the population as it changes.
CHURN_WINDOW_SECONDS = 10.0
MAX_CHURN_WINDOWS = 20

# Times in the trace are rounded to the millisecond.
TIME_DECIMALS = 3


def format_duration(seconds):
    """A time in seconds for humans: ``90`` -> ``"1m30s"``, ``12.5`` -> ``"12.5s"``."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    fraction = seconds - whole
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or fraction:
        parts.append(format_time(round(whole + fraction, TIME_DECIMALS)) + "s")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# Tokens

@dataclass
class Token:
    """One token of a script: kind is NUM, WORD, SYM, NEWLINE or EOF."""
    kind: str
    text: str
    line: int
    column: int
    value: float = 0.0

    def describe(self):
        """How error messages name this token."""
        if self.kind == "NEWLINE":
            return "the end of the line"
        if self.kind == "EOF":
            return "the end of the script"
        return repr(self.text)


def tokenize(text, filename="<script>"):
    """Split a script into tokens. Comments (``#``, ``//``, ``/* ... */``) are dropped."""
    tokens = []
    line, line_start, i, n = 1, 0, 0, len(text)
    while i < n:
        c = text[i]
        column = i - line_start + 1
        if c == "\n":
            tokens.append(Token("NEWLINE", "\n", line, column))
            line, line_start, i = line + 1, i + 1, i + 1
        elif c in " \t\r\f\v":
            i += 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise ScriptError("this /* comment is never closed with */", filename, line, column)
            newlines = text.count("\n", i, close)
            if newlines:
                # A comment spanning lines still ends the instruction before it.
                tokens.append(Token("NEWLINE", "\n", line, column))
                line += newlines
                line_start = text.rfind("\n", i, close) + 1
            i = close + 2
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and text[j].isdigit():
                j += 1
            if j < n and text[j] == "." and j + 1 < n and text[j + 1].isdigit():
                j += 1
                while j < n and text[j].isdigit():
                    j += 1
            tokens.append(Token("NUM", text[i:j], line, column, float(text[i:j])))
            i = j
        elif c.isalpha():
            j = i
            while j < n and (text[j].isalpha() or
                             (text[j] == "." and j + 1 < n and text[j + 1].isalpha())):
                j += 1
            tokens.append(Token("WORD", text[i:j].lower(), line, column))
            i = j
        elif c in "+-*()%,/":
            tokens.append(Token("SYM", c, line, column))
            i += 1
        else:
            raise ScriptError(f"unexpected character {c!r}", filename, line, column)
    tokens.append(Token("EOF", "", line, i - line_start + 1))
    return tokens


# ----------------------------------------------------------------------------------------------
# Syntax tree

@dataclass
class Quantity:
    """A number of nodes (``relative`` False) or a percentage of the current population."""
    value: float
    relative: bool
    line: int
    column: int

    def __str__(self):
        return format_time(self.value) + ("%" if self.relative else "")


@dataclass
class Instruction:
    """One line of a script: a timing, an action and an optional churn clause.

    ``action`` is one of ``join leave const stop set_max set_ratio``; ``end`` is None for an
    instant (``at T``); times are in seconds.
    """
    line: int
    column: int
    text: str
    start: float
    end: Optional[float]
    action: str
    quantity: Optional[Quantity] = None
    churn: Optional[Quantity] = None
    churn_per: Optional[float] = None
    index: int = 0

    @property
    def is_period(self):
        return self.end is not None

    def when(self):
        """The timing in words, e.g. ``at 30s`` or ``from 5m to 10m``."""
        if self.end is None:
            return f"at {format_duration(self.start)}"
        return f"from {format_duration(self.start)} to {format_duration(self.end)}"


@dataclass
class _Value:
    """A value while parsing a time expression: seconds, and whether a unit was given."""
    seconds: float
    has_unit: bool


class _Parser:
    """Recursive-descent parser over the tokens of one script."""

    def __init__(self, text, filename):
        self.filename = filename
        self.lines = text.splitlines()
        self.tokens = tokenize(text, filename)
        self.position = 0

    # -- helpers
    def peek(self):
        return self.tokens[self.position]

    def advance(self):
        token = self.tokens[self.position]
        self.position += 1
        return token

    def error(self, message, token):
        return ScriptError(message, self.filename, token.line, token.column)

    def is_word(self, words):
        token = self.peek()
        return token.kind == "WORD" and token.text in words

    def is_sym(self, symbols):
        token = self.peek()
        return token.kind == "SYM" and token.text in symbols

    def expect_word(self, words, what):
        token = self.peek()
        if token.kind == "WORD" and token.text in words:
            return self.advance()
        raise self.error(f"expected {what}, found {token.describe()}", token)

    # -- program
    def parse(self):
        instructions = []
        while True:
            while self.peek().kind == "NEWLINE":
                self.advance()
            if self.peek().kind == "EOF":
                return instructions
            instruction = self.instruction()
            instruction.index = len(instructions)
            instructions.append(instruction)
            token = self.peek()
            if token.kind not in ("NEWLINE", "EOF"):
                raise self.error(f"unexpected {token.describe()} after the instruction "
                                 f"(one instruction per line)", token)

    def instruction(self):
        first = self.peek()
        if self.is_word({"at"}):
            self.advance()
            start, end = self.time_expression("the time after 'at'"), None
        elif self.is_word({"from"}):
            self.advance()
            start = self.time_expression("the start time after 'from'")
            self.expect_word({"to"}, "'to' and the end of the period")
            end_token = self.peek()
            end = self.time_expression("the end time after 'to'")
            if end <= start:
                raise self.error(f"the period ends ({format_duration(end)}) before or when it starts "
                                 f"({format_duration(start)})", end_token)
        else:
            raise self.error("an instruction starts with 'at T' or 'from T1 to T2', "
                             f"found {first.describe()}", first)
        instruction = Instruction(first.line, first.column, "", start, end, "const")
        self.action(instruction)
        if self.is_word({"churn"}):
            churn_token = self.advance()
            if not instruction.is_period:
                raise self.error("churn needs a period: write 'from T1 to T2 ... churn Q%'", churn_token)
            instruction.churn = self.quantity("how much churn after 'churn' (e.g. 'churn 50%')")
            if self.is_word(PER_WORDS) or self.is_sym({"/"}):
                self.advance()
                per_token = self.peek()
                instruction.churn_per = self.time_expression("a duration after 'per' (e.g. 'per 1m')")
                if instruction.churn_per <= 0:
                    raise self.error("the churn period after 'per' must be longer than 0s", per_token)
        # The instruction as written (original case, without comments), for messages.
        last = self.tokens[self.position - 1]
        source = self.lines[first.line - 1]
        end_column = len(source) if last.line != first.line else last.column - 1 + len(last.text)
        instruction.text = source[first.column - 1:end_column].strip()
        return instruction

    def action(self, instruction):
        token = self.peek()
        if self.is_word(JOIN_WORDS | LEAVE_WORDS):
            self.advance()
            instruction.action = "join" if token.text in JOIN_WORDS else "leave"
            quantity = self.quantity(f"how many nodes after '{token.text}' (e.g. '{token.text} 10' or "
                                     f"'{token.text} 50%')")
            if not quantity.relative and quantity.value != int(quantity.value):
                raise ScriptError(f"'{token.text}' needs a whole number of nodes, not {quantity}",
                                  self.filename, quantity.line, quantity.column)
            instruction.quantity = quantity
        elif self.is_word(CONST_WORDS):
            self.advance()
            instruction.action = "const"
        elif self.is_word(STOP_WORDS):
            self.advance()
            if instruction.is_period:
                raise self.error(f"'{token.text}' happens at an instant: write 'at T {token.text}'", token)
            instruction.action = "stop"
        elif self.is_word({"set"}):
            self.advance()
            if instruction.is_period:
                raise self.error("'set' takes effect at an instant: write 'at T set ...'", token)
            self.setting(instruction)
        else:
            raise self.error("expected an action: join, leave, const, stop or set "
                             f"(or a synonym: add/increase/inc, remove/decrease/dec, keep, end), "
                             f"found {token.describe()}", token)

    def setting(self, instruction):
        token = self.peek()
        if self.is_word({"maximum", "max"}):
            self.advance()
            self.expect_word({"population", "pop"}, "'population' after 'set maximum'")
            if self.is_word({"to"}):
                self.advance()
            quantity = self.quantity("the maximum number of nodes (e.g. 'set maximum population to 100')")
            if quantity.relative or quantity.value != int(quantity.value):
                raise ScriptError(f"the maximum population is a whole number of nodes, not {quantity}",
                                  self.filename, quantity.line, quantity.column)
            instruction.action, instruction.quantity = "set_max", quantity
        elif self.is_word({"replacement", "repratio", "rep.ratio"}):
            if self.advance().text == "replacement":
                self.expect_word({"ratio"}, "'ratio' after 'set replacement'")
            if self.is_word({"to"}):
                self.advance()
            quantity = self.quantity("a percentage (e.g. 'set replacement ratio to 50%')")
            if not quantity.relative:
                raise ScriptError(f"the replacement ratio is a percentage: write {quantity}%",
                                  self.filename, quantity.line, quantity.column)
            if quantity.value > 100:
                raise ScriptError(f"the replacement ratio is at most 100%, not {quantity}",
                                  self.filename, quantity.line, quantity.column)
            instruction.action, instruction.quantity = "set_ratio", quantity
        else:
            raise self.error("expected 'maximum population' or 'replacement ratio' after 'set', "
                             f"found {token.describe()}", token)

    # -- quantities: numbers of nodes or percentages
    def quantity(self, what):
        token = self.peek()
        if token.kind != "NUM" and not self.is_sym({"("}):
            raise self.error(f"expected {what}, found {token.describe()}", token)
        value = self.number_expression()
        relative = False
        if self.is_sym({"%"}):
            self.advance()
            relative = True
        if value < 0:
            raise self.error(f"a quantity cannot be negative ({format_time(value)})", token)
        return Quantity(value, relative, token.line, token.column)

    def number_expression(self):
        value = self.number_term()
        while self.is_sym({"+", "-"}):
            operator = self.advance().text
            other = self.number_term()
            value = value + other if operator == "+" else value - other
        return value

    def number_term(self):
        value = self.number_factor()
        while self.is_sym({"*"}):
            self.advance()
            value *= self.number_factor()
        return value

    def number_factor(self):
        token = self.advance()
        if token.kind == "NUM":
            return token.value
        if token.kind == "SYM" and token.text == "(":
            value = self.number_expression()
            close = self.advance()
            if close.kind != "SYM" or close.text != ")":
                raise self.error(f"expected ')' to close the '(' at column {token.column}, "
                                 f"found {close.describe()}", close)
            return value
        raise self.error(f"expected a number or '(', found {token.describe()}", token)

    # -- time expressions: numbers with units, + - * and parentheses; "and" and "," add
    def time_expression(self, what):
        token = self.peek()
        if token.kind not in ("NUM", "WORD") and not self.is_sym({"("}):
            raise self.error(f"expected {what}, found {token.describe()}", token)
        if token.kind == "WORD" and token.text not in UNIT_SECONDS:
            raise self.error(f"expected {what}, found {token.describe()}", token)
        value = self.time_sum()
        if value.seconds < 0:
            raise self.error(f"this time is negative ({format_time(value.seconds)}s)", token)
        return round(value.seconds, TIME_DECIMALS)

    def time_sum(self):
        value = self.time_term()
        while True:
            if self.is_sym({"+", ",", "-"}) or self.is_word(PLUS_WORDS):
                operator = self.advance().text
                other = self.time_term()
            elif self.peek().kind == "NUM" and value.has_unit:
                operator, other = "+", self.time_term()  # "1h 30m": juxtaposition adds
            else:
                return value
            sign = -1 if operator == "-" else 1
            value = _Value(value.seconds + sign * other.seconds, value.has_unit or other.has_unit)

    def time_term(self):
        value = self.time_factor()
        while self.is_sym({"*"}):
            star = self.advance()
            other = self.time_factor()
            if value.has_unit and other.has_unit:
                raise self.error("cannot multiply two durations (write e.g. '2*30m')", star)
            value = _Value(value.seconds * other.seconds, value.has_unit or other.has_unit)
        return value

    def time_factor(self):
        token = self.advance()
        if token.kind == "NUM":
            value = _Value(token.value, False)
        elif token.kind == "SYM" and token.text == "(":
            value = self.time_sum()
            close = self.advance()
            if close.kind != "SYM" or close.text != ")":
                raise self.error(f"expected ')' to close the '(' at column {token.column}, "
                                 f"found {close.describe()}", close)
        elif token.kind == "WORD" and token.text in UNIT_SECONDS:
            return _Value(UNIT_SECONDS[token.text], True)  # a bare unit: "4*d" is 4 days
        else:
            raise self.error(f"expected a time such as 30s, 5m, 2h or 1d, found {token.describe()}", token)
        if self.peek().kind == "WORD" and self.peek().text in UNIT_SECONDS:
            unit = self.advance()
            if value.has_unit:
                raise self.error(f"{unit.text!r}: this time already has a unit", unit)
            value = _Value(value.seconds * UNIT_SECONDS[unit.text], True)
        if value.has_unit and self.peek().kind == "WORD" and self.peek().text in UNIT_SECONDS:
            unit = self.peek()
            raise self.error(f"{unit.text!r}: this time already has a unit", unit)
        return value


def parse_script(text, filename="<script>"):
    """Parse a churn script into a list of `Instruction`; raise `ScriptError` (line, column)."""
    return _Parser(text, filename).parse()


# ----------------------------------------------------------------------------------------------
# Compiler

@dataclass
class Milestone:
    """The population once an instruction took effect.

    For an instant (``at T``): right after everything that happens at T. For a period: just
    before its end (all its joins and leaves fall strictly inside the period).
    """
    instruction: Instruction
    time: float
    population: int


@dataclass
class CompiledScript:
    """What `compile_script` gives: the schedule, and what the author should know about it."""
    schedule: Schedule
    instructions: list
    milestones: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    stop_time: Optional[float] = None
    seed: int = 0


@dataclass
class _Event:
    time: float
    priority: int
    sequence: int
    kind: str  # "cap", "ratio", "join", "leave" or "pair" (one leave and one join at once)
    instruction: Instruction
    value: float = 0.0


# Instructions at the same time run in this order (as in the original generator): settings,
# joins, leaves, constant periods (their churn), then stop. Ties keep the script's order.
_PRIORITY = {"set_max": 0, "set_ratio": 0, "join": 1, "leave": 2, "const": 3, "stop": 4}
_EVENT_PRIORITY = {"cap": 0, "ratio": 0, "join": 1, "leave": 2, "pair": 3}


class _Pool:
    """A set of nodes with O(1) add and removal of a random member, in a deterministic order
    (so that a seed always picks the same nodes)."""

    def __init__(self):
        self.members = []
        self.position = {}

    def __len__(self):
        return len(self.members)

    def add(self, node):
        self.position[node] = len(self.members)
        self.members.append(node)

    def take_random(self, rng):
        index = rng.randrange(len(self.members))
        node = self.members[index]
        last = self.members.pop()
        if last != node:
            self.members[index] = last
            self.position[last] = index
        del self.position[node]
        return node


class _Compiler:
    """Turns instructions into a schedule in three phases (see `run`); one use per script."""

    def __init__(self, instructions, filename, seed):
        self.instructions = instructions
        self.filename = filename
        self.seed = seed
        self.random = random.Random(seed)
        self.events = []
        self.warnings = []
        self.stops = [i.start for i in instructions if i.action == "stop"]
        self.stop_time = min(self.stops) if self.stops else None

    def warn(self, instruction, message):
        self.warnings.append(f"{self.filename}:{instruction.line}:{instruction.column}: {message}")

    def add(self, time, kind, instruction, value=0.0):
        self.events.append(_Event(round(time, TIME_DECIMALS), _EVENT_PRIORITY[kind], len(self.events),
                                  kind, instruction, value))

    def sorted_events(self):
        return sorted(self.events, key=lambda e: (e.time, e.priority, e.sequence))

    def population_at(self, t):
        """The population at time t from the join/leave events scheduled so far (capped)."""
        population, cap = 0, math.inf
        for event in self.sorted_events():
            if event.time > t:
                break
            if event.kind == "cap":
                cap = event.value
            elif event.kind == "join" and population < cap:
                population += 1
            elif event.kind == "leave" and population > 0:
                population -= 1
        return population

    def node_count(self, instruction):
        quantity = instruction.quantity
        if not quantity.relative:
            return int(quantity.value)
        population = self.population_at(instruction.start)
        if population == 0 and quantity.value > 0:
            self.warn(instruction, f"'{instruction.text}': {quantity} of 0 nodes is nobody")
        # The small epsilon keeps 50% of 20 at 10 despite binary floating point.
        return int(math.floor(quantity.value / 100.0 * population + 1e-9))

    def schedule_population_changes(self):
        """Phase 1: the settings, joins and leaves, in time order (relative sizes need it)."""
        order = sorted(self.instructions, key=lambda i: (i.start, _PRIORITY[i.action], i.index))
        for instruction in order:
            if self.stop_time is not None and instruction.action != "stop" and \
                    instruction.start > self.stop_time:
                self.warn(instruction, f"'{instruction.text}' starts after the stop at "
                                       f"{format_duration(self.stop_time)} and is ignored")
                continue
            action = instruction.action
            if action == "set_max":
                self.add(instruction.start, "cap", instruction, instruction.quantity.value)
            elif action == "set_ratio":
                self.add(instruction.start, "ratio", instruction, instruction.quantity.value / 100.0)
            elif action in ("join", "leave"):
                count = self.node_count(instruction)
                if action == "leave" and not instruction.is_period:
                    up = self.population_at(instruction.start)
                    if count > up:
                        quantity = instruction.quantity
                        raise ScriptError(f"'{instruction.text}' removes {count} nodes but only {up} "
                                          f"are up at {format_duration(instruction.start)}",
                                          self.filename, quantity.line, quantity.column)
                for k in range(1, count + 1):
                    if instruction.is_period:
                        # Evenly spread, strictly inside the period (midpoints of equal slices).
                        t = instruction.start + (instruction.end - instruction.start) * (k - 0.5) / count
                    else:
                        t = instruction.start
                    self.add(t, action, instruction)

    def drop_after_stop(self):
        if self.stop_time is None:
            return
        kept, dropped = [], {}
        for event in self.events:
            if event.time >= self.stop_time and event.kind in ("join", "leave", "pair"):
                dropped[event.instruction.index] = dropped.get(event.instruction.index, 0) + 1
            else:
                kept.append(event)
        self.events = kept
        for instruction in self.instructions:
            if instruction.index in dropped and instruction.start <= self.stop_time:
                self.warn(instruction, f"'{instruction.text}': {dropped[instruction.index]} of its "
                                       f"joins/leaves fall at or after the stop at "
                                       f"{format_duration(self.stop_time)} and are ignored")

    def population_steps(self):
        """[(t, population from t on)] after phase 1, for mean populations over windows."""
        steps, population, cap = [(0.0, 0)], 0, math.inf
        for event in self.sorted_events():
            if event.kind == "cap":
                cap = event.value
            elif event.kind == "join" and population < cap:
                population += 1
            elif event.kind == "leave" and population > 0:
                population -= 1
            else:
                continue
            if steps[-1][0] == event.time:
                steps[-1] = (event.time, population)
            else:
                steps.append((event.time, population))
        return steps

    @staticmethod
    def mean_population(steps, a, b):
        total = 0.0
        for k, (t, population) in enumerate(steps):
            next_t = steps[k + 1][0] if k + 1 < len(steps) else math.inf
            low, high = max(a, t), min(b, next_t)
            if high > low:
                total += population * (high - low)
        return total / (b - a)

    def schedule_churn(self):
        """Phase 2: churn adds replacements (one node leaves, another joins at the same instant),
        which leave the population curve of phase 1 unchanged."""
        steps = self.population_steps()
        for instruction in self.instructions:
            if instruction.churn is None:
                continue
            start, end = instruction.start, instruction.end
            if self.stop_time is not None:
                end = min(end, self.stop_time)
            if end <= start:
                continue
            if instruction.churn_per is not None:
                base = instruction.churn_per
                edges = [start]
                while edges[-1] + base < end:
                    edges.append(edges[-1] + base)
                edges.append(end)
            else:
                base = instruction.end - instruction.start
                windows = max(1, min(MAX_CHURN_WINDOWS, int((end - start) // CHURN_WINDOW_SECONDS)))
                edges = [start + (end - start) * k / windows for k in range(windows + 1)]
            churn = instruction.churn
            expected_total, emitted = 0.0, 0
            for a, b in zip(edges, edges[1:]):
                share = (b - a) / base
                if churn.relative:
                    expected_total += churn.value / 100.0 * self.mean_population(steps, a, b) * share
                else:
                    expected_total += churn.value * share
                count = int(math.floor(expected_total + 0.5)) - emitted
                emitted += count
                for t in sorted(a + (b - a) * self.random.random() for _ in range(count)):
                    self.add(t, "pair", instruction)

    def assign_nodes(self):
        """Phase 3: walk the events in time order and pick which node each join and leave moves."""
        node_times = []
        alive, departed = _Pool(), _Pool()
        cap, ratio = math.inf, DEFAULT_REPLACEMENT_RATIO
        capped, skipped = {}, {}
        events = self.sorted_events()
        position = 0
        while position < len(events):
            t = events[position].time
            joins = leaves = 0
            population = len(alive)
            while position < len(events) and events[position].time == t:
                event = events[position]
                position += 1
                if event.kind == "cap":
                    cap = event.value
                elif event.kind == "ratio":
                    ratio = event.value
                elif event.kind == "join":
                    if population >= cap:
                        capped[event.instruction.index] = capped.get(event.instruction.index, 0) + 1
                    else:
                        population += 1
                        joins += 1
                elif event.kind == "leave":
                    if population == 0:
                        instruction = event.instruction
                        raise ScriptError(f"'{instruction.text}': no node is up at {format_duration(t)} "
                                          f"to leave (the script removes more nodes than it added)",
                                          self.filename, instruction.line, instruction.column)
                    population -= 1
                    leaves += 1
                elif event.kind == "pair":
                    if population == 0:
                        skipped[event.instruction.index] = skipped.get(event.instruction.index, 0) + 1
                    else:
                        leaves += 1
                        joins += 1
            # Nodes that would join and leave at this same instant never go up at all.
            real_leaves = min(leaves, len(alive))
            joins -= leaves - real_leaves
            leaving = [alive.take_random(self.random) for _ in range(real_leaves)]
            for node in leaving:
                node_times[node].append(t)
            # A join brings back a node that left earlier (not at this instant: its line would
            # not increase), or with probability `ratio` (or when none is down) a new node.
            for _ in range(joins):
                if len(departed) and self.random.random() >= ratio:
                    node = departed.take_random(self.random)
                else:
                    node = len(node_times)
                    node_times.append([])
                node_times[node].append(t)
                alive.add(node)
            for node in leaving:
                departed.add(node)
        if self.stop_time is not None:
            for node in sorted(alive.members):
                node_times[node].append(self.stop_time)
        for instruction in self.instructions:
            if instruction.index in capped:
                self.warn(instruction, f"'{instruction.text}': {capped[instruction.index]} joins dropped "
                                       f"because the maximum population was reached")
            if instruction.index in skipped:
                self.warn(instruction, f"'{instruction.text}': {skipped[instruction.index]} churn "
                                       f"replacements skipped because no node was up")
        return Schedule(node_times)

    def run(self):
        """Population changes, then churn, then node identities; returns a `CompiledScript`."""
        self.schedule_population_changes()
        self.drop_after_stop()
        self.schedule_churn()
        self.drop_after_stop_churn()
        schedule = self.assign_nodes()
        milestones = []
        for instruction in self.instructions:
            if self.stop_time is not None and instruction.start > self.stop_time:
                continue
            if instruction.is_period:
                # Its events all fall strictly inside the period: count just before its end,
                # which instant instructions at that same time (a stop, say) do not affect.
                t = instruction.end if self.stop_time is None else min(instruction.end, self.stop_time)
                population = schedule.population_before(t)
            else:
                t = instruction.start
                population = schedule.population_at(t)
            milestones.append(Milestone(instruction, t, population))
        return CompiledScript(schedule, self.instructions, milestones, self.warnings, self.stop_time,
                              self.seed)

    def drop_after_stop_churn(self):
        # Churn times are drawn inside [start, min(end, stop)); rounding to the millisecond can
        # still land one on the stop instant, where it would have no effect.
        if self.stop_time is not None:
            self.events = [e for e in self.events if not (e.kind == "pair" and e.time >= self.stop_time)]


def compile_instructions(instructions, filename="<script>", seed=0):
    """Compile parsed instructions into a `CompiledScript` (see `compile_script`)."""
    return _Compiler(instructions, filename, seed).run()


def compile_script(text, filename="<script>", seed=0):
    """Parse and compile a churn script; the same text and seed always give the same trace.

    Returns a `CompiledScript` whose ``schedule`` is the trace. Raises `ScriptError` (with line
    and column) when the script cannot be parsed or asks for the impossible, such as removing
    more nodes than are up.
    """
    return compile_instructions(parse_script(text, filename), filename, seed)


def compile_file(path, seed=0):
    """Read, parse and compile the churn script at ``path`` (errors name that file)."""
    with open(path, encoding="utf-8") as f:
        return compile_script(f.read(), filename=str(path), seed=seed)

"""``--churn FILE`` of ``splay run`` and ``splay submit``: a churn trace, or a churn script
compiled on the spot.

A trace (`splay.churn.trace`) holds only numbers; a script (`splay.churn.lang`, docs/churn.md)
starts with a word (``at 30s join 10``). The first word outside comments decides: a number is a
trace, anything else a script. A file that starts with a word but does not compile is reported
with the script's error and the exact ``splay churn`` command that compiles (and checks) it, as
it may also be a trace with a typo.
"""
from dataclasses import dataclass, field

from .errors import ChurnError
from .lang import compile_script, format_duration
from .trace import parse_trace


@dataclass
class LoadedChurn:
    """What ``--churn FILE`` gave: the schedule, the trace's text, and, for a script, what its
    compilation says (``notes``: lines for the user, as ``splay churn`` prints them)."""
    schedule: object
    trace_text: str
    compiled: bool = False
    notes: list = field(default_factory=list)


def first_word(text):
    """The first whitespace-separated token outside ``#`` comments, or None."""
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if words:
            return words[0]
    return None


def looks_like_trace(text):
    """True when ``text`` is to be read as a churn trace (its first word is a number, or it has
    no word at all), False when it is a churn script."""
    word = first_word(text)
    if word is None:
        return True
    try:
        float(word)
    except ValueError:
        return False
    return True


def compile_command(path):
    """The command that compiles the churn script at ``path`` into a trace."""
    return f"splay churn {path} -o {path}.trace"


def summary_lines(compiled):
    """What a compiled script holds, one line each: warnings, the population after each
    instruction, and the schedule's totals (as ``splay churn`` prints them)."""
    return ([f"warning: {warning}" for warning in compiled.warnings] + milestone_lines(compiled)
            + [schedule_line(compiled.schedule)])


def milestone_lines(compiled):
    """The population after each instruction of a compiled script, a heading and one line each."""
    lines = ["population after each instruction:"]
    width = max((len(m.instruction.text) for m in compiled.milestones), default=0)
    for milestone in compiled.milestones:
        lines.append(f"  line {milestone.instruction.line:<4} {milestone.instruction.text:<{width}}  "
                     f"{milestone.population:>6} up at {format_duration(milestone.time)}")
    return lines


def schedule_line(schedule):
    """One line about a schedule: nodes, events, duration, population."""
    events = schedule.events()
    return (f"{schedule.nodes} nodes, {len(events)} up/down events, last event at "
            f"{format_duration(schedule.end_time)} ({schedule.end_time:g} s); peak population "
            f"{schedule.max_population()}, {schedule.population_at(schedule.end_time)} up at the end")


def load_churn(path, seed=0):
    """Read ``--churn``'s file: a trace as it is, a script compiled with ``seed``. Returns a
    `LoadedChurn`; raises `ChurnError` (naming the file, line and column, and for a script that
    does not compile, the command that compiles it) or OSError."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if looks_like_trace(text):
        schedule = parse_trace(text, str(path))
        return LoadedChurn(schedule, text)
    try:
        compiled = compile_script(text, filename=str(path), seed=seed)
    except ChurnError as error:
        raise type(error)(f"{error.message} ({path} starts with a word, so it was read as a churn "
                          f"script; compile and check it with: {compile_command(path)})",
                          error.filename, error.line, error.column) from None
    notes = [f"{path} is a churn script, compiled with seed {seed} "
             f"(the same trace as: {compile_command(path)})", *summary_lines(compiled)]
    return LoadedChurn(compiled.schedule, compiled.schedule.to_text(), True, notes)

"""The report of a simulation that can never make progress again.

In virtual time the clock only moves to the next deadline; when no thread is runnable and no
deadline is left, threads still blocked (on an event nobody will fire, a lock nobody releases, a
message nobody sends) would wait forever. The hub then ends the run and, before those threads
unwind, hands them to this module, which says for each one who it is (name, node) and where it
waits (the innermost line of application code, with the library frames below it skipped).
"""

import contextlib
import linecache
import os

from splayc import hub as _hub

# Frames inside these directories are the library, not the application's wait.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (__import__("splay"), __import__("splayc")))


class StuckReport:
    """What a stuck simulation left blocked: ``entries`` is a list of ``(thread, node, where)``
    strings; ``str(report)`` is the text printed at the end of the run (empty when nothing was
    stuck)."""

    def __init__(self):
        self.entries = []

    def _record(self, stuck):
        self.entries = [(_thread_name(t), repr(t.node), _where(frame)) for t, frame in stuck]

    def __bool__(self):
        return bool(self.entries)

    def __str__(self):
        if not self.entries:
            return ""
        lines = [f"simulation stuck: {len(self.entries)} thread(s) blocked, nothing left to "
                 "wake them (no deadline, no message in flight):"]
        lines += [f"  {name} (node {node}) waits at {where}" for name, node, where in self.entries]
        return "\n".join(lines)


def _thread_name(t):
    return t.name if t.name else f"thread #{t.id}"


def _where(frame):
    """``file:line in function: source`` of the innermost application frame of ``frame``."""
    innermost = None
    f = frame
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if innermost is None:
            innermost = f
        if not path.startswith(_LIBRARY_DIRS):
            break
        f = f.f_back
    f = f if f is not None else innermost
    if f is None:
        return "(not started)"
    source = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}: {source}"


@contextlib.contextmanager
def watch():
    """``with watch() as report: events.run(main)``: fill ``report`` if the simulated run ends
    with threads that can never be woken."""
    report = StuckReport()
    _hub.set_stuck_hook(report._record)
    try:
        yield report
    finally:
        _hub.set_stuck_hook(None)

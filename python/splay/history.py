"""Operation histories: what clients asked of a system and what they were told, for the checkers.

A client records every operation it performs: the *invocation* (before it sends anything), then
exactly one *completion*:

* ``ok`` -- the operation happened, with its result;
* ``fail`` -- the operation certainly did not happen (the system said so, e.g. a refused
  compare-and-set);
* ``info`` -- nobody knows (a timeout, a lost connection): it may have taken effect, now or
  later, or never.

::

    from splay import history, rpc

    op = history.invoke("write", ["x", 3])
    try:
        rpc.call(leader, ["put", "x", 3], 2)
    except splay.RPCTimeout:
        history.info(op, "timeout")
    else:
        history.ok(op)

    with history.operation("read", ["x", None]) as op:   # ok, or info on an exception
        op.ok(["x", rpc.call(leader, ["get", "x"])])

Each record is one JSON object: ``process`` (one per SPLAY thread of a node: ``"3.1"`` is the
first recording thread of node 3, so a process never has two operations pending, as the checkers
assume), ``node``, ``type``, ``f``, ``value`` and ``time`` (``misc.time()``: real time, or virtual
time in a simulation). Records are written as log lines ``[history] {...}`` through the node's
output, so they travel wherever its log goes -- the merged log of ``splay run`` (which also
writes them to ``history.jsonl`` in its log directory) or the controller's logs of a deployed
job (``splay history JOB -o FILE`` extracts them). :func:`splay.check.load_history` reads either
form. Values must be JSON data (numbers, strings, booleans, None, lists, dicts with string keys).
"""
import json
import os
import weakref

import greenlet

from splay import log, misc

__all__ = ["invoke", "ok", "fail", "info", "operation", "Operation", "MARKER"]

#: What starts every history line in a log; the JSON record follows it.
MARKER = "[history]"

# The records bypass log levels: a history with holes would make the checkers lie.
_writer = log.new(level=log.DEBUG, prefix=MARKER)
_writer.write = lambda level, *args: args[0]

_process_of = weakref.WeakKeyDictionary()   # greenlet -> process name
_threads_seen = 0


class Operation:
    """One invoked operation; complete it once with :meth:`ok`, :meth:`fail` or :meth:`info`."""

    __slots__ = ("process", "f", "value", "time", "completed")

    def __init__(self, process, f, value, time):
        self.process = process
        self.f = f
        self.value = value
        self.time = time
        self.completed = None

    def ok(self, value=None):
        """The operation took effect; ``value`` is its result (None: the invocation's value)."""
        _complete(self, "ok", self.value if value is None else value)

    def fail(self, error=None):
        """The operation certainly did not take effect; ``error`` says why."""
        _complete(self, "fail", self.value, error)

    def info(self, error=None):
        """The outcome is unknown (e.g. a timeout); ``error`` says why."""
        _complete(self, "info", self.value, error)

    def __repr__(self):
        return f"<history.Operation {self.process} {self.f} {self.value!r} {self.completed or 'pending'}>"


def _node():
    import splay
    job = splay.current_job()
    return None if job is None else job.position   # None: a plain script, not a node


def _process():
    global _threads_seen
    me = greenlet.getcurrent()
    name = _process_of.get(me)
    if name is None:
        _threads_seen += 1
        node = _node()
        name = f"{'x' if node is None else node}.{_threads_seen}"
        _process_of[me] = name
    return name


def _emit(record):
    try:
        text = json.dumps(record, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"history: the value of {record['f']!r} is not JSON data ({e}); "
                         f"record lists, dicts with string keys, strings, numbers, booleans "
                         f"or None") from None
    _writer.print(text)


def invoke(f, value=None):
    """Record that this thread invokes operation ``f`` with ``value``; returns the
    :class:`Operation` to complete. Raises ValueError when ``f`` is not a non-empty string, when
    ``value`` is not JSON data, or when this thread still has an operation pending."""
    if not isinstance(f, str) or not f:
        raise ValueError(f"history.invoke: the operation's name must be a non-empty string, "
                         f"not {f!r}")
    process = _process()
    pending = _pending.get(process)
    if pending is not None:
        raise ValueError(f"history.invoke: this thread ({process}) has {pending!r} pending; "
                         f"complete it (ok/fail/info) before invoking another operation, or "
                         f"invoke from another thread")
    op = Operation(process, f, value, misc.time())
    _emit({"process": process, "node": _node(), "type": "invoke", "f": f, "value": value,
           "time": op.time})
    _pending[process] = op
    return op


_pending = {}


def _complete(op, kind, value, error=None):
    if op.completed is not None:
        raise ValueError(f"history: {op!r} was already completed as {op.completed!r}")
    op.completed = kind
    _pending.pop(op.process, None)
    record = {"process": op.process, "node": _node(), "type": kind, "f": op.f, "value": value,
              "time": misc.time()}
    if error is not None:
        record["error"] = str(error)
    _emit(record)


def ok(op, value=None):
    """Complete ``op`` as done, with result ``value``."""
    op.ok(value)


def fail(op, error=None):
    """Complete ``op`` as certainly not done."""
    op.fail(error)


def info(op, error=None):
    """Complete ``op`` with an unknown outcome."""
    op.info(error)


class operation:
    """``with history.operation(f, value) as op:`` -- invokes on entry; an exception leaving the
    block completes the operation as ``info`` (its outcome is unknown) and propagates; leaving
    the block without completing it is an error (a history must say what happened)."""

    def __init__(self, f, value=None):
        self.f, self.value, self.op = f, value, None

    def __enter__(self):
        self.op = invoke(self.f, self.value)
        return self.op

    def __exit__(self, kind, error, tb):
        if self.op.completed is None:
            if kind is None:
                self.op.info("the block ended without ok/fail/info")
                raise ValueError(f"history.operation: the block ended without completing "
                                 f"{self.op.f!r}; call op.ok(...), op.fail() or op.info()")
            self.op.info(f"{kind.__name__}: {error}")
        return False


def extract(lines):
    """The history records found in log ``lines`` (an iterable of str), in order: every line that
    contains :data:`MARKER` followed by a JSON object. Lines whose record does not parse raise
    ValueError naming the line number."""
    records = []
    for number, line in enumerate(lines, 1):
        at = line.find(MARKER)
        if at < 0:
            continue
        text = line[at + len(MARKER):].strip()
        try:
            record = json.loads(text)
        except ValueError as e:
            raise ValueError(f"line {number}: a history record that is not JSON ({e}): "
                             f"{line.rstrip()[:200]}") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number}: a history record must be a JSON object")
        records.append(record)
    return records


def write_jsonl(records, path):
    """Write ``records`` as JSON lines to ``path`` (atomically: a temporary file renamed)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    os.replace(tmp, path)

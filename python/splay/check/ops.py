"""Histories as the checkers see them: records read from a file, paired into operations.

A *record* is one JSON object with ``process``, ``type`` (``invoke``, ``ok``, ``fail`` or
``info``), ``f``, ``value`` and ``time`` (optional: records are then ordered as given), written by
:mod:`splay.history`, by Maelstrom-style clients, or by hand. An *operation* pairs an invocation
with the completion that follows it on the same process. An invocation that is never completed
counts as ``info`` (unknown outcome), as Jepsen counts a client that crashed.
"""
import json
import math
from dataclasses import dataclass, field

from splay.history import extract

TYPES = ("invoke", "ok", "fail", "info")


class HistoryError(ValueError):
    """A history that cannot be read: says which record and what is wrong with it."""


@dataclass
class Op:
    """One operation: ``call`` and ``ret`` are times (``ret`` is ``math.inf`` for ``info``);
    ``value`` is the invocation's value, ``result`` the completion's (None when unknown)."""
    id: int
    process: str
    f: str
    value: object
    result: object
    status: str            # "ok", "fail" or "info"
    call: float
    ret: float
    node: object = None
    error: str = None
    extra: dict = field(default_factory=dict)

    @property
    def latency(self):
        """Seconds from invocation to completion; None for ``info`` operations."""
        return None if self.status == "info" else self.ret - self.call

    def describe(self):
        """``write(3) ok`` / ``read -> 5 ok`` / ``cas(1, 2) info``: one line for people."""
        args = "" if self.value is None else f"({_short(self.value)})"
        shown = ""
        if self.status == "ok" and self.result is not None and self.result != self.value:
            shown = f" -> {_short(self.result)}"
        return f"{self.process} {self.f}{args}{shown} {self.status}"

    def to_dict(self):
        """The operation as JSON data (``ret`` is None for an unknown completion time)."""
        return {"id": self.id, "process": self.process, "node": self.node, "f": self.f,
                "value": self.value, "result": self.result, "status": self.status,
                "call": self.call, "ret": None if math.isinf(self.ret) else self.ret,
                "error": self.error}


def _short(value, limit=60):
    text = json.dumps(value, separators=(",", ":"), default=repr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_records(path):
    """The records of the history file ``path``: JSON lines, a JSON array, or a log (the merged
    log of ``splay run``, ``splay logs`` output) whose history lines carry ``[history]``."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return parse_records(text, source=path)


def parse_records(text, source="history"):
    """The records in ``text`` (see :func:`read_records`)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        if stripped.startswith("[history]"):
            return extract(text.splitlines())
        try:
            records = json.loads(stripped)
        except ValueError as e:
            raise HistoryError(f"{source}: not a JSON array of records ({e})") from None
        if not isinstance(records, list):
            raise HistoryError(f"{source}: expected a JSON array of records")
        return records
    if "[history]" in text:
        return extract(text.splitlines())
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise HistoryError(f"{source}:{number}: not a JSON record ({e})") from None
    return records


def pair(records):
    """The operations of ``records``, in invocation order. Raises :class:`HistoryError` for a
    record that is not an object, has an unknown ``type`` or no ``process``/``f``, a completion
    with no pending invocation, or a second invocation on a process that has one pending."""
    pending = {}
    ops = []
    for index, r in enumerate(records):
        where = f"record {index + 1}"
        if not isinstance(r, dict):
            raise HistoryError(f"{where}: a record must be a JSON object, not {r!r}")
        kind = r.get("type")
        if kind not in TYPES:
            raise HistoryError(f"{where}: 'type' must be one of {', '.join(TYPES)}, not {kind!r}")
        if "process" not in r or r["process"] is None:
            raise HistoryError(f"{where}: no 'process'")
        process = str(r["process"])
        t = r.get("time", index)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t):
            raise HistoryError(f"{where}: 'time' must be a number, not {t!r}")
        if kind == "invoke":
            if not isinstance(r.get("f"), str):
                raise HistoryError(f"{where}: an invocation needs 'f', the operation's name")
            if process in pending:
                raise HistoryError(f"{where}: process {process} invokes {r['f']!r} while "
                                   f"{pending[process].f!r} (record {pending[process].extra['index'] + 1}) "
                                   f"is pending: a process has one operation at a time")
            op = Op(len(ops), process, r["f"], r.get("value"), None, "info", float(t), math.inf,
                    r.get("node"), extra={"index": index})
            pending[process] = op
            ops.append(op)
            continue
        op = pending.pop(process, None)
        if op is None:
            raise HistoryError(f"{where}: process {process} completes ({kind}) an operation it "
                               f"never invoked")
        if r.get("f") not in (None, op.f):
            raise HistoryError(f"{where}: process {process} completes {r.get('f')!r} but "
                               f"invoked {op.f!r}")
        op.status = kind
        op.error = r.get("error")
        if kind == "ok":
            op.result = r.get("value")
        if kind != "info":
            op.ret = max(float(t), op.call)
    return ops


def load(path_or_records):
    """The operations of a history: a file path, a text, or a list of records."""
    if isinstance(path_or_records, list):
        return pair(path_or_records)
    if isinstance(path_or_records, str) and "\n" not in path_or_records and \
            not path_or_records.lstrip().startswith(("{", "[")):
        return pair(read_records(path_or_records))
    return pair(parse_records(path_or_records))

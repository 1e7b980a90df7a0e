"""Checkers: is a history of client operations correct for a model?

``splay.check.check(model, history)`` (and ``splay check MODEL HISTORY`` on the command line)
reads a history (a file of JSON lines, a JSON array, a log holding ``[history]`` lines, or a list
of records -- see :mod:`splay.history`) and judges it:

============== ==============================================================================
model          what is checked
============== ==============================================================================
register       linearizability of one read/write/cas register
kv, lin-kv     linearizability of a map of registers, key by key
set, broadcast every acknowledged element read by all at the end; nothing invented
counter        every read within the bounds of the adds around it
g-counter      each node's final read within those bounds (adds never negative)
pn-counter     the same, adds of any sign
log, kafka     offsets unique, no acknowledged write lost, one order agreed
list-append    transactions over lists: no G0, G1a, G1b, G1c, G2 (Elle's anomalies)
echo           every answer repeats its request
unique-ids     no identifier handed out twice
============== ==============================================================================

The answer is a :class:`~splay.check.result.Result`: ``valid`` is ``"valid"``, ``"invalid"`` or
``"unknown"`` (a linearizability search that hit ``max_steps``), with counts, latency
percentiles per operation, anomalies and, for linearizability, a reduced counterexample;
``result.text()`` reports it for people and :func:`splay.check.timeline.write` draws it.
"""
from . import counters, linearizable, list_append, log_order, sets, simple
from .ops import HistoryError, Op, load
from .result import INVALID, UNKNOWN, VALID, Result

__all__ = ["check", "load", "MODELS", "Result", "HistoryError", "Op", "VALID", "INVALID", "UNKNOWN"]

MODELS = {
    "register": lambda ops, **kw: linearizable.check(ops, "register", **kw),
    "kv": lambda ops, **kw: linearizable.check(ops, "kv", **kw),
    "lin-kv": lambda ops, **kw: linearizable.check(ops, "lin-kv", **kw),
    "set": lambda ops, **kw: sets.check(ops, "set"),
    "broadcast": lambda ops, **kw: sets.check(ops, "broadcast"),
    "counter": lambda ops, **kw: counters.check(ops, "counter"),
    "g-counter": lambda ops, **kw: counters.check(ops, "g-counter"),
    "pn-counter": lambda ops, **kw: counters.check(ops, "pn-counter"),
    "log": lambda ops, **kw: log_order.check(ops, "log"),
    "kafka": lambda ops, **kw: log_order.check(ops, "kafka"),
    "list-append": lambda ops, **kw: list_append.check(ops, "list-append"),
    "echo": lambda ops, **kw: simple.echo(ops),
    "unique-ids": lambda ops, **kw: simple.unique_ids(ops),
}


def check(model, history, **options):
    """Judge ``history`` (a path, a text, a list of records, or a list of :class:`Op`) against
    ``model`` (a name of :data:`MODELS`). Options: ``max_steps`` (linearizability search
    bound), ``minimise`` (reduce the counterexample, default True). Raises ValueError for an
    unknown model and :class:`HistoryError` for a history that cannot be read."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
    ops = history if isinstance(history, list) and all(isinstance(o, Op) for o in history) \
        and history else load(history if history else [])
    return MODELS[model](ops, **options)

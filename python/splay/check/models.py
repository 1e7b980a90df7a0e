"""Sequential models for the linearizability checker: a register and a key-value map of registers.

A model is a state machine: :meth:`Register.step` says whether an operation, applied to a
state, could have produced the result the client saw, and the state after it. States must be
hashable (the search memoises ``(operations done, state)`` pairs), so JSON lists become tuples.

Operations of a register (``value`` of the invocation / ``value`` of the ``ok`` completion):

* ``read``  -- value None            / the value read
* ``write`` -- the value to write    / anything
* ``cas``   -- ``[from, to]``        / anything (a refused cas is a ``fail``: it did nothing)

A key-value map (``kv``) takes the same operations with the key in front: ``[key, v]``,
``[key, [from, to]]`` (Jepsen's "independent" tuples), or the fields of Maelstrom's ``lin-kv``
messages: ``{"key": k, "value": v}`` and ``{"key": k, "from": a, "to": b}``. The map is checked
one key at a time (linearizability is compositional), each key as a register that starts
empty (None).
"""
from .ops import HistoryError


def freeze(value):
    """``value`` as a hashable equal-comparing object (lists become tuples, dicts sorted tuples)."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return ("__dict__",) + tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


class Register:
    """A single read/write/compare-and-set register, initially ``initial``."""

    name = "register"
    functions = ("read", "write", "cas")

    def __init__(self, initial=None):
        self.initial = freeze(initial)

    def init(self):
        """The state before any operation."""
        return self.initial

    def check_op(self, op):
        """Raise HistoryError when ``op`` is not an operation of this model."""
        if op.f not in self.functions:
            raise HistoryError(f"operation {op.id} ({op.describe()}): a {self.name} has "
                               f"{', '.join(self.functions)}, not {op.f!r}")
        if op.f == "cas" and (not isinstance(op.value, (list, tuple)) or len(op.value) != 2):
            raise HistoryError(f"operation {op.id} ({op.describe()}): cas takes [from, to]")

    def constrains(self, op):
        """False for operations whose presence tells nothing (a read of unknown outcome)."""
        return not (op.f == "read" and op.status != "ok")

    def step(self, state, op):
        """``(possible, new_state)``: could ``op`` have happened in ``state``, and what then."""
        f = op.f
        if f == "read":
            return freeze(op.result) == state, state
        if f == "write":
            return True, freeze(op.value)
        old, new = op.value
        if freeze(old) == state:
            return True, freeze(new)
        return False, state


def kv_key_and_op(op):
    """``(key, value, result)`` of a key-value operation, in register form."""
    value, result = op.value, op.result
    if isinstance(value, dict):
        if "key" not in value:
            raise HistoryError(f"operation {op.id} ({op.describe()}): no 'key'")
        key = value["key"]
        if op.f == "cas":
            arg = [value.get("from"), value.get("to")]
        elif op.f == "write":
            arg = value.get("value")
        else:
            arg = None
        if isinstance(result, dict):
            result = result.get("value")
        return freeze(key), arg, result
    if isinstance(value, (list, tuple)) and len(value) == 2:
        key, arg = value
        if isinstance(result, (list, tuple)) and len(result) == 2 and freeze(result[0]) == freeze(key):
            result = result[1]
        return freeze(key), arg, result
    raise HistoryError(f"operation {op.id} ({op.describe()}): a key-value operation's value is "
                       f"[key, value] or {{\"key\": ..., ...}}, not {value!r}")


MODELS = {"register": Register, "kv": Register, "lin-kv": Register}

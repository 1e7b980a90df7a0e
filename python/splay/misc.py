"""splay.misc: the manual's grab-bag of helpers, in Python form.

Lua tables become Python containers: an array is a ``list`` (0-based) or ``tuple``, a hash table a
``dict``. ``None`` plays Lua's ``nil``: a list item or dict value that is ``None`` counts as a hole
(``size``, ``isize``, ``table_keyset``). ``try`` is a Python keyword, so the manual's ``misc.try`` is
:func:`try_` (``getattr(misc, "try")`` also works). docs/misc-log.md lists every choice.
"""
import random as _random

from splay.faults import clock as _node_clock

from splayc.errors import SplayError

from . import log as _log

__all__ = ["dup", "equal", "equals", "split", "size", "isize", "random_pick", "shuffle", "time",
           "between_c", "gen_string", "merge", "hash_ascii_to_byte", "assert_object",
           "assert_function", "convert_base", "table_keyset", "try_", "throw", "Thrown", "empty"]

l_o = _log.module_logger("misc")


def dup(e):
    """A deep copy of ``e``: dicts, lists, tuples and sets are copied recursively (shared and
    cyclic parts stay shared/cyclic in the copy); other values are returned as they are.

    >>> a = {"s": "hello"}
    >>> b = dup(a); b["s"] = "world"; a["s"]
    'hello'
    """
    return _dup(e, {})


def _dup(e, memo):
    t = type(e)
    if t not in (dict, list, tuple, set):
        return e
    if id(e) in memo:
        return memo[id(e)]
    if t is dict:
        out = {}
        memo[id(e)] = out
        for k, v in e.items():
            out[_dup(k, memo)] = _dup(v, memo)
        return out
    if t is list:
        out = []
        memo[id(e)] = out
        out.extend(_dup(v, memo) for v in e)
        return out
    if t is set:
        out = set()
        memo[id(e)] = out
        out.update(_dup(v, memo) for v in e)
        return out
    out = tuple(_dup(v, memo) for v in e)
    memo[id(e)] = out
    return out


def equal(o1, o2):
    """Recursive comparison: containers are equal when their contents are (a list and a tuple
    with the same items are equal, as two Lua arrays would be); other values compare with ``==``.
    """
    if isinstance(o1, dict) and isinstance(o2, dict):
        if len(o1) != len(o2):
            return False
        return all(k in o2 and equal(v, o2[k]) for k, v in o1.items())
    if isinstance(o1, (list, tuple)) and isinstance(o2, (list, tuple)):
        return len(o1) == len(o2) and all(equal(a, b) for a, b in zip(o1, o2))
    if isinstance(o1, (dict, list, tuple)) or isinstance(o2, (dict, list, tuple)):
        return False
    return o1 == o2


equals = equal


def split(s, sep=" "):
    """Split ``s`` (str or bytes) on any of the characters of ``sep``, dropping empty pieces.

    Like the Lua version (which matches ``[^sep]+``), ``sep`` is a set of separator characters.

    >>> split("a,b;;c", ",;")
    ['a', 'b', 'c']
    """
    if not sep:
        raise ValueError("split needs at least one separator character")
    if isinstance(s, bytes):
        seps = {sep[i:i + 1] for i in range(len(sep))} if isinstance(sep, bytes) else {
            c.encode() for c in sep}
        pieces, current = [], bytearray()
        for i in range(len(s)):
            ch = s[i:i + 1]
            if ch in seps:
                if current:
                    pieces.append(bytes(current))
                    current = bytearray()
            else:
                current += ch
        if current:
            pieces.append(bytes(current))
        return pieces
    first = sep[0]
    for c in sep[1:]:
        s = s.replace(c, first)
    return [p for p in s.split(first) if p]


def _values(t):
    if isinstance(t, dict):
        return t.values()
    return t


def size(t):
    """Number of elements of a table: dict entries or list items that are not ``None`` (a
    ``None`` is a hole, like Lua's nil). For a list without ``None`` this is ``len(t)``.
    """
    return sum(1 for v in _values(t) if v is not None)


def isize(t):
    """The highest numerical index in Lua terms: for a list, the position (1-based) of its last
    non-``None`` item; for a dict, its largest integer key (0 when it has none).

    >>> isize(["a", None, "c"]), size(["a", None, "c"])
    (3, 2)
    """
    if isinstance(t, dict):
        keys = [k for k, v in t.items()
                if isinstance(k, (int, float)) and not isinstance(k, bool) and v is not None]
        return max(keys, default=0)
    for i in range(len(t) - 1, -1, -1):
        if t[i] is not None:
            return i + 1
    return 0


def table_keyset(t):
    """The keys that map to a non-``None`` value (for a list: the indices of its items)."""
    if isinstance(t, dict):
        return [k for k, v in t.items() if v is not None]
    return [i for i, v in enumerate(t) if v is not None]


def empty(t):
    """True when the table has no element."""
    return size(t) == 0


def random_pick(t, n=None):
    """Pick randomly from the sequence ``t``: one element (``None`` when ``t`` is empty) when
    ``n`` is omitted, else a list of ``min(n, len(t))`` elements at distinct positions.
    """
    items = list(t.values()) if isinstance(t, dict) else t
    if n is None:
        if len(items) == 0:
            return None
        return items[_random.randrange(len(items))]
    if n < 0:
        raise ValueError(f"cannot pick a negative number of elements ({n})")
    return _random.sample(list(items), min(n, len(items)))


def shuffle(a):
    """A new list with the elements of ``a`` in random order (``a`` is not changed)."""
    return _random.sample(list(a), len(a))


def time():
    """The UNIX time in seconds, as a float with microsecond resolution (the node's clock: a
    ``skew`` or ``drift`` fault moves it, see splay.faults.clock; in a simulation its base is the
    virtual seconds since the start, see splay.sim.clock)."""
    return _node_clock.now()


def between_c(i, a, b):
    """Circular open interval test (clockwise on a ring, as Chord uses it): is ``i`` strictly
    between ``a`` and ``b``? When ``b < a`` the interval wraps around zero. As in SPLAY, the
    interval ``(a, a)`` is empty: ``between_c(i, a, a)`` is always False.

    >>> between_c(5, 2, 8), between_c(1, 8, 2), between_c(8, 2, 8)
    (True, True, False)
    """
    if b >= a:
        return a < i < b
    return i > a or i < b


def gen_string(mult, string="a"):
    """``string`` repeated ``mult`` times (default: ``mult`` letters 'a'). As in SPLAY, the
    arguments may also be given the other way round (``gen_string("ab", 3)``).
    """
    if isinstance(mult, (str, bytes)):
        mult, string = string, mult
    if not isinstance(mult, int) or mult < 0:
        raise ValueError(f"gen_string needs a count >= 0, got {mult!r}")
    return string * mult


def _merge2(t1, t2):
    if not t1 and not t2:
        return t1 if t1 is not None else t2
    if not t1:
        return _dup(t2, {})
    if not t2:
        return _dup(t1, {})
    if isinstance(t1, (list, tuple)) and isinstance(t2, (list, tuple)):
        return list(t1) + list(t2)
    d1 = t1 if isinstance(t1, dict) else dict(enumerate(t1))
    d2 = t2 if isinstance(t2, dict) else dict(enumerate(t2))
    out = dict(d2)
    out.update(d1)         # the first table wins on collisions
    return out


def merge(t1, t2, *more):
    """Merge tables two by two from the left, into a new table.

    Two arrays (lists/tuples) are concatenated. Otherwise the merge is by key, the first table
    winning on collisions (a list takes part with its 0-based indices as keys). ``None`` or an
    empty table leaves the other one (copied).

    >>> merge([1, 2], [3]), merge({"a": 1}, {"a": 2, "b": 3})
    ([1, 2, 3], {'a': 1, 'b': 3})
    """
    result = _merge2(t1, t2)
    for t in more:
        result = _merge2(result, t)
    return result


def hash_ascii_to_byte(s):
    """Bytes from a hexadecimal string (half as long): ``"41ff"`` -> ``b"A\\xff"``."""
    if isinstance(s, bytes):
        s = s.decode("ascii")
    if len(s) % 2:
        raise ValueError(f"a hexadecimal hash has an even number of digits, got {len(s)}")
    return bytes.fromhex(s)


def _checked(result, what):
    # Lua's assert(f(...)): fail when the first result is false/nil, with the second as message.
    first = result[0] if isinstance(result, tuple) and result else result
    if first is None or first is False:
        message = result[1] if isinstance(result, tuple) and len(result) > 1 else None
        raise AssertionError(message if message is not None else f"assertion failed: {what} "
                             f"returned {result!r}")
    return result


def assert_function(func):
    """A function that calls ``func`` and raises ``AssertionError`` when it returns ``None`` or
    ``False`` (or a tuple whose first item is; the second item is then the message, as in
    ``None, "error"``). Otherwise it returns what ``func`` returned.
    """
    name = getattr(func, "__name__", repr(func))

    def checked(*args, **kwargs):
        return _checked(func(*args, **kwargs), name)
    checked.__name__ = f"assert_{name}"
    checked.__doc__ = func.__doc__
    return checked


class _AssertingProxy:
    __slots__ = ("_wrapped",)

    def __init__(self, wrapped):
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name):
        value = getattr(self._wrapped, name)
        if callable(value):
            return assert_function(value)
        return value

    def __setattr__(self, name, value):
        setattr(self._wrapped, name, value)

    def __repr__(self):
        return f"<assert_object of {self._wrapped!r}>"


def assert_object(obj):
    """A proxy of ``obj`` whose method calls go through :func:`assert_function` (a call that
    returns ``None``/``False`` raises ``AssertionError``); other attributes read through.
    """
    return _AssertingProxy(obj)


_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def convert_base(value, b1=10, b2=16):
    """Convert ``value`` (a str or an int) from base ``b1`` (default 10) to a string in base
    ``b2`` (default 16), digits ``0-9A-Z``; bases 2 to 36.

    >>> convert_base(255), convert_base("ff", 16, 2), convert_base("Z", 36, 10)
    ('FF', '11111111', '35')
    """
    for b in (b1, b2):
        if not isinstance(b, int) or not 2 <= b <= 36:
            raise ValueError(f"bases go from 2 to 36, got {b!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        number = value if b1 == 10 else int(str(value), b1)
    else:
        number = int(str(value).strip(), b1)
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    number = abs(number)
    digits = []
    while number:
        number, d = divmod(number, b2)
        digits.append(_DIGITS[d])
    return sign + "".join(reversed(digits))


class Thrown(SplayError):
    """The exception :func:`throw` raises: it carries the exception ``name`` and its ``value``."""

    def __init__(self, name, value=None):
        super().__init__(f"{name}: {value!r}" if value is not None else str(name))
        self.name = name
        self.value = value


def throw(name, value=None):
    """Raise the named exception ``name`` with ``value``, to be caught by :func:`try_`."""
    raise Thrown(name, value)


def try_(f, catch=None, finally_=None):
    """Run ``f()``; exceptions go to the matching handler of ``catch``; ``finally_()`` always runs.

    ``catch`` maps names given to :func:`throw` to handlers called with the thrown value; it may
    also map Python exception classes to handlers called with the exception, and a callable
    ``catch`` receives ``(name, value)`` for every thrown exception. An exception without a handler
    propagates (as in SPLAY). Returns ``f()``'s result, or the handler's.

    >>> try_(lambda: throw("runtime", "division by 0"),
    ...      {"runtime": lambda value: f"*runtime* {value}"})
    '*runtime* division by 0'
    """
    try:
        return f()
    except Thrown as exc:
        if callable(catch):
            return catch(exc.name, exc.value)
        if catch:
            if exc.name in catch:
                return catch[exc.name](exc.value)
            for key, handler in catch.items():
                if isinstance(key, type) and isinstance(exc, key):
                    return handler(exc)
        raise
    except Exception as exc:
        if isinstance(catch, dict):
            for key, handler in catch.items():
                if isinstance(key, type) and isinstance(exc, key):
                    return handler(exc)
        raise
    finally:
        if finally_ is not None:
            finally_()


globals()["try"] = try_     # the manual's name, reachable as getattr(misc, "try")

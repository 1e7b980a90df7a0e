"""Resolving the name of a remote call in the application namespace, without ``eval``.

A call names its target with a path: ``"f"``, ``"obj.method"``, ``"table['key']"``, ``'t["k"]'``,
``"lst[0]"``, or any chain of them (``"a.b[2].c"``). A dot on a dict looks up that key, as on a Lua
table (``"var3.key"`` is ``var3["key"]``); on any other object it reads the attribute.

What can never be reached, whatever the path:

* any name or key that starts with ``_`` (so no dunder walks: ``f.__globals__``, ``__builtins__``);
* module objects, and anything reached through them (``os.system`` with ``import os``);
* functions implemented in C that the application imported (``from os import system``),
  builtins (``open``, ``eval``, ``__import__`` are not in the namespace anyway) and classes;
* in the default namespace (the application's module), Python functions and methods the
  application imported from elsewhere (``from shutil import rmtree``, ``Path(".").unlink``): only
  functions and methods it defines itself are served;
* C-level method objects (``"abc".upper``, ``[].append``, slot wrappers and descriptors);
* anything outside the namespace (there is no way to name it).

A missing name reads as ``None``.
"""
import re
import types

__all__ = ["NameError_", "parse_path", "resolve", "MISSING"]


class NameError_(ValueError):
    """A call name that cannot be parsed, or that names something unreachable."""


#: Returned by :func:`resolve` when a step of the path does not exist.
MISSING = object()

_TOKEN = re.compile(r"""
      (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | \[\s*(?P<int>-?\d+)\s*\]
    | \[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]
    | \[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]
    | (?P<dot>\.)
""", re.VERBOSE)

_cache = {}

_UNREACHABLE_TYPES = (types.ModuleType, types.BuiltinFunctionType, type,
                      types.MethodDescriptorType, types.WrapperDescriptorType,
                      types.MethodWrapperType, types.ClassMethodDescriptorType,
                      types.GetSetDescriptorType, types.MemberDescriptorType)


def parse_path(name):
    """Split a call name into steps: ``[("name", "a"), ("key", "k"), ("index", 0), ...]``.

    Raises :class:`NameError_` naming the position of the first character it cannot read.
    """
    if not isinstance(name, str) or not name:
        raise NameError_(f"a call name must be a non-empty string, got {name!r:.100}")
    steps = _cache.get(name)
    if steps is not None:
        return steps
    steps = []
    pos = 0
    expect_name = True          # at the start and after a dot, an identifier must follow
    while pos < len(name):
        m = _TOKEN.match(name, pos)
        if m is None:
            raise NameError_(f"cannot read call name {name!r} at position {pos}: expected a name, "
                             f"'.name', [index] or ['key']")
        kind = m.lastgroup
        if kind == "ident":
            if not expect_name:
                raise NameError_(f"cannot read call name {name!r} at position {pos}: missing '.'")
            steps.append(("name", m.group("ident")))
            expect_name = False
        elif kind == "dot":
            if expect_name:
                raise NameError_(f"cannot read call name {name!r} at position {pos}: unexpected '.'")
            expect_name = True
        else:
            if expect_name:
                raise NameError_(f"cannot read call name {name!r} at position {pos}: "
                                 f"an index must follow a name")
            if kind == "int":
                steps.append(("index", int(m.group("int"))))
            else:
                raw = m.group(kind)
                steps.append(("key", re.sub(r"\\(.)", r"\1", raw)))
        pos = m.end()
    if expect_name:
        raise NameError_(f"cannot read call name {name!r}: it ends with '.'")
    steps = tuple(steps)
    if len(_cache) < 4096:
        _cache[name] = steps
    return steps


def _check_reachable(value, name):
    if isinstance(value, _UNREACHABLE_TYPES):
        raise NameError_(f"{name!r} is not reachable by remote calls "
                         f"(modules, C functions and classes never are)")
    return value


def resolve(namespace, name, own_module=None):
    """The object ``name`` designates in ``namespace`` (a dict, or an object's attributes).

    With ``own_module``, a Python function reached must have been defined in that module.
    Returns :data:`MISSING` when a step does not exist; raises :class:`NameError_` when the name
    is malformed or designates something unreachable.
    """
    steps = parse_path(name)
    cur = namespace
    for kind, step in steps:
        if isinstance(step, str) and step.startswith("_"):
            raise NameError_(f"{name!r} is not reachable by remote calls (names starting with '_' "
                             f"never are)")
        if kind == "index":
            if isinstance(cur, (list, tuple)):
                if -len(cur) <= step < len(cur):
                    cur = cur[step]
                else:
                    return MISSING
            elif isinstance(cur, dict):
                if step not in cur:
                    return MISSING
                cur = cur[step]
            else:
                return MISSING
        elif isinstance(cur, dict):
            if step not in cur:
                return MISSING
            cur = cur[step]
        else:
            try:
                cur = getattr(cur, step)
            except AttributeError:
                return MISSING
        _check_reachable(cur, name)
    if own_module is not None:
        func = cur.__func__ if isinstance(cur, types.MethodType) else cur
        if isinstance(func, types.FunctionType) and func.__module__ != own_module:
            raise NameError_(f"{name!r} is not reachable by remote calls: it was defined in "
                             f"{func.__module__!r}, and only the application's own functions "
                             f"are served")
    return cur

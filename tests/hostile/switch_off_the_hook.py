"""Hostile job: walk everything a refusal's traceback reaches and try to switch the audit hook off.

A Python hook leaves its frame in the traceback of every refusal: its locals, its closures' cells
and bound methods of its tables (``dict.get.__self__``) are then the job's to clear. This job
walks every frame of the traceback (through ``traceback.walk_tb``, as a library would) and their
callers, every local and global of those frames, every closure cell, ``__self__``, ``__dict__``,
``__func__`` and container it finds, and sabotages what belongs to the sandbox: it empties dicts,
sets cells to None and rebinds attributes. Then it tries what the hook refuses; each attempt
must still be refused.
"""
import builtins
import sys
import traceback
import types

SANDBOX_FILES = ("/splay/sandbox/", "splayc/", "audit_hook")
SANDBOX_MODULES = ("splay.sandbox", "splayc")


def belongs_to_sandbox(obj):
    """An object defined by the sandbox's code (what sabotage aims at)."""
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType) and any(part in code.co_filename for part in SANDBOX_FILES):
        return True
    module = getattr(type(obj), "__module__", "") or ""
    return any(part in module for part in SANDBOX_MODULES)


def reachable_from(error):
    """Every object reached from the refusal, breadth first (bounded)."""
    seen, found = set(), []
    todo = [error, error.__traceback__, error.__context__, error.__cause__]
    todo += [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    while todo and len(found) < 50000:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen or isinstance(obj, (str, bytes, int, float, types.ModuleType)):
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, types.FrameType):
            todo += [obj.f_back, obj.f_locals]
            if any(part in obj.f_code.co_filename for part in SANDBOX_FILES):
                todo.append(obj.f_globals)
        elif isinstance(obj, dict):
            try:
                todo += list(obj.values())
            except Exception:           # a guarded mapping (the emptied os.environ) refuses
                pass
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo += list(obj)
        elif isinstance(obj, types.CellType):
            try:
                todo.append(obj.cell_contents)
            except ValueError:
                pass
        else:
            for name in ("__closure__", "__self__", "__func__", "__dict__", "__wrapped__", "__defaults__",
                         "__kwdefaults__", "__globals__"):
                try:
                    todo.append(getattr(obj, name))
                except Exception:
                    pass
    return found


def sabotage(objects):
    """Empty, unset and rebind whatever of the sandbox was reached; returns what was changed."""
    changed = {"frames": 0, "dicts": 0, "cells": 0, "attributes": 0}
    for obj in objects:
        if isinstance(obj, types.FrameType):
            changed["frames"] += 1
            if "audit" in obj.f_code.co_filename:        # the hook's frames, if any
                obj.f_locals.clear()
                for name in list(obj.f_globals):
                    if not name.startswith("__"):
                        obj.f_globals[name] = None
                        changed["attributes"] += 1
        elif isinstance(obj, types.CellType):
            try:
                obj.cell_contents = None
                changed["cells"] += 1
            except Exception:
                pass
        elif isinstance(obj, dict) and obj is not builtins.__dict__ and obj is not sys.modules \
                and obj is not globals():
            try:
                values = list(obj.values())
            except Exception:           # a guarded mapping (the emptied os.environ) refuses
                continue
            if any(belongs_to_sandbox(value) for value in values):
                obj.clear()
                changed["dicts"] += 1
        elif belongs_to_sandbox(obj) and hasattr(obj, "__dict__"):
            for name in list(vars(obj)):
                try:
                    setattr(obj, name, None)
                    changed["attributes"] += 1
                except Exception:
                    pass
    return changed


try:
    open("/etc/passwd")
except PermissionError as refusal:
    print("first refusal:", refusal, flush=True)
    objects = reachable_from(refusal)
    changed = sabotage(objects)
    print("walked", len(objects), "objects; sandbox frames:",
          sorted({frame.f_code.co_filename.rsplit("/", 1)[-1] for frame in objects
                  if isinstance(frame, types.FrameType) and "audit" in frame.f_code.co_filename}), flush=True)
    print("sabotaged:", changed, flush=True)

for name, attempt in (("eval", lambda: eval("6 * 7")),
                      ("exec", lambda: exec("x = 1")),
                      ("import ctypes", lambda: __import__("ctypes")),
                      ("AF_INET socket", lambda: __import__("socket").socket(2, 1)),
                      ("read /etc/passwd", lambda: open("/etc/passwd").read(10))):
    try:
        print(name, "ESCAPED:", attempt(), flush=True)
    except Exception as error:      # a refusal, whatever its class after the sabotage
        print(name, "refused:", str(error).split(":")[0], flush=True)

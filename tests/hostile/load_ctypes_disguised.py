"""Hostile job: load ``_ctypes`` from its file under a harmless-looking package name.

An extension module's init function is found by the last part of the name it is loaded as, so
``innocent._ctypes`` initialises the real ``_ctypes``: the import check must look at that part,
not only at the top-level package.
"""
import importlib.machinery
import importlib.util
import os

directory = os.path.dirname(importlib.machinery.PathFinder.find_spec("_json").origin)   # lib-dynload
for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    path = os.path.join(directory, "_ctypes" + suffix)
    if os.path.exists(path):
        break
spec = importlib.util.spec_from_file_location("innocent._ctypes", path)
native = importlib.util.module_from_spec(spec)          # refused: the sandbox must stop the job here
print("escaped: loaded", native, native.Union)

"""Hostile job: load native code it wrote itself, as an extension module in its own directory.

A job may write any bytes in its directory, a compiled module included; once loaded, native code
can switch the audit hook off. The job copies an innocent extension of the Python installation
(standing in for code of its own) and loads it from there.
"""
import importlib.machinery
import importlib.util
import os

origin = importlib.machinery.PathFinder.find_spec("_json").origin
copy = os.path.join(os.getcwd(), os.path.basename(origin))
with open(origin, "rb") as source, open(copy, "wb") as target:
    target.write(source.read())
print("wrote", os.path.basename(copy), flush=True)
spec = importlib.util.spec_from_file_location("_json", copy)
native = importlib.util.module_from_spec(spec)          # refused: the sandbox must stop the job here
print("escaped: loaded", native)

"""Hostile job: find __import__ through a function's __globals__ and load ctypes with it."""
import json
importer = json.dumps.__globals__["__builtins__"]["__import__"]
importer("ctypes").CDLL(None)

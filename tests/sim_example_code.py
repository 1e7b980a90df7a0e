"""The code object of an example for tests/sim_checked_example.py, compiled once per process.

sim_checked_example.py is executed afresh for every node of a simulation (it is the application
module); this module is imported normally, so the nodes of one process share what it holds.
Compiling the example in each node cost a parse per node: about 1.5 ms, minutes at 100,000 nodes.
"""
import functools


@functools.lru_cache(maxsize=None)
def compiled(path):
    """The code object of the Python file ``path`` (read and compiled at the first call)."""
    with open(path, encoding="utf-8") as f:
        return compile(f.read(), path, "exec")

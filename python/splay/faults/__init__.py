"""Fault timelines: ``--faults FILE`` on ``splay run`` and ``splay submit`` (docs/faults.md).

- :mod:`splay.faults.lang`: the file's language (``pause 3 at 10s for 5s``), errors with file:line;
- :mod:`splay.faults.random_faults`: faults drawn from a seed;
- :mod:`splay.faults.schedule`: every fault's begin and end on one timeline.
"""
from .errors import FaultError
from .lang import Fault, FaultTimeline, RandomFaults, load_faults, parse_faults
from .schedule import Action, actions

__all__ = ["FaultError", "Fault", "FaultTimeline", "RandomFaults", "load_faults", "parse_faults",
           "Action", "actions"]

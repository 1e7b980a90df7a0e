"""Fault timelines: ``--faults FILE`` on ``splay run`` and ``splay submit`` (docs/faults.md).

- :mod:`splay.faults.lang`: the file's language (``pause 3 at 10s for 5s``), errors with file:line;
- :mod:`splay.faults.random_faults`: faults drawn from a seed (``random seed 7 every 10s ...``);
- :mod:`splay.faults.schedule`: every fault's begin and end on one timeline, in time order;
- :mod:`splay.faults.engine`: applies the timeline on time through the effects of one place;
- :mod:`splay.faults.clock`: the node's clock (skew, drift) behind ``misc.time`` and ``time.time``;
- :mod:`splay.faults.slow`: the duty cycle of ``slow``;
- :mod:`splay.faults.inside`: partitions, clocks and message faults inside a node's process;
- :mod:`splay.faults.local`: ``splay run``'s launcher (node processes, the run's log and data);
- :mod:`splay.faults.host`: the host process of ``--in-process`` nodes;
- :mod:`splay.faults.deployed`: ``splay submit`` (the controller and the daemons).
"""
from .errors import FaultError
from .lang import Fault, FaultTimeline, RandomFaults, load_faults, parse_faults
from .schedule import Action, actions

__all__ = ["FaultError", "Fault", "FaultTimeline", "RandomFaults", "load_faults", "parse_faults",
           "Action", "actions"]

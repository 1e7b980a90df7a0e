"""One worker of ``splay run --in-process --workers K``: some of the run's nodes over one scheduler.

``python -m splay.launch.workers_host APP.py [args...]`` is started by the launcher (see
:mod:`splay.launch.workers`) with ``SPLAY_JOBS_FILE`` naming the jobs of *its* nodes. It runs them
exactly as :mod:`splay.launch.in_process` runs all the nodes of a one-process run -- same node
objects, same ``splay.job`` view, same failure reports -- with two differences:

- each node is numbered by its job's position (node 7 of the run is ``[node 7]`` whichever worker
  hosts it);
- every line it sends the launcher starts with the ``CLOCK_MONOTONIC`` time it was written at,
  ``STAMP nanoseconds STAMP record``: the launcher merges the workers' lines in that order (see
  :class:`splay.launch.workers_output.WorkersMux`), so a line written before another, on any
  worker, comes first in the merged log.

With ``SPLAY_OWN_ADDRESS=1`` (nodes on several loopback addresses) a server a node opens on
"every interface" listens on the node's own address (:data:`splay.node.wildcard_is_own_address`).
The worker raises its open-file limit to the hard limit (each node holds at least its listening
socket). Exit status: that of :func:`splay.launch.in_process.main`.
"""
import os
import sys
import time

from .in_process import NodeTaggedOutput
from .in_process import main as in_process_main
from .processes import raise_fd_limit

__all__ = ["StampedOutput", "main", "STAMP", "OWN_ADDRESS_ENV"]

#: Starts and ends the write time of a worker's line: STAMP + nanoseconds + STAMP + record.
STAMP = "\x1c"
#: Environment variable: "1" when the run's nodes listen on several loopback addresses.
OWN_ADDRESS_ENV = "SPLAY_OWN_ADDRESS"


class StampedOutput(NodeTaggedOutput):
    """The worker's ``sys.stdout``/``sys.stderr``: node-tagged lines, each with its write time."""

    def write_raw(self, text):
        """Write ``text`` (one record and its newline) after the current monotonic time."""
        super().write_raw(f"{STAMP}{time.monotonic_ns()}{STAMP}{text}")


def main(argv=None):
    """Run this worker's nodes; returns the exit status."""
    raise_fd_limit()
    if os.environ.get(OWN_ADDRESS_ENV) == "1":
        import splay.node
        splay.node.wildcard_is_own_address = True
    return in_process_main(argv, output_class=StampedOutput, by_position=True)


if __name__ == "__main__":
    sys.exit(main())

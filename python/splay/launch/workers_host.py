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

Under ``--churn`` and ``--faults`` the worker starts and stops its own nodes (:class:`WorkerHost`):
its share of the churn trace (the launcher writes each worker a trace where the others' nodes are
never up), replayed from a start common to every worker -- the worker announces
``CONTROL {"churn": "ready"}`` and waits for ``go T0`` on its stdin, ``T0`` a ``CLOCK_MONOTONIC``
reading in nanoseconds -- and every fault of the timeline that touches its nodes. It does not
write the nodes file itself (it knows only its own nodes): each change is sent to the launcher as
``CONTROL {"alive": {"up": [...], "down": [...]}}`` and the launcher rewrites the file.

With ``SPLAY_OWN_ADDRESS=1`` (nodes on several loopback addresses) a server a node opens on
"every interface" listens on the node's own address (:data:`splay.node.wildcard_is_own_address`).
The worker raises its open-file limit to the hard limit (each node holds at least its listening
socket). Exit status: that of :func:`splay.launch.in_process.main`.
"""
import os
import sys
import time

from .in_process import HostChurn, NodeTaggedOutput
from .in_process import main as in_process_main
from .fd_limits import raise_to_hard

__all__ = ["StampedOutput", "WorkerHost", "main", "read_start", "STAMP", "OWN_ADDRESS_ENV"]

#: Starts and ends the write time of a worker's line: STAMP + nanoseconds + STAMP + record.
STAMP = "\x1c"
#: Environment variable: "1" when the run's nodes listen on several loopback addresses.
OWN_ADDRESS_ENV = "SPLAY_OWN_ADDRESS"


class StampedOutput(NodeTaggedOutput):
    """The worker's ``sys.stdout``/``sys.stderr``: node-tagged lines, each with its write time."""

    def write_raw(self, text):
        """Write ``text`` (one record and its newline) after the current monotonic time."""
        super().write_raw(f"{STAMP}{time.monotonic_ns()}{STAMP}{text}")


class WorkerHost(HostChurn):
    """The nodes of this worker under churn and faults: started, stopped and listed as
    :class:`~splay.launch.in_process.HostChurn` does, but the changes of the list go to the
    launcher, which writes the nodes file of every worker's nodes."""

    knows_every_node = False        # its nodes read the launcher's file, not this worker's list

    def __init__(self, out, jobs, app_path, source):
        super().__init__(out, jobs, app_path, source)
        self.listed = set()         # the positions the launcher was last told are up
        self.t0 = None              # the common t = 0 the launcher gave

    def write_nodes_file(self):
        """Tell the launcher which of this worker's nodes came up or went down since last time."""
        up = set(self.running)
        came, went = sorted(up - self.listed), sorted(self.listed - up)
        self.listed = up
        if came or went:
            self.report({"alive": {"up": came, "down": went}})

    def wait_for_start(self):
        """Announce that this worker is ready, then wait for the launcher's common t = 0; False
        when the launcher closed the pipe instead (the run stopped)."""
        self.report({"churn": "ready"})
        self.t0 = read_start(0)
        return self.t0 is not None

    def start_time(self):
        """The monotonic time of the common t = 0 the launcher gave."""
        return self.t0


def read_start(fd):
    """Read ``go T0`` (nanoseconds) from ``fd``; T0 in seconds, or None at end of file. The
    descriptor is then replaced by /dev/null (the nodes get no stdin)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            return None
        data += chunk
    word, _, stamp = data.decode("ascii", "replace").strip().partition(" ")
    if word != "go" or not stamp.isdigit():
        raise ValueError(f"expected 'go NANOSECONDS' from the launcher, got {data!r}")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, fd)
    os.close(null)
    return int(stamp) / 1e9


def main(argv=None):
    """Run this worker's nodes; returns the exit status."""
    raise_to_hard()
    if os.environ.get(OWN_ADDRESS_ENV) == "1":
        import splay.node
        splay.node.wildcard_is_own_address = True
    return in_process_main(argv, output_class=StampedOutput, by_position=True, host_class=WorkerHost)


if __name__ == "__main__":
    sys.exit(main())

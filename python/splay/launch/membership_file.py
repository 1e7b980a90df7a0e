"""The nodes file of a run whose membership changes (churn, faults): rewritten at a bounded cost.

A nodes file (:class:`~splay.launch.processes.NodesFile`) holds the whole list of the nodes alive
now, so each rewrite costs O(N). Rewriting it at every join or leave made a churn replay O(N^2):
20,000 joins wrote about 6 GB. :class:`MembershipFile` takes the changes in O(1)
(:meth:`MembershipFile.changed`) and rewrites the file only when the time spent rewriting stays
within :data:`WRITE_SHARE` of the time since the previous rewrite: immediately when the list is
short (a rewrite of 1,000 nodes takes well under a millisecond), a few rewrite-times later when it
is long. The writer calls :meth:`MembershipFile.write_due` at each turn of its loop and wakes up
within :meth:`MembershipFile.next_write` seconds while a change is waiting.

In one process (``--in-process``, ``--sim``) the nodes that read the file live in the writer's
process: :func:`splay.job.read_nodes_from` lets their :meth:`splay.job.Job.nodes` read the
membership from memory (exact at every instant, and computed once per change for all of them)
instead of from the file, which is then only a copy for whoever looks from outside.
"""
import time

from splay.pacing import wait_after

from .processes import NodesFile

__all__ = ["MembershipFile", "WRITE_SHARE"]

#: The largest share of the writer's time that rewriting the nodes file may take.
WRITE_SHARE = 0.25


class MembershipFile:
    """A nodes file rewritten when its membership changed, at most :data:`WRITE_SHARE` of the time.

    The clock is ``time.perf_counter``: real time even in a simulation (whose ``time.monotonic``
    is virtual and does not move while the file is written).
    """

    def __init__(self, path):
        self.file = NodesFile(path)
        self.path = self.file.path
        self.alive = None            # what gives the nodes alive now, when a change waits
        self.allowed_at = 0.0        # perf_counter time from which the next rewrite may happen
        self.writes = 0              # how many times the file was written (observable cost)

    def write(self, nodes):
        """Replace the file's content with ``nodes`` now (the list at start)."""
        began = time.perf_counter()
        self.file.write(nodes)
        ended = time.perf_counter()
        self.writes += 1
        self.alive = None
        self.allowed_at = ended + wait_after(ended - began, WRITE_SHARE)

    def changed(self, alive):
        """Membership changed; ``alive()`` gives the nodes alive now (called when the file is
        rewritten, so it is called once for many changes). Costs O(1) unless a rewrite is due."""
        self.alive = alive
        self.write_due()

    def stale(self, alive):
        """Membership changed, and nobody reads the file until :meth:`flush` (a host whose nodes
        read :func:`splay.job.read_nodes_from`): nothing is written now."""
        self.alive = alive

    def write_due(self):
        """Rewrite the file if a change waits and the rewrite is allowed now; ``True`` if it was."""
        if self.alive is None or time.perf_counter() < self.allowed_at:
            return False
        self.write(self.alive())
        return True

    def flush(self):
        """Rewrite the file now if a change waits (the end of a replay: the last list is written)."""
        if self.alive is not None:
            self.write(self.alive())

    def next_write(self):
        """Seconds until the waiting rewrite is allowed (0: now), ``None`` when none waits."""
        return None if self.alive is None else max(0.0, self.allowed_at - time.perf_counter())

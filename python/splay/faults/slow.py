"""``slow NODES x4``: a quarter of the CPU, as a duty cycle of running and frozen time.

Where cgroup v2's ``cpu.max`` is not available to the launcher (this project's CI machines, like
many containers, mount cgroup v1 or hand no writable cpu controller), a slowed node runs for
``PERIOD / factor`` of every :data:`PERIOD` seconds and is frozen for the rest: a process gets
SIGSTOP/SIGCONT, an ``--in-process`` node's threads are held back (``splayc.hub.freeze_node``).
Over a second, a node slowed x4 gets at most a quarter of the CPU time it would have had; within a
period its work comes in bursts (a request arriving in the frozen part waits up to
``PERIOD * (1 - 1/factor)``). An ``--in-process`` node is frozen at its next blocking call or
yield, so one that computes for long without yielding is slowed less.
"""
import math

__all__ = ["PERIOD", "running", "next_toggle"]

#: The length of one duty cycle, in seconds.
PERIOD = 0.1


def running(factor, since, t):
    """Is a node slowed by ``factor`` since ``since`` in its running part at time ``t``?"""
    phase = (t - since) % PERIOD
    return phase < PERIOD / factor


def next_toggle(factor, since, t):
    """The first time after ``t`` when the node switches between running and frozen."""
    cycles = math.floor((t - since) / PERIOD)
    start = since + cycles * PERIOD
    switch = start + PERIOD / factor
    return switch if switch > t else start + PERIOD

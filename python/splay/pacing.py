"""Pacing of periodic background work (sampling, rewriting a file) whose cost grows with a run.

Work that took ``took`` seconds is next done after :func:`wait_after`: at least a given interval,
and long enough that the work takes at most ``share`` of the time. The metrics sampler, the
launcher's ``metrics.json`` writes and the membership file of a churn replay pace themselves so.
"""

__all__ = ["wait_after"]


def wait_after(took, share, at_least=0.0):
    """Seconds to wait after work that took ``took`` seconds so that it takes at most ``share``
    (0 < share <= 1) of the time, and at least ``at_least`` seconds."""
    return max(at_least, took / share - took)

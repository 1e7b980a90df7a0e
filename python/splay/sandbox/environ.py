"""The confined job's environment: emptied, and every read of ``os.environ`` refused.

The host's environment variables (paths, user names, tokens) are not the job's business. At
confinement the C-level environment is emptied (so native code and ``/proc`` see nothing either)
and ``os.environ``/``os.environb`` are switched to a mapping whose every read raises
:class:`splay.Restricted`. Writes are refused by the audit hook (``os.putenv``).
"""
import os
import posix

from splayc.errors import Restricted


def _refuse(*args, **kwargs):
    raise Restricted("sandbox refused reading the environment (os.environ, os.getenv): "
                     "a confined job has no environment variables")


class RefusedEnvironment(dict):
    """An empty mapping that refuses to be read: ``os.environ``'s storage in a confined job."""

    __getitem__ = __iter__ = __len__ = __contains__ = get = keys = items = values = copy = _refuse
    __repr__ = lambda self: "<environment hidden by the sandbox>"


def hide():
    """Empty the process environment and make os.environ refuse reads. Irreversible."""
    for key in list(os.environb):
        os.unsetenv(key)
    posix.environ.clear()
    guard = RefusedEnvironment()
    os.environ._data = guard
    os.environb._data = guard

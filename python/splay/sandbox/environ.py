"""The job's environment: built from an allow-list at start, then emptied at confinement.

The host's environment variables (paths, user names, tokens) are not the job's business. Two steps:

* every launcher (``splay run``, the daemon, ``python -m splay.sandbox.run``) starts the job
  process with :func:`job_environment`, only the variables in :data:`JOB_VARIABLES`. The
  strings a process starts with stay on its initial stack for its whole life (emptying
  ``environ`` does not erase them), so a secret the launcher held (``SPLAY_TOKEN``,
  ``SPLAY_CONTROLLER``, ``HOME``...) must never be handed over in the first place;
* at confinement (:func:`hide`) the C-level environment is emptied (so native code sees nothing
  either) and ``os.environ``/``os.environb`` are switched to a mapping whose every read raises
  :class:`splay.Restricted`. Writes are refused by the audit hook (``os.putenv``).
"""
import os
import posix

# What a job process is started with: finding programs and libraries, the locale and time zone,
# importing pysplay, and the SPLAY_* variables the node runner itself reads. Nothing else.
JOB_VARIABLES = frozenset({
    "PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED",
    "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
    "SPLAY_JOB", "SPLAY_JOBS_FILE", "SPLAY_CHURN_FILE", "SPLAY_NO_SMALL_ARENA",
})

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


def job_environment(base=None, **extra):
    """The environment to start a job process with: the allowed variables of ``base`` (default
    ``os.environ``; :data:`JOB_VARIABLES` and the ``LC_*`` locale variables), plus ``extra``."""
    base = os.environ if base is None else base
    env = {key: value for key, value in base.items() if key in JOB_VARIABLES or key.startswith("LC_")}
    env.update(extra)
    return env

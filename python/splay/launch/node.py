"""The node runner: ``python -m splay.launch.node APP.py [args...]`` runs one node of a job.

It is what ``splay run`` and the daemon start for each node, and what a user may start by hand:

1. reads the job from the environment variable ``SPLAY_JOB`` (see :mod:`splay.job`); without it the
   job stays ``None`` and the application runs as a plain local program;
2. sets ``splay.job`` (which ``splay.base`` exports as ``job``);
3. changes into the job's directory when it has one;
4. when the job's ``settings`` hold restricted-socket limits (``max_send``, ``max_sockets``, ...),
   calls ``splay.restricted_socket.init(job.settings)`` and seals it (the application cannot lift
   those limits), so every socket of the node is restricted;
   with a ``topology`` or ``partitions`` setting (``splay run --topology/--partition``, ``splay
   submit --topology``), applies it (``splay.emulation.apply_job``), except a topology the
   daemons shape in the kernel (``splay submit --shaping kernel``: only partitions apply here);
5. when the job asks for a sandbox, imports ``splay`` and ``splay.base`` and then calls
   ``splay.sandbox.confine(job.dir, **job.sandbox)`` -- and refuses to run if that is impossible;
6. runs ``APP.py`` as ``__main__`` with ``sys.argv == [APP.py, args...]``.

Exit status: the application's own (``sys.exit``), 0 when it ends normally, 1 with the traceback on
stderr when it raises, 130 on Ctrl-C, 2 when the command line or ``SPLAY_JOB`` is wrong.
"""
import importlib
import os
import runpy
import sys
import traceback

import splay
from splay.job import Job
from splay.sim.seeding import seed_from_environment

USAGE = "usage: python -m splay.launch.node APP.py [ARGS...]   (the job comes from $SPLAY_JOB)"


class RunnerError(Exception):
    """The node cannot be started as asked; the message says why and what to do."""


def load_job(environ=None):
    """The job of this process from ``SPLAY_JOB`` (``None`` when unset); ``RunnerError`` if malformed."""
    try:
        return Job.from_env(environ)
    except ValueError as e:
        raise RunnerError(f"{e}; the launcher or daemon must pass a JSON job object") from None


def install_job(job):
    """Make ``job`` the process's job: ``splay.job`` (and so ``job`` in ``splay.base``)."""
    splay.job = job
    base = sys.modules.get("splay.base")
    if base is not None:
        base.job = job


def confine(job):
    """Apply the job's sandbox: ``splay.sandbox.confine(job.dir, **job.sandbox)``.

    ``splay`` and ``splay.base`` are imported first, so that the library is loaded before the
    sandbox closes the doors. A job that asks for a sandbox never runs without one.
    """
    if job.dir is None:
        raise RunnerError("the job asks for a sandbox but gives no 'dir' to confine the node to")
    try:
        importlib.import_module("splay.base")
    except ImportError as e:
        if not (isinstance(e, ModuleNotFoundError) and e.name == "splay.base"):
            raise RunnerError(f"the job asks for a sandbox, and splay.base must be imported before "
                              f"confining, but importing it fails: {e}") from None
    try:
        sandbox = importlib.import_module("splay.sandbox")
    except ImportError as e:
        raise RunnerError(f"the job asks for a sandbox but splay.sandbox cannot be imported ({e}); "
                          "refusing to run the node unconfined") from None
    confine_node = getattr(sandbox, "confine", None)
    if not callable(confine_node):
        raise RunnerError("the job asks for a sandbox but splay.sandbox has no confine() in this "
                          "installation; refusing to run the node unconfined")
    try:
        confine_node(job.dir, **job.sandbox)
    except Exception as e:
        raise RunnerError(f"cannot confine the node as its job asks (sandbox {job.sandbox!r}): "
                          f"{type(e).__name__}: {e}") from None


def restrict_sockets(job):
    """``splay.restricted_socket.init(job.settings)`` when the settings hold socket limits, then
    ``restricted_socket.seal()``: the limits are the launcher's, final for the application (it
    may tighten them, never lift them)."""
    from splay import restricted_socket
    if not restricted_socket.has_settings(job.settings):
        return
    try:
        restricted_socket.init(job.settings)
    except ValueError as e:
        raise RunnerError(f"the job's settings are not valid restricted-socket limits: {e}") from None
    restricted_socket.seal()


def emulate_network(job):
    """Apply the job's topology (``splay run``/``splay submit --topology FILE``) to this node's
    sockets; with ``splay submit --shaping kernel`` the daemons shape it with tc instead, and only
    the job's partitions, if any, are applied here (see ``splay.emulation.apply_job``)."""
    from splay.emulation import TopologyError, apply_job, has_emulation
    if not has_emulation(job.settings):
        return
    try:
        emulation = apply_job(job)
    except (OSError, ValueError, TopologyError) as e:
        raise RunnerError(f"cannot apply the job's topology: {e}") from None
    from splay.faults.inside import start_in_node
    try:
        start_in_node(job, emulation)       # --faults: this node's skew, partitions, messages
    except ValueError as e:
        raise RunnerError(f"cannot apply the job's fault timeline: {e}") from None


def app_traceback(exc, app_path):
    """The traceback of ``exc`` starting at the application's first frame (runner frames dropped)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != app_path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def run_app(app_path, args):
    """Run ``app_path`` as ``__main__`` with ``sys.argv = [app_path, *args]``; returns its exit status."""
    sys.argv = [app_path, *args]
    # As `python APP.py` would: the application's directory comes first on the import path.
    sys.path[0] = os.path.dirname(app_path)
    try:
        runpy.run_path(app_path, run_name="__main__")
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as e:  # an uncaught error ends the node with status 1 and its traceback
        sys.stderr.write(app_traceback(e, app_path))
        return 1
    return 0


def main(argv=None):
    """Run one node; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    app_path = os.path.abspath(argv[0])
    try:
        if not os.path.isfile(app_path):
            raise RunnerError(f"application file {argv[0]!r} not found (looked for {app_path})")
        job = load_job()
        install_job(job)
        seed_from_environment(job)
        if job is not None and job.dir is not None:
            try:
                os.chdir(job.dir)
            except OSError as e:
                raise RunnerError(f"cannot enter the job directory {job.dir!r}: {e.strerror}") from None
        if job is not None:
            restrict_sockets(job)
            emulate_network(job)
        # Before the sandbox closes the environment and /proc.
        sampler = start_metrics()
        if job is not None and job.sandbox is not None:
            confine(job)
    except RunnerError as e:
        print(f"splay node: {e}", file=sys.stderr)
        return 2
    try:
        return run_app(app_path, argv[1:])
    finally:
        if sampler is not None:
            sampler.stop()


def start_metrics():
    """Sample this node's metrics into the pipe the launcher or daemon gave it, if any
    (:mod:`splay.observatory.sampler`); returns the sampler or None."""
    from splay.observatory import sampler
    if not os.environ.get(sampler.METRICS_FD_ENV):
        return None
    sampler.attach(None)
    return sampler.from_environment(lambda: [(0, None)])


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.exit(status)

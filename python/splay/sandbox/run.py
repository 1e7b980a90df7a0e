"""``python -m splay.sandbox.run --dir D [limits] APP.py [ARGS...]``: run one script confined.

Confines this process with :func:`splay.sandbox.confine` (the script itself is added to the
readable paths), then runs APP.py as ``__main__`` with ``sys.argv = [APP.py, *ARGS]``.

Limits have defaults (:data:`DEFAULTS`, :data:`NET_DEFAULTS`, shown by ``--help``): a job started
without options is still bounded. The network limits (``--max-send``, ``--ports``, ...; see
:mod:`splay.launch.net_options`) are installed in the restricted socket layer and sealed before
the script runs, and ``--ports`` is also the kernel's TCP bind wall.

Exit status: the script's own, 3 when it was stopped by a refusal of the sandbox
(:class:`splay.Restricted`, including the CPU time limit, or a write reaching ``--max-disk``), 4 when it ran out of its memory limit;
a process killed by the CPU hard limit dies of SIGKILL. The reason is printed on stderr, with
the traceback. ``--report`` prints what the confinement activated (JSON) on stderr first.

Started as a command, it first replaces itself (same pid) by the same command with only the job's
environment (:func:`splay.sandbox.environ.job_environment`), so that no variable of the caller
is ever in the job's process.
"""
import argparse
import errno
import importlib
import json
import os
import runpy
import sys
import traceback

from splayc.errors import Restricted

from splay.launch import net_options
from splay.sandbox import confine
from splay.sandbox.environ import job_environment

EXIT_RESTRICTED = 3
EXIT_OUT_OF_MEMORY = 4

# The limits of a job when the command line does not give them ("sane defaults": a stray job
# cannot take the machine's memory, CPU, descriptors, disk or network).
DEFAULTS = {"max_memory": 1 << 30, "max_cpu": 600.0, "max_files": 256, "max_disk": 256 << 20}
NET_DEFAULTS = {"max_send": 1 << 30, "max_receive": 1 << 30, "max_sockets": 128}


def _size(text):
    """A byte count: plain digits or with a k/m/g suffix (powers of 1024)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (examples: 1048576, 512k, 64m)") from None


def parser():
    """The command line of ``python -m splay.sandbox.run``."""
    p = argparse.ArgumentParser(prog="python -m splay.sandbox.run",
                                description="Run a Python script confined to a job directory (splay sandbox).")
    p.add_argument("--dir", required=True, help="the job directory (created if missing; the working directory)")
    p.add_argument("--max-memory", type=_size, default=DEFAULTS["max_memory"],
                   help="address space limit in bytes (k/m/g suffixes; default %(default)s)")
    p.add_argument("--max-cpu", type=float, default=DEFAULTS["max_cpu"],
                   help="CPU time limit in seconds (default %(default)s)")
    p.add_argument("--max-files", type=int, default=DEFAULTS["max_files"],
                   help="open file descriptor limit (default %(default)s)")
    p.add_argument("--max-processes", type=int, help="process limit (RLIMIT_NPROC; not enforced for root)")
    p.add_argument("--max-disk", type=_size, default=DEFAULTS["max_disk"],
                   help="disk limit of the job directory in bytes (k/m/g suffixes; default %(default)s)")
    p.add_argument("--allow-read", action="append", default=[], metavar="PATH",
                   help="another file or directory the job may read (repeatable)")
    p.add_argument("--no-kernel", action="store_true", help="skip seccomp, Landlock and capability dropping")
    p.add_argument("--report", action="store_true", help="print the confinement report (JSON) on stderr")
    net_options.add_to(p, defaults={**NET_DEFAULTS, "ports": "unlimited"})
    p.add_argument("--connect-ports", type=net_options.parse_ports, action="append", metavar="A-B",
                   help="the only TCP ports the job may connect to, enforced by the kernel "
                        "(repeatable; default: any)")
    p.add_argument("app", help="the script to run as __main__")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return p


def preload_core():
    """Import splay's runtime (and its compiled core) before confinement, as the node runner does.

    Modules read their settings (environment variables) at import time, and a confined job may
    no longer read the environment. When the core is not built, jobs that need it fail at their
    own import, with the same ImportError.
    """
    try:
        importlib.import_module("splay.base")
    except ImportError:
        pass


def restrict_network(settings):
    """Install ``settings`` as this process's restricted-socket limits and seal them (the job
    may tighten them, not lift them). ValueError for a bad setting."""
    from splay import restricted_socket
    restricted_socket.init(settings)
    restricted_socket.seal()


def _stopped(reason, status):
    """Print the traceback being handled, then the reason the sandbox stopped the job; returns ``status``."""
    try:
        traceback.print_exc()
    except Exception as failure:    # the job may have broken what tracebacks need (builtins, linecache)
        print(f"splay.sandbox: (no traceback: printing it failed with {failure!r})", file=sys.stderr)
    print(f"splay.sandbox: job stopped: {reason}", file=sys.stderr, flush=True)
    return status


def main(argv=None):
    """Confine this process as the command line says, then run the script; returns the exit status."""
    options = parser().parse_args(argv)
    preload_core()
    app = os.path.realpath(options.app)
    if not os.path.isfile(app):
        print(f"splay.sandbox.run: no such script: {options.app}", file=sys.stderr)
        return 2
    try:
        restrict_network(net_options.settings(options, NET_DEFAULTS))
    except ValueError as error:
        print(f"splay.sandbox.run: {error}", file=sys.stderr)
        return 2
    report = confine(options.dir, max_memory=options.max_memory, max_cpu=options.max_cpu,
                     max_files=options.max_files, max_processes=options.max_processes,
                     max_disk=options.max_disk, allowed_read_paths=[app, *options.allow_read],
                     kernel=not options.no_kernel, bind_ports=options.ports,
                     connect_ports=options.connect_ports)
    if options.report:
        print("splay.sandbox: " + json.dumps(report, sort_keys=True, default=str), file=sys.stderr, flush=True)
    sys.argv = [app, *options.args]
    try:
        runpy.run_path(app, run_name="__main__")
    except Restricted as error:
        return _stopped(str(error), EXIT_RESTRICTED)
    except MemoryError:
        return _stopped(f"out of memory (limit max_memory={options.max_memory} bytes)", EXIT_OUT_OF_MEMORY)
    except OSError as error:
        if error.errno != errno.EFBIG:
            raise
        return _stopped(f"the job directory reached its disk limit (max_disk={options.max_disk} bytes)",
                        EXIT_RESTRICTED)
    except SystemExit as done:
        return done.code
    return 0


def restart_with_job_environment():
    """Start this command again (same process, same pid) with only the job's environment.

    The strings a process starts with stay on its initial stack for its whole life, whatever
    :func:`splay.sandbox.environ.hide` empties later: the caller's secrets must not be there
    at all. Does nothing when the environment is already the job's.
    """
    env = job_environment()
    if env != dict(os.environ):
        os.execve(sys.executable, sys.orig_argv, env)


if __name__ == "__main__":
    restart_with_job_environment()
    sys.exit(main())

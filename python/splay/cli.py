"""The ``splay`` command: dispatches each subcommand to the module that implements it.

Subcommand modules are imported lazily so that ``splay run`` does not pay for the deployment code.
"""
import importlib
import sys

# subcommand -> (module, function, one-line help)
SUBCOMMANDS = {
    "run": ("splay.launch.run_cmd", "main", "run N local nodes of an application"),
    "churn": ("splay.churn.cli", "main", "compile a churn script into a trace"),
    "submit": ("splay.deploy.cli", "submit", "submit a job to the controller"),
    "jobs": ("splay.deploy.cli", "jobs", "list jobs"),
    "job": ("splay.deploy.cli", "job", "show one job"),
    "kill": ("splay.deploy.cli", "kill", "kill a job"),
    "logs": ("splay.deploy.cli", "logs", "print (or follow) a job's logs"),
    "daemons": ("splay.deploy.cli", "daemons", "list daemons"),
    "check": ("splay.check.cli", "main", "check a history of operations against a model"),
    "history": ("splay.check.cli", "history_main", "extract a job's or a log's operation history"),
    "report": ("splay.observatory.report_cmd", "main", "write a run's self-contained HTML report"),
    "testbed": ("splay.deploy.testbed", "main", "start or stop a controller and daemons on this machine"),
}


def usage():
    lines = ["usage: splay COMMAND [ARGS...]", "", "commands:"]
    for name, (_, _, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<9} {text}")
    lines.append("")
    lines.append("'splay COMMAND --help' tells more about one command; 'splay --version' the version.")
    return "\n".join(lines)


def version():
    """``pysplay X.Y.Z`` as installed (pip's metadata), with the Python that runs it."""
    from importlib import metadata
    try:
        number = metadata.version("pysplay")
    except metadata.PackageNotFoundError:
        number = "(not installed: run 'make setup' or 'pip install .')"
    return f"pysplay {number} (Python {sys.version.split()[0]})"


def main(argv=None):
    """Entry point of the ``splay`` console script. Returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"splay: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        print(f"splay {name}: this command is not available in this installation ({e})", file=sys.stderr)
        return 2
    return getattr(mod, func)(rest) or 0


if __name__ == "__main__":
    sys.exit(main())

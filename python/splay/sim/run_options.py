"""The command-line checks of ``splay run --sim`` (called by :func:`splay.launch.options.parse`).

A simulation runs every node in one process on a virtual clock: options about separate
processes, or about the machine's clock, cannot apply and are refused with the reason.
"""
from splay.launch.options import UsageError

__all__ = ["check_sim_options", "REFUSED"]

#: Options --sim refuses: (attribute, flag, why it cannot apply, what to do instead).
REFUSED = (
    ("sandbox", "--sandbox", "every simulated node lives in one process, which cannot confine "
                             "them one by one", "drop --sandbox"),
    ("node_dirs", "--node-dirs", "every simulated node lives in one process with one working "
                                 "directory", "drop --node-dirs"),
    ("stagger", "--stagger", "every simulated node starts at virtual time 0",
     "use a --churn trace to start nodes at other times"),
)


def check_sim_options(opts):
    """Refuse what cannot go with ``--sim``; a simulation is an in-process run seeded with
    ``--seed`` (default 0). Raises :class:`~splay.launch.options.UsageError`."""
    if not opts.sim:
        raise UsageError("--until is a virtual time: it needs --sim (a real run stops after "
                         "--time-limit seconds)")
    if opts.until is not None and not opts.until > 0:
        raise UsageError(f"--until must be a positive number of virtual seconds, got {opts.until:g}")
    for attribute, flag, why, instead in REFUSED:
        if getattr(opts, attribute):
            raise UsageError(f"{flag} cannot apply with --sim: {why}; {instead}")
    if opts.seed is None:
        opts.seed = 0
    from .run import job_ref
    opts.job_ref = job_ref(opts.seed)
    opts.list_seed = f"splay-lists:{opts.seed}"     # --random lists: the same run after run
    opts.in_process = True

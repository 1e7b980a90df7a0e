"""The job: what a node knows about itself and the other nodes of its deployment.

SPLAY gives every node of a deployment a ``job`` (manual, "Local execution vs. deployment"):
``job.me`` (this node), ``job.position`` (its place in the job list; **0-based** in Python),
``job.nodes()`` (the alive nodes as the daemon sees them), ``job.list_type`` (``"head"`` or
``"random"``), plus ``job.ref`` and ``job.name``. Applications read it as ``splay.job`` or as
``job`` from ``splay.base``; it is ``None`` when nothing launched the process as a node.

A launcher (``splay run``) or a daemon hands the job to the node process in the environment
variable ``SPLAY_JOB`` (see :data:`ENV_VAR`), a JSON object::

    {"ref": str, "name": str, "me": {"ip": str, "port": int}, "position": int,
     "list_type": "head" | "random", "nodes": [{"ip": str, "port": int}, ...],
     "list_size": int (optional), "nodes_file": str (optional), "dir": str (optional),
     "sandbox": {...} (optional), "settings": {...} (optional)}

``nodes_file`` names a JSON file (a list of ``{"ip", "port"}``) that the launcher or daemon rewrites
atomically (temporary file + rename) with the nodes alive *now*; when present, :meth:`Job.nodes`
re-reads it whenever it changes, so a node sees churn. The node's view of that list follows
``list_type`` and ``list_size``: a head list is the first ``list_size`` alive nodes, a random list
``list_size`` alive nodes drawn at random (once per membership), never ``me``. A random list
given at start is kept while it agrees with the file (the launcher or controller drew it); an
empty ``nodes`` with a nodes file means: read the file.
"""
import json
import os
import random as _random
import time

from . import log as _log
from .node import Node, as_node

__all__ = ["Job", "ENV_VAR", "LIST_TYPES", "read_nodes_from"]

#: This module's logger (a ``splay.log`` object, level warning) that users may tune.
l_o = _log.module_logger("job")

#: The environment variable that carries a node's job (a JSON object) into its process.
ENV_VAR = "SPLAY_JOB"

#: The two kinds of node list SPLAY gives a job.
LIST_TYPES = ("head", "random")

# The last content read from each nodes file: {path: (stamp, tuple of Node)}. Jobs of one process
# (--in-process runs host many) share it, so N nodes reading one file parse it once and, for head
# lists, hold one tuple instead of N copies.
_nodes_files = {}

# Nodes files whose writer runs in this process (the host of an --in-process or --sim churn
# replay): {path: alive}, alive() the tuple of the nodes alive now. The jobs read it instead of the
# file: exact at every instant, and no O(N) rewrite and parse per change (see read_nodes_from).
_in_process_sources = {}

# What Job.derive() computed: {code of the function: (the node tuple it was given, result)}, one
# entry per function (the latest membership), shared by the jobs of one process.
_derived = {}

# A nodes file changed less than this many seconds ago may be rewritten again without its stamp
# changing (timestamps have the granularity of the kernel's clock tick): it is read, not trusted.
RACY_SECONDS = 0.1


def _racy(stamp):
    """Whether a file with this stamp is too young for its stamp to be trusted."""
    # The file system's clock: never the virtual one a simulation gives time.time().
    return time.clock_gettime(time.CLOCK_REALTIME) - stamp[0] / 1e9 < RACY_SECONDS


def read_nodes_from(nodes_file, alive):
    """Let the jobs of this process whose nodes file is ``nodes_file`` take the alive nodes from
    ``alive()`` rather than from the file (``alive=None``: from the file again).

    For a writer in the same process as the nodes (the host of an ``--in-process`` or ``--sim``
    churn replay): ``alive()`` returns a tuple of :class:`splay.Node`, the same object while the
    membership has not changed, so each node's view is recomputed only after a change.
    """
    path = os.fspath(nodes_file)     # as the jobs carry it: their key for the lookup
    if alive is None:
        _in_process_sources.pop(path, None)
    else:
        _in_process_sources[path] = alive


class Job:
    """One node's job: ``me``, ``position``, ``nodes()``, ``list_type``, ``ref``, ``name``.

    ``settings`` is a dict passed through from the launcher or daemon (restricted socket settings
    and the like), ``dir`` the job's working directory (or ``None``), ``sandbox`` the keyword
    arguments for ``splay.sandbox.confine`` (or ``None``: no sandbox).

    >>> j = Job(me=("127.0.0.1", 20001), position=1,
    ...         nodes=[("127.0.0.1", 20000), ("127.0.0.1", 20001)])
    >>> j.nodes()[j.position] == j.me
    True
    """

    def __init__(self, me, position, nodes, list_type="head", ref="local", name="local", *,
                 list_size=None, nodes_file=None, dir=None, sandbox=None, settings=None):
        self.me = as_node(me)
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError(f"job position must be an integer >= 0 (positions are 0-based), got {position!r}")
        self.position = position
        if list_type not in LIST_TYPES:
            raise ValueError(f"job list_type must be 'head' or 'random', got {list_type!r}")
        self.list_type = list_type
        if list_size is not None and (not isinstance(list_size, int) or isinstance(list_size, bool)
                                      or list_size < 0):
            raise ValueError(f"job list_size must be an integer >= 0 or None, got {list_size!r}")
        self.list_size = list_size
        self.ref = str(ref)
        self.name = str(name)
        # Nodes given as Node already (the launcher's plan) are kept as they are: converting the
        # whole list again for each of N jobs was O(N^2) at start-up.
        self._nodes = tuple(n if type(n) is Node else as_node(n) for n in nodes)
        self._start_nodes = self._nodes      # what to_dict() sends on: the list as given
        self.nodes_file = None if nodes_file is None else os.fspath(nodes_file)
        self.dir = None if dir is None else os.fspath(dir)
        if sandbox is not None and not isinstance(sandbox, dict):
            raise ValueError(f"job sandbox must be a dict of keyword arguments, got {type(sandbox).__name__}")
        self.sandbox = sandbox
        if settings is not None and not isinstance(settings, dict):
            raise ValueError(f"job settings must be a dict, got {type(settings).__name__}")
        self.settings = {} if settings is None else settings
        # Version and content of the nodes file the current list stands for: the view is
        # recomputed only when membership changes, so that a random list stays the same between
        # two calls. The list given at start (the one the launcher or controller chose) is kept
        # while it agrees with the file; an empty one means "read the file".
        self._file_stamp = None
        self._alive = None           # the file content the list was derived from, when known
        if self.nodes_file is not None:
            self._refresh_from_file(keep_consistent=True)

    # -- the node list -----------------------------------------------------------------------

    def nodes(self):
        """The alive nodes as the daemon sees them: a fresh ``list`` of :class:`splay.Node`.

        Without a nodes file this is the list given at start. With one, it is re-read whenever the
        file changes (churn); if it cannot be read, the last list read stays in force.
        """
        if self.nodes_file is not None:
            self._refresh_from_file()
        return list(self._nodes)

    def derive(self, compute):
        """``compute(nodes)`` for this node's current list (the list of :meth:`nodes`, given as a
        tuple), computed once per process for each membership rather than once per node.

        For a value that depends only on the node list, costs O(N) or more, and every node wants:
        the sorted ids of a ring (examples/chord.py's ``successor_correct``), a ground truth for a
        metric. When one process hosts many nodes (``--in-process``, ``--sim``), the nodes that see
        the same membership see the same tuple, and ``compute`` runs once for all of them; with
        churn, a node that sees another list gets its own result. On a testbed (one node per
        process) it is simply ``compute(tuple(job.nodes()))``, computed again only when the list
        changes. Functions with the same code are taken to compute the same thing: each node's copy
        of the application defines its own function over one code object. The result is shared:
        do not mutate it.
        """
        if self.nodes_file is not None:
            self._refresh_from_file()
        nodes = self._nodes
        what = getattr(compute, "__code__", compute)
        cached = _derived.get(what)
        if cached is None or cached[0] is not nodes:
            cached = _derived[what] = (nodes, compute(nodes))
        return cached[1]

    def _stamp(self):
        """What identifies the nodes file's current version, or ``None`` if it cannot be seen."""
        try:
            st = os.stat(self.nodes_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_alive(self, stamp):
        """The nodes in the file (a tuple), or ``None`` if it cannot be read and parsed now."""
        cached = _nodes_files.get(self.nodes_file)
        if cached is not None and cached[0] == stamp and not _racy(stamp):
            return cached[1]
        try:
            with open(self.nodes_file, encoding="utf-8") as f:
                alive = tuple(as_node(n) for n in json.load(f))
        except (OSError, ValueError, TypeError):
            # A writer that does not rename atomically may be caught mid-write: keep the last
            # view and try again at the next call.
            return None
        _nodes_files[self.nodes_file] = (stamp, alive)
        return alive

    def _refresh_from_file(self, keep_consistent=False):
        source = _in_process_sources.get(self.nodes_file)
        if source is not None:
            alive = source()
            if alive is not self._alive:
                self._take_alive(alive, keep_consistent)
            return
        stamp = self._stamp()
        if stamp is None:
            return
        # Two rewrites within one tick of the file system's clock may leave the same stamp (same
        # size, a recycled inode): a stamp that young is not trusted, the content is compared.
        if stamp == self._file_stamp and not _racy(stamp):
            return
        alive = self._read_alive(stamp)
        if alive is None:
            return
        self._take_alive(alive, keep_consistent)
        self._file_stamp = stamp

    def _take_alive(self, alive, keep_consistent):
        """The membership is now ``alive`` (a tuple of Node): recompute this node's view of it."""
        if keep_consistent and self._nodes and self._agrees_with(alive):
            pass                     # a random list drawn from this very membership: keep it
        elif alive != self._alive:   # _alive is None until the content is known
            self._nodes = tuple(self._view_of(alive))
        self._alive = alive

    def _agrees_with(self, alive):
        """Whether the current random list could have been drawn from ``alive``.

        (A head list is always recomputed: it is determined by ``alive``.)
        """
        if self.list_type == "head":
            return False
        others = set(alive)
        others.discard(self.me)
        wanted = len(others) if self.list_size is None else min(self.list_size, len(others))
        return len(self._nodes) == wanted and set(self._nodes) <= others

    def _view_of(self, alive):
        """This node's list out of the alive nodes, following ``list_type`` and ``list_size``."""
        if self.list_type == "head":   # a tuple slice of the whole tuple is the tuple itself
            return alive if self.list_size is None else alive[:self.list_size]
        others = [n for n in alive if n != self.me]
        if self.list_size is None or self.list_size >= len(others):
            return others
        return _random.sample(others, self.list_size)

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self):
        """The job as the JSON-ready dict of the ``SPLAY_JOB`` contract (optional keys only when set).

        ``nodes`` is the list the job was built with; with a nodes file, the receiving side
        derives its current view from the file again.
        """
        d = {
            "ref": self.ref,
            "name": self.name,
            "me": self.me.to_dict(),
            "position": self.position,
            "list_type": self.list_type,
            "nodes": [n.to_dict() for n in self._start_nodes],
        }
        if self.list_size is not None:
            d["list_size"] = self.list_size
        if self.nodes_file is not None:
            d["nodes_file"] = self.nodes_file
        if self.dir is not None:
            d["dir"] = self.dir
        if self.sandbox is not None:
            d["sandbox"] = self.sandbox
        if self.settings:
            d["settings"] = self.settings
        return d

    def to_json(self):
        """The job as the JSON text that goes into ``SPLAY_JOB``."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d):
        """Build a job from the dict form; ``ValueError`` names a missing or malformed key."""
        if not isinstance(d, dict):
            raise ValueError(f"a job must be a JSON object, got {type(d).__name__}")
        missing = [k for k in ("me", "position", "nodes") if k not in d]
        if missing:
            raise ValueError(f"job is missing required key(s) {', '.join(missing)} "
                             "(needed: me, position, nodes; optional: ref, name, list_type, "
                             "list_size, nodes_file, dir, sandbox, settings)")
        if not isinstance(d["nodes"], list):
            raise ValueError(f"job 'nodes' must be a list of {{'ip', 'port'}}, got {type(d['nodes']).__name__}")
        try:
            return cls(me=d["me"], position=d["position"], nodes=d["nodes"],
                       list_type=d.get("list_type", "head"), ref=d.get("ref", "local"),
                       name=d.get("name", "local"), list_size=d.get("list_size"),
                       nodes_file=d.get("nodes_file"), dir=d.get("dir"),
                       sandbox=d.get("sandbox"), settings=d.get("settings"))
        except TypeError as e:
            raise ValueError(f"malformed job: {e}") from None

    @classmethod
    def from_json(cls, text):
        """Build a job from the JSON text of ``SPLAY_JOB``; ``ValueError`` says what is wrong."""
        try:
            d = json.loads(text)
        except ValueError as e:
            raise ValueError(f"job is not valid JSON: {e}") from None
        return cls.from_dict(d)

    @classmethod
    def from_env(cls, environ=None):
        """The job in ``SPLAY_JOB`` of ``environ`` (default ``os.environ``), or ``None`` if unset."""
        environ = os.environ if environ is None else environ
        text = environ.get(ENV_VAR)
        if text is None or text == "":
            return None
        try:
            return cls.from_json(text)
        except ValueError as e:
            raise ValueError(f"{ENV_VAR}: {e}") from None

    # -- SPLAY table-style access and display ------------------------------------------------

    def __getitem__(self, key):
        """``job["me"]``, ``job["position"]`` ... as on SPLAY's job table."""
        if key in ("me", "position", "list_type", "list_size", "ref", "name", "dir", "settings",
                   "sandbox", "nodes_file"):
            return getattr(self, key)
        if key == "nodes":
            return self.nodes
        raise KeyError(key)

    def __repr__(self):
        return (f"Job(ref={self.ref!r}, name={self.name!r}, me={self.me!r}, position={self.position}, "
                f"list_type={self.list_type!r}, nodes={len(self._nodes)})")

"""The in-node effects of faults: partitions on the link model, clocks, and message faults.

:class:`Inside` is the ``inside`` of a :class:`~splay.faults.engine.FaultEngine` for the nodes of
one process: one node (``splay run``, a daemon's node) or all of them (``--in-process``, which
share one link model). Partitions are cuts of the model, exactly as ``--partition`` and
``Emulation.cut`` make them; message faults are the ``set_faults`` of each node's
:class:`~splay.emulation.apply.Emulation`; skew and drift move the node's
:class:`~splay.faults.clock.NodeClock`.

:func:`start_in_node` is what the node runner calls for a job whose settings carry a timeline.
"""
import threading

from splay.emulation.apply import _refresh_all

from . import clock as _clock
from .engine import FaultEngine
from .lang import parse_faults

__all__ = ["Inside", "start_in_node", "job_timeline", "run_in_thread", "SETTINGS_KEY"]

#: The job setting that carries a fault timeline: ``{"text", "name", "epoch", "nodes"}``.
SETTINGS_KEY = "faults"


class Inside:
    """In-node effects over ``model`` (the process's :class:`~splay.emulation.LinkModel`);
    ``emulation(i)`` and ``node_clock(i)`` give node i's Emulation and NodeClock, or None when
    node i does not run in this process."""

    def __init__(self, model, emulation, node_clock):
        self.model = model
        self.emulation = emulation
        self.clock = node_clock

    def partition(self, groups):
        """Cut the groups from each other (one group: from every other node); the cuts."""
        if len(groups) == 1:
            cuts = [self.model.cut(groups[0])]
        else:
            cuts = [self.model.cut(a, b) for k, a in enumerate(groups) for b in groups[k + 1:]]
        _refresh_all(self.model)
        return cuts

    def heal(self, cuts):
        """Heal the cuts of :meth:`partition` (those still in force)."""
        for cut in cuts:
            if cut in self.model.partitions:
                self.model.heal(cut)
        _refresh_all(self.model)

    def messages(self, i, delay, loss, duplicate, reorder):
        """Node i's message faults, over its links."""
        emulation = self.emulation(i)
        if emulation is not None:
            emulation.set_faults(delay, loss, duplicate, reorder)


def job_timeline(settings):
    """``(timeline, epoch, count)`` of the ``faults`` job setting, or None without one;
    ValueError when it is malformed."""
    spec = (settings or {}).get(SETTINGS_KEY)
    if not spec:
        return None
    try:
        timeline = parse_faults(spec["text"], spec.get("name", "<faults>"))
        return timeline, float(spec["epoch"]), int(spec["nodes"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"job settings: bad 'faults' ({e!r}); expected text, epoch and nodes") from None


def run_in_thread(engine, name="splay-faults"):
    """Drive ``engine`` from a daemon thread (it only changes clocks and links, which the node
    reads at each call; it never touches a socket). Returns the thread."""
    stop = threading.Event()

    def drive():
        upcoming = engine.step()
        while upcoming is not None:
            stop.wait(max(0.0, upcoming - (engine.clock() - engine.epoch)))
            upcoming = engine.step()
    thread = threading.Thread(target=drive, name=name, daemon=True)
    thread.start()
    return thread


def start_in_node(job, emulation):
    """Apply the in-node faults of ``job``'s timeline to this process's node (position
    ``job.position``) from a daemon thread; ``emulation`` is the node's Emulation. Returns the
    engine, or None when the job has no timeline."""
    found = job_timeline(getattr(job, "settings", None))
    if found is None:
        return None
    timeline, epoch, count = found
    me = job.position
    if timeline.uses("skew", "drift"):
        _clock.install()
    inside = Inside(emulation.model, lambda i: emulation if i == me else None,
                    lambda i: _clock.process_clock() if i == me else None)
    engine = FaultEngine(timeline, count, epoch, inside=inside, clock=_clock.real_time)
    run_in_thread(engine)
    return engine

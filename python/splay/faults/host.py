"""``splay run --in-process --faults FILE``: the host process applies every fault to its nodes.

The host runs one :class:`~splay.faults.engine.FaultEngine` as a thread of its scheduler, with
both sides of the effects: :class:`HostControl` (pause freezes a node's threads with
``splayc.hub.freeze_node``, kill stops the node as a churn down does, restart runs the
application afresh in a new namespace, slow is a freeze/thaw duty cycle) and an
:class:`~splay.faults.inside.Inside` over the link model the nodes share and a
:class:`~splay.faults.clock.NodeClock` per position (kept across restarts: a node's clock belongs
to its machine). Each action is reported to the launcher as
``CONTROL {"fault": text, "nodes": [...], "at": t, "scheduled": s}``.
"""
import json

from splayc import hub as _hub

from splay.emulation.apply import local_model

from . import clock as _clock
from .engine import FaultEngine
from .inside import Inside, job_timeline

__all__ = ["HostControl", "start_in_host", "start_for_nodes", "start_for_churn"]

# While a slow is in force the engine wakes at each duty-cycle switch; otherwise it looks at
# least this often whether the nodes have all ended (then it ends too, and so can the host).
IDLE_CHECK = 0.5


class HostControl:
    """Pause, kill, restart and slow of the nodes of ``host`` (a
    :class:`splay.launch.in_process.HostChurn`: its ``running`` nodes by position)."""

    def __init__(self, host, clocks):
        self.host = host
        self.clocks = clocks
        self.frozen = {}           # position -> the node object frozen (thawed even if replaced)

    def freeze(self, i):
        """Hold back node i's threads."""
        node = self.host.running.get(i)
        if node is not None:
            _hub.freeze_node(node)
            self.frozen[i] = node

    def thaw(self, i):
        """Let node i's threads run again."""
        node = self.frozen.pop(i, None)
        if node is not None:
            _hub.thaw_node(node)

    def kill(self, i, comes_back=False):
        """Stop node i: its threads killed, its sockets and servers closed (its job stays,
        ready for a restart whether or not one is planned)."""
        self.thaw(i)
        if self.host.stop_node(i):
            self.host.write_nodes_file()

    def restart(self, i):
        """Run node i afresh (a new namespace) unless it runs or another process hosts it (a
        worker of ``--workers`` restarts its own nodes only)."""
        if i in self.host.running or i not in self.host.jobs:
            return
        self.host.start_node(i)
        self.host.write_nodes_file()


def start_in_host(host, jobs, report, others_alive):
    """Start the engine of the jobs' timeline as a scheduler thread of the host (None without a
    timeline). ``report(record)`` sends a control record to the launcher; ``others_alive()``
    tells whether a node thread is still alive (the engine ends once none is and no restart is
    due)."""
    found = job_timeline(jobs[0].settings if jobs else None)
    if found is None:
        return None
    timeline, epoch, count = found
    if timeline.uses("skew", "drift"):
        _clock.install()
    clocks = [_clock.NodeClock() for _ in range(count)]
    for i, node in host.running.items():
        node.fault_clock = clocks[i]

    def emulation(i):
        node = host.running.get(i)
        return getattr(node, "emulation", None)
    settings = jobs[0].settings
    inside = Inside(local_model(settings.get("topology"), settings.get("topology_nodes")),
                    emulation, lambda i: clocks[i])

    def send(action, at):
        # seq: the action's rank in the timeline, the same in every worker of --workers
        report({"fault": action.describe(), "nodes": list(action.fault.targets(count)),
                "at": round(at, 6), "scheduled": action.t, "seq": engine.applied})
    # The base clock: the machine's, or the virtual one in a simulation (splay.sim.clock).
    engine = FaultEngine(timeline, count, epoch, control=HostControl(host, clocks), inside=inside,
                         report=send, clock=lambda: _clock.base_clock())

    start_node = host.start_node

    def start_with_faults(i):
        # A node started afresh (a restart, a churn up) keeps its position's clock and gets the
        # message faults in force.
        start_node(i)
        node = host.running[i]
        node.fault_clock = clocks[i]
        if node_messages(i) is not None and getattr(node, "emulation", None) is not None:
            node.emulation.set_faults(**node_messages(i))
    host.start_node = start_with_faults

    def node_messages(i):
        return engine.message_state(i) if i in engine.message_faults else None

    def drive():
        from splay import events
        while True:
            upcoming = engine.step()
            if not others_alive() and not engine.awaits_restart():
                engine.release_all()
                return
            wait = IDLE_CHECK if upcoming is None else upcoming - (_clock.base_clock() - epoch)
            events.sleep(max(0.0, min(wait, IDLE_CHECK)))
    _hub.spawn(drive)
    return engine


def _node_threads_alive():
    from splayc import rpcstats
    return any(count for node, count in rpcstats.threads_by_node(_hub.hub()).items()
               if node is not None)


def start_for_nodes(host_class, out, jobs, app_path, source, nodes, control_prefix):
    """The host of ``--in-process`` nodes without churn: put ``nodes`` (already started) under
    the jobs' timeline, if any; their restarts run the application anew as churn ups do, through
    a ``host_class`` (the host's :class:`~splay.launch.in_process.HostChurn`: the host runs as
    ``__main__``, whose classes are not those of an imported splay.launch.in_process). Returns
    the engine or None."""
    if job_timeline(jobs[0].settings if jobs else None) is None:
        return None
    host = host_class(out, jobs, app_path, source)
    host.running = {node.index: node for node in nodes if not node.failed}
    host.every_node = list(nodes)
    return start_in_host(host, jobs, lambda record: out.write_raw(control_prefix + json.dumps(record) + "\n"),
                         _node_threads_alive)


def start_for_churn(host, jobs):
    """The host of an ``--in-process`` churn replay: the timeline (if any) acts on the nodes the
    replay has up (pause, slow, partitions, clocks and messages; kills belong to the trace)."""
    return start_in_host(host, jobs, host.report, _node_threads_alive)

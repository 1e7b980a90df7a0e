"""Choosing daemons for a job: who has room, how many slots to ask each, which nodes see which.

Pure functions over plain data, so the rules can be read and tested apart from the controller.
A daemon is described by a dict with ``id``, ``name``, ``limits`` and ``live`` (instances it holds
now). Its room is its free instance slots, bounded by its free ports.
"""
import math
import random


def room(daemon):
    """How many more instances ``daemon`` can take."""
    limits = daemon["limits"]
    ports = limits["end_port"] - limits["start_port"] + 1
    return max(0, min(limits["max_instances"], ports) - daemon["live"])


def check_resources(nb_nodes, memory, daemons):
    """None when ``daemons`` could host ``nb_nodes`` nodes of ``memory`` bytes each (0: any), else
    the reason why not, in words."""
    if not daemons:
        return "no daemon is connected"
    fitting = [d for d in daemons if not memory or d["limits"]["max_memory"] >= memory]
    if not fitting:
        largest = max(d["limits"]["max_memory"] for d in daemons)
        return (f"each node needs {memory // 2**20} MiB but the largest daemon offers "
                f"{largest // 2**20} MiB per instance")
    capacity = sum(room(d) for d in fitting)
    if capacity < nb_nodes:
        return (f"the job needs {nb_nodes} nodes but the {len(fitting)} daemon(s) that fit have "
                f"room for {capacity}")
    return None


def plan_registration(nb_nodes, factor, memory, daemons):
    """How many slots to register on each daemon: {daemon id: count}.

    Asks for ``ceil(nb_nodes * factor)`` slots (at least ``nb_nodes``, at most what exists), spread
    evenly: each round gives one slot to every daemon that still has room, so that the fastest
    repliers can be kept and no daemon takes more than its share.
    """
    fitting = [d for d in daemons if not memory or d["limits"]["max_memory"] >= memory]
    left = {d["id"]: room(d) for d in fitting}
    wanted = min(max(nb_nodes, math.ceil(nb_nodes * factor)), sum(left.values()))
    plan = {}
    while wanted > 0:
        for daemon_id in list(left):
            if wanted == 0:
                break
            if left[daemon_id] == 0:
                del left[daemon_id]
                continue
            plan[daemon_id] = plan.get(daemon_id, 0) + 1
            left[daemon_id] -= 1
            wanted -= 1
    return plan


def node_lists(nb_nodes, list_size, list_type, seed=None):
    """The list each node receives, as indices into the job's node list (position order).

    ``head``: every node gets the first ``list_size`` nodes (returned as None per node: the daemon
    takes the head of the shared list itself). ``random``: each node gets ``list_size`` distinct
    other nodes at random (never itself), fewer when the job is smaller.
    """
    if list_type == "head":
        return [None] * nb_nodes
    rng = random.Random(seed)
    lists = []
    for position in range(nb_nodes):
        others = [i for i in range(nb_nodes) if i != position] if nb_nodes <= 4 * list_size else None
        if others is not None:
            lists.append(rng.sample(others, min(list_size, len(others))))
            continue
        chosen = set()
        while len(chosen) < list_size:
            i = rng.randrange(nb_nodes)
            if i != position:
                chosen.add(i)
        lists.append(sorted(chosen))
    return lists

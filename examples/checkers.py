"""Checkers for the example protocols: they look at running nodes from outside, over RPC.

The tests (tests/test_example_*.py) and the scale benchmark (bench/test_scale.py) start the
examples with ``splay run`` and use these functions to verify each protocol's property -- a
correct Chord ring and correct lookups, converged Cyclon views, a broadcast that reached
everyone -- against the ground truth computed here, never against what the nodes print.

Every function that talks to nodes must run inside a SPLAY thread; :func:`run` runs one function
under ``events.run`` and returns its result (or raises its exception) in ordinary code::

    nodes = local_nodes(16, first_port)
    problems = run(lambda: wait_for(lambda: chord_ring_problems(nodes), timeout=60))
"""
import hashlib
import os
import random
import signal
import socket as pysocket
import statistics
import subprocess
import sys
import time

from splay import events, rpc
from splay.node import address
from splay.utils import local_nodes

from .chord_demo import chord_demo, chord_walk     # node 0's demo, also used by the tests

__all__ = ["ROOT", "ENV", "local_nodes", "free_port_range", "start_run", "run", "wait_for",
           "chord_key", "chord_owner", "chord_ring_problems", "chord_lookup_problems",
           "chord_walk", "chord_demo", "cyclon_view_problems", "cyclon_in_degrees", "epidemic_problems", "call_all",
           "stop_nodes", "crash_node"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
ENV.pop("SPLAY_JOB", None)
M = 48    # identifier bits of the Chord examples


def free_port_range(count, low=10000, high=32768, rng=random):
    """A first port such that ``count`` consecutive ports on 127.0.0.1 are free now (TCP and UDP).

    Tests of several contributors run at the same time: a random start avoids fixed-port clashes.
    The default range ends below Linux's ephemeral ports (32768 and up), so the nodes' ports
    never collide with the local ports of outgoing connections.
    """
    if count > high - low:
        raise ValueError(f"{count} ports do not fit in {low}..{high}")
    for _ in range(20):
        first = rng.randrange(low, high - count + 1)
        port = first
        while port < first + count and _port_free(port):
            port += 1
        if port == first + count:
            return first
    raise RuntimeError(f"no {count} consecutive free ports found in {low}..{high}: "
                       "too many ports in use, or ask for fewer nodes")


def _port_free(port):
    for kind in (pysocket.SOCK_STREAM, pysocket.SOCK_DGRAM):
        s = pysocket.socket(pysocket.AF_INET, kind)
        try:
            # As the servers bind: a TIME_WAIT connection left by an earlier run does not count.
            s.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def start_run(app, nb_nodes, first_port, args=(), in_process=False, time_limit=120, log=None,
              extra=()):
    """Start ``splay run examples/APP -n N`` (a ``subprocess.Popen``; its output goes to ``log``)."""
    cmd = [sys.executable, "-m", "splay.cli", "run", os.path.join(ROOT, "examples", app),
           "-n", str(nb_nodes), "--first-port", str(first_port), "--time-limit", str(time_limit),
           "--quiet", *(["--in-process"] if in_process else []), *extra]
    if log is not None:
        cmd += ["--log", str(log)]
    cmd += ["--", *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT if log is None else os.path.dirname(str(log)))


def run(fn, *args):
    """Run ``fn(*args)`` as a SPLAY thread under ``events.run``; return its result or raise."""
    outcome = {}

    def main():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:     # handed to the caller, outside the scheduler
            outcome["error"] = e
        finally:
            events.exit()

    events.run(main)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def wait_for(problems_now, timeout, period=0.5):
    """Call ``problems_now()`` every ``period`` seconds until it returns an empty list or
    ``timeout`` seconds passed; returns the last list (empty: the property holds)."""
    deadline = time.monotonic() + timeout
    while True:
        problems = problems_now()
        if not problems or time.monotonic() >= deadline:
            return problems
        events.sleep(period)


def call_all(nodes, call, timeout=10, parallel=64):
    """``rpc.call(node, call)`` on every node, ``parallel`` at a time: the list of results
    (None for a node that did not answer)."""
    results = [None] * len(nodes)
    gate = events.semaphore(parallel)
    done = {"count": 0}

    def one(i):
        with gate:
            results[i] = rpc.call(nodes[i], call, timeout)
        done["count"] += 1
        if done["count"] == len(nodes):
            events.fire("checkers:call_all")

    if not nodes:
        return results
    for i in range(len(nodes)):
        events.thread(lambda i=i: one(i))
    events.wait("checkers:call_all")
    return results


def stop_nodes(nodes):
    """Ask every node to end (the examples' ``stop`` function)."""
    call_all(nodes, "stop", timeout=5)


def crash_node(pid):
    """Kill a node process at once (SIGKILL): no goodbye, its sockets vanish."""
    os.kill(pid, signal.SIGKILL)


# ---- Chord ----------------------------------------------------------------------------------

def chord_key(node):
    """The Chord id of a node: SHA1 of "ip:port", truncated to M bits (as the examples do)."""
    ip, port = address(node)
    return int.from_bytes(hashlib.sha1(f"{ip}:{port}".encode()).digest()[:M // 8], "big")


def chord_owner(key, ids):
    """The id responsible for ``key`` among the sorted ``ids``: the first id >= key (wrapping)."""
    for i in ids:
        if i >= key:
            return i
    return ids[0]


def chord_ring_problems(nodes, field="successor"):
    """What is wrong with the ring of ``nodes`` (alive nodes): each node's ``successor`` (a
    remote variable) must be the next node in id order, and its ``predecessor`` the previous
    one. Returns a list of messages, empty when the ring is correct."""
    ids = sorted(chord_key(n) for n in nodes)
    nxt = {a: b for a, b in zip(ids, ids[1:] + ids[:1])}
    prv = {b: a for a, b in nxt.items()}
    succs = call_all(nodes, field)
    preds = call_all(nodes, "predecessor")
    problems = []
    for node, succ, pred in zip(nodes, succs, preds):
        k = chord_key(node)
        if not isinstance(succ, dict) or succ.get("id") != nxt[k]:
            problems.append(f"{node['port']}: successor {_id_of(succ)}, expected {nxt[k]:012x}")
        if len(ids) > 1 and (not isinstance(pred, dict) or pred.get("id") != prv[k]):
            problems.append(f"{node['port']}: predecessor {_id_of(pred)}, expected {prv[k]:012x}")
    return problems


def _id_of(node):
    if isinstance(node, dict) and isinstance(node.get("id"), int):
        return f"{node['id']:012x}"
    return repr(node)


def chord_lookup_problems(nodes, samples=20, call="find_successor", rng=random):
    """Look up ``samples`` random keys, each from a random node of ``nodes``: every answer must
    be the owner of the key among ``nodes``. Returns (problems, hop counts)."""
    ids = sorted(chord_key(n) for n in nodes)
    problems, hops = [], []
    for _ in range(samples):
        key, start = rng.randrange(2 ** M), rng.choice(nodes)
        found = rpc.call(start, [call, key], 20)
        want = chord_owner(key, ids)
        if not isinstance(found, tuple) or not isinstance(found[0], dict):
            problems.append(f"lookup {key:012x} from {start['port']}: no answer ({found!r:.80})")
        elif found[0].get("id") != want:
            problems.append(f"lookup {key:012x} from {start['port']}: {_id_of(found[0])}, "
                            f"expected {want:012x}")
        else:
            hops.append(found[1])
    return problems, hops


# ---- Cyclon ---------------------------------------------------------------------------------

def cyclon_views(nodes):
    """Each node's view: the list of (ip, port) it holds, read from its ``view_nodes()``."""
    return [None if v is None else [tuple(p) for p in v] for v in call_all(nodes, "view_nodes")]


def cyclon_in_degrees(nodes, views):
    """How many views hold each node (in the order of ``nodes``)."""
    count = {(n["ip"], n["port"]): 0 for n in nodes}
    for view in views:
        for peer in view or ():
            if peer in count:
                count[peer] += 1
    return [count[(n["ip"], n["port"])] for n in nodes]


def cyclon_view_problems(nodes, views, view_size, max_stdev):
    """What keeps the Cyclon overlay of ``nodes`` from being a converged peer sample: a node
    that did not answer, a view with itself or a duplicate, a view not full, a node nobody
    knows, or an in-degree spread (standard deviation) above ``max_stdev``."""
    problems = []
    for node, view in zip(nodes, views):
        me = (node["ip"], node["port"])
        if view is None:
            problems.append(f"{node['port']}: no answer")
            continue
        if me in view:
            problems.append(f"{node['port']}: its view holds itself")
        if len(set(view)) != len(view):
            problems.append(f"{node['port']}: duplicates in its view {view}")
        if len(view) != min(view_size, len(nodes) - 1):
            problems.append(f"{node['port']}: view of {len(view)} entries, expected {view_size}")
    degrees = cyclon_in_degrees(nodes, views)
    if 0 in degrees:
        problems.append(f"{degrees.count(0)} node(s) in no view")
    spread = statistics.pstdev(degrees)
    if spread > max_stdev:
        problems.append(f"in-degree standard deviation {spread:.2f} > {max_stdev}")
    return problems


# ---- Epidemic broadcast ---------------------------------------------------------------------

def epidemic_problems(nodes, expected):
    """Every node must have delivered exactly the messages ``expected`` (ids), each once; the
    nodes expose ``delivered`` (the list of message ids, in delivery order)."""
    problems = []
    for node, got in zip(nodes, call_all(nodes, "delivered")):
        if got is None:
            problems.append(f"{node['port']}: no answer")
        elif len(got) != len(set(got)):
            problems.append(f"{node['port']}: delivered a message twice: {got}")
        elif set(got) != set(expected):
            missing = sorted(set(expected) - set(got))
            problems.append(f"{node['port']}: missing {missing}")
    return problems

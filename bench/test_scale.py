"""Scale of examples/chord.py under ``splay run``: does a ring of N nodes converge, how much
memory does a node cost, and how long do N nodes take to start?

For one run of N nodes (one process per node, or all in one process with ``--in-process``):

- **start**: seconds from launching ``splay run`` until every node answers an RPC;
- **converged**: seconds from launch until every node's successor and predecessor are right
  (checked over RPC against the ring of the nodes' ids, examples/checkers.py), and 100 lookups
  from random nodes all return the right node (with their mean hop count);
- **memory**: resident set size of the node processes, divided by N, read while the ring is
  converged (process-per-node: the sum over the node processes, RSS and USS -- USS leaves out
  the pages shared between them; in-process: the one host process).

The quick default sizes run in about two minutes. The figures of bench/RESULTS-scale.md come from

    SPLAY_SCALE="in-process:10000:period=10" python -m pytest bench/test_scale.py -s -q
    SPLAY_SCALE="processes:200:period=2,in-process:2000:period=3" python -m pytest ...

(``MODE:N[:key=value ...]``, comma-separated; the key=value options go to chord.py;
``SPLAY_SCALE_RUN_ARGS``: more ``splay run`` options, e.g. ``--no-metrics``;
``SPLAY_SCALE_FIRST_PORT``: the nodes' first port, when another run holds ports of the range;
``SPLAY_SCALE_DEADLINE``: seconds after the launch when the benchmark stops waiting for the ring,
so that a large run ends by a known time and still reports how far it got). Each run prints
``scale started {json}`` once every node answers (with the memory per node then), ``scale
progress:`` lines while it waits (wrong pointers, the node processes' open descriptors and the
cores they used since the last line) and one line ``scale {json}``, whose ``wrong_over_time``
holds the [seconds, wrong pointers] of every check and ``joins_due_s`` when the last join wave
of examples/chord.py has ended (node i joins in wave floor(log2(i)), at ``wave`` * (floor(log2(i))
+ a random fraction) seconds after its start: the last wave ends at ``wave`` * bit_length(N - 1)).
"""
import json
import math
import os
import random
import time

import psutil
import pytest

from examples import checkers
from examples.checkers import local_nodes, run, wait_for
from splay.launch.workers import node_addresses

QUICK = "processes:24:period=0.5,in-process:300:period=1"


def sizes():
    """The (mode, nodes, app options) runs asked for by $SPLAY_SCALE (default: QUICK)."""
    runs = []
    for item in os.environ.get("SPLAY_SCALE", QUICK).split(","):
        mode, n, *options = item.strip().split(":")
        if mode not in ("processes", "in-process") and not workers_of(mode):
            raise ValueError(f"SPLAY_SCALE: mode {mode!r} is none of 'processes', 'in-process', "
                             "'workersK' (--in-process --workers K)")
        runs.append((mode, int(n), options))
    return runs


def workers_of(mode):
    """K of a mode ``workersK`` (``splay run --in-process --workers K``), else 0."""
    rest = mode[len("workers"):] if mode.startswith("workers") else ""
    return int(rest) if rest.isdigit() and int(rest) >= 1 else 0


def period_of(options):
    for opt in options:
        if opt.startswith("period="):
            return float(opt.split("=", 1)[1])
    return 0.5


def node_processes(launcher, mode):
    """The node processes started by the launcher (psutil objects)."""
    children = psutil.Process(launcher.pid).children(recursive=True)
    marker = {"in-process": "splay.launch.in_process", "processes": "splay.launch.node"}.get(
        mode, "splay.launch.workers_host")
    return [p for p in children if marker in " ".join(_cmdline(p))]


def _cmdline(p):
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def descriptors_and_cpu(procs):
    """``open files max F, CPU C s`` of the node processes ``procs`` (the busiest one's
    descriptors, the CPU seconds of all)."""
    fds, cpu = [], 0.0
    for p in procs:
        try:
            fds.append(p.num_fds())
            times = p.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            continue
    return f"open files max {max(fds, default=0)}, CPU {cpu:.0f} s"


def peak_descriptors(procs, peak):
    """Update ``peak`` (pid -> most descriptors seen) with what ``procs`` hold now."""
    for p in procs:
        try:
            peak[p.pid] = max(peak.get(p.pid, 0), p.num_fds())
        except psutil.Error:
            continue
    return peak


def cpu_seconds(procs):
    """The CPU seconds (user + system) used so far by ``procs``."""
    total = 0.0
    for p in procs:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def memory(procs):
    """(RSS, USS) summed over ``procs``, in bytes."""
    rss = uss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        uss += info.uss
    return rss, uss


def measure(mode, n, options, launched_at, launcher):
    """Everything one run measures (inside a SPLAY thread)."""
    nodes = (node_addresses(n, launcher.first_port) if workers_of(mode)
             else local_nodes(n, launcher.first_port))
    period = period_of(options)
    wave = next((float(o.split("=", 1)[1]) for o in options if o.startswith("wave=")), period * 3)
    liveness = 300 + (math.log2(max(n, 2)) + 1) * wave * 2 + n * 0.05
    deadline = float(os.environ.get("SPLAY_SCALE_DEADLINE", 0)) or math.inf
    silent = wait_for(lambda: [x for x, r in zip(nodes, checkers.call_all(nodes, "me", 30, 200))
                               if r is None], liveness, period=1)
    started = time.monotonic() - launched_at
    result = {"mode": mode, "nodes": n, "options": options, "start_s": round(started, 1),
              "silent_nodes": len(silent), "joins_due_s": round(wave * (n - 1).bit_length(), 1),
              "load_at_start": os.getloadavg()[0]}
    hosts = node_processes(launcher, mode)
    rss, uss = memory(hosts)           # every node up and serving, before the ring forms
    print("scale started " + json.dumps(dict(result, rss_per_node_kb=round(rss / n / 1024, 1),
                                             uss_per_node_kb=round(uss / n / 1024, 1))), flush=True)

    history, peak, last = [], {}, [time.monotonic(), cpu_seconds(hosts)]

    def ring_problems():
        problems = checkers.chord_ring_problems(nodes)
        now, cpu = time.monotonic(), cpu_seconds(hosts)
        cores, last[:] = (cpu - last[1]) / max(now - last[0], 1e-9), [now, cpu]
        history.append([round(now - launched_at), len(problems)])
        peak_descriptors(hosts, peak)
        print(f"scale progress: {now - launched_at:.0f} s, {len(problems)} wrong "
              f"pointers; {descriptors_and_cpu(hosts)}; {cores:.2f} cores since the last line; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        return problems

    wait_s = min(liveness, deadline - (time.monotonic() - launched_at))
    ring = wait_for(ring_problems, max(wait_s, 0), period=max(2, period * 2))
    result["ring_problems"] = len(ring)
    result["ring_problem_sample"] = ring[:3]
    waited = round(time.monotonic() - launched_at, 1)
    result["converged_s"] = waited if not ring else None      # None: still wrong when it stopped
    result["waited_s"] = waited
    result["at_convergence"] = descriptors_and_cpu(hosts)
    result["load_at_end"] = os.getloadavg()[0]
    result["wrong_over_time"] = history
    result["peak_descriptors_per_process"] = sorted(peak.values())
    result["cpu_s_of_nodes"] = round(cpu_seconds(hosts), 1)
    if not ring:       # lookups through a ring still forming say nothing and may each time out
        lookups, hops = checkers.chord_lookup_problems(nodes, samples=100, rng=random.Random(1))
        result["lookup_problems"] = len(lookups)
        result["mean_hops"] = round(sum(hops) / len(hops), 2) if hops else None
    procs = node_processes(launcher, mode)
    rss, uss = memory(procs)
    result.update(processes=len(procs), rss_total_mb=round(rss / 2 ** 20, 1),
                  rss_per_node_kb=round(rss / n / 1024, 1), uss_per_node_kb=round(uss / n / 1024, 1))
    checkers.stop_nodes(nodes)
    return result


@pytest.mark.timeout(4 * 3600)     # a 10,000-node ring takes tens of minutes
@pytest.mark.parametrize("mode,n,options", sizes(),
                         ids=[f"{m}-{n}" for m, n, _ in sizes()])
def test_chord_ring_converges(tmp_path, mode, n, options):
    k = workers_of(mode)
    # --workers: past 127.0.0.1's ports below the ephemeral range, the nodes go on 127.0.0.2, ...
    first = int(os.environ.get("SPLAY_SCALE_FIRST_PORT", 0)) or \
        checkers.free_port_range(min(n, 16000) if k else n)
    launched_at = time.monotonic()
    launcher = checkers.start_run("chord.py", n, first, ["demo=0", *options],
                                  in_process=mode != "processes", time_limit=3600,
                                  log=tmp_path / "run.log",
                                  extra=(["--workers", str(k)] if k else [])
                                  + os.environ.get("SPLAY_SCALE_RUN_ARGS", "").split())
    launcher.first_port = first
    try:
        result = run(measure, mode, n, options, launched_at, launcher)
        out, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    print("scale " + json.dumps(result), flush=True)
    assert result["silent_nodes"] == 0
    assert result["ring_problems"] == 0, result["ring_problem_sample"]
    assert result["lookup_problems"] == 0, "lookups returned wrong owners on a correct ring"
    assert launcher.returncode == 0, out[-2000:]

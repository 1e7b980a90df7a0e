"""How much of one core the controller spends ingesting the metrics of 1,000 deployed nodes.

A real controller process (``python -m splay.deploy.controller``, SQLite; PostgreSQL too when a
server can be had, see tests/test_deploy_support.py) and simulated daemons in this process, over
real TCP connections on loopback: they speak the daemon protocol (hello, pong, registered,
started), so the controller deploys one job of NODES nodes onto them; then every daemon sends one
``metrics`` message per second with one sample per node -- the sample of a Chord-like node (three
rpcq functions with their latency histograms, an application histogram and a gauge), its
counters growing. The controller's CPU time (user + system, from /proc) over MEASURE seconds,
divided by the wall time, is its share of one core. The peer in the same run is the same
controller with the same job and daemons sending no metrics (its pings, timers and idle loop).

    python -m pytest bench/test_metrics_ingest.py -s -q

prints one line ``metrics-ingest {json}`` per configuration: SQLite, SQLite with downsampling
running all along (tiers of 5 s and 15 s), PostgreSQL (the controller's CPU only, not the
server's). Target: ingest < 20 % of one core.
"""
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from splay.deploy.testbed import free_port
from splay.observatory.buckets import N_BUCKETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = int(os.environ.get("SPLAY_INGEST_NODES", 1000))
DAEMONS = 10
INTERVAL = 1.0
WARMUP = 5.0
MEASURE = float(os.environ.get("SPLAY_INGEST_SECONDS", 30))
KEY, TOKEN = "bench-key", "bench-token"


def sample(i, node):
    """The ``i``-th cumulative sample of a Chord-like node."""
    def rpc(calls):
        latency = [0] * N_BUCKETS
        latency[6], latency[7], latency[8] = calls // 2, calls // 3, calls - calls // 2 - calls // 3
        return {"made": calls, "served": calls + node % 3, "errors": calls // 100,
                "timeouts": calls // 500, "latency": latency, "latency_sum": calls * 0.0007}
    hops = [0] * N_BUCKETS
    hops[2], hops[3] = 3 * i, 2 * i
    return {"ts": time.time(), "rpc": {"rpcq/find_successor": rpc(12 * i), "rpcq/notify": rpc(i),
                                       "rpcq/(ping)": rpc(2 * i)},
            "bytes_sent": 4000 * i, "bytes_received": 3900 * i, "threads": 4,
            "rss": 24_000_000, "cpu": 0.01 * i,
            "app": {"hops": {"type": "histogram", "counts": hops, "sum": 12.0 * i},
                    "fingers": {"type": "gauge", "value": 14}}}


class SimulatedDaemon:
    """One daemon connection that registers and 'starts' instances without processes."""

    def __init__(self, index, port):
        self.index = index
        self.port = port
        self.instances = []
        self.sending = False
        self.sent = 0

    async def run(self):
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=2 ** 26)
        limits = {"max_instances": NODES, "max_memory": 2 ** 30, "start_port": 30000,
                  "end_port": 30000 + NODES, "max_bandwidth": 0}
        self.send({"type": "hello", "key": KEY, "name": f"sim{self.index}", "ip": "127.0.0.1",
                   "limits": limits, "instances": [], "time": time.time()})
        asyncio.ensure_future(self.ship())
        while True:
            line = await reader.readline()
            if not line:
                return
            message = json.loads(line)
            kind = message["type"]
            if kind == "ping":
                self.send({"type": "pong", "t0": message["t0"], "time": time.time()})
            elif kind == "register":
                ports = {i: 30000 + k for k, i in enumerate(message["instances"])}
                self.send({"type": "registered", "job": message["job"], "ports": ports,
                           "refused": {}})
            elif kind == "start":
                self.instances = [e["id"] for e in message["instances"]]
                self.send({"type": "started", "job": message["job"]["ref"],
                           "instances": [{"id": i, "pid": 0} for i in self.instances],
                           "failed": {}})

    def send(self, message):
        self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def ship(self):
        await asyncio.sleep(random.uniform(0, INTERVAL))       # daemons are not in phase
        i = 0
        while True:
            if self.sending and self.instances:
                i += 1
                self.send({"type": "metrics", "dropped": {},
                           "samples": [[n, sample(i, n)] for n in self.instances]})
                self.sent += len(self.instances)
            await asyncio.sleep(INTERVAL)


def cpu_seconds(pid):
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def api(port, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


async def measure(db_url, tmp_path, extra=()):
    daemon_port, api_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    controller = subprocess.Popen(
        [sys.executable, "-m", "splay.deploy.controller", "--db", db_url,
         "--listen", f"127.0.0.1:{daemon_port}", "--api", f"127.0.0.1:{api_port}",
         "--daemon-key", KEY, "--token", TOKEN, "--log-level", "WARNING",
         "--ready-file", str(tmp_path / "ready.json"), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "controller.log", "w"))
    try:
        while not (tmp_path / "ready.json").exists():
            assert controller.poll() is None, (tmp_path / "controller.log").read_text()
            await asyncio.sleep(0.05)
        daemons = [SimulatedDaemon(i, daemon_port) for i in range(DAEMONS)]
        for d in daemons:
            asyncio.ensure_future(d.run())
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(None, api, api_port, "/api/jobs",
                                         {"name": "chord", "code": "pass", "nodes": NODES})
        while (await loop.run_in_executor(None, api, api_port, f"/api/jobs/{job['id']}")
               )["state"] != "RUNNING":
            await asyncio.sleep(0.2)
        figures = {}
        for phase in ("idle", "ingest"):
            for d in daemons:
                d.sending = phase == "ingest"
            await asyncio.sleep(WARMUP)
            sent, cpu, wall = sum(d.sent for d in daemons), cpu_seconds(controller.pid), \
                time.monotonic()
            await asyncio.sleep(MEASURE)
            share = (cpu_seconds(controller.pid) - cpu) / (time.monotonic() - wall)
            figures[phase] = {"cpu_share": round(share, 4),
                              "samples_per_s": round((sum(d.sent for d in daemons) - sent)
                                                     / MEASURE, 1)}
        scraped = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{api_port}/metrics",
            headers={"Authorization": f"Bearer {TOKEN}"}), timeout=30).read().decode()
        figures["store"] = {line.split()[0]: float(line.split()[1])
                            for line in scraped.splitlines()
                            if line.startswith("splay_controller_metric_samples_")}
        return figures
    finally:
        controller.terminate()
        controller.wait(30)


def databases(tmp_path):
    """(name, database URL, controller options) of each configuration measured."""
    yield "sqlite", str(tmp_path / "controller.db"), ()
    # Downsampling at work all along: samples older than 5 s thinned to one per 5 s, etc.
    yield "sqlite+downsampling", str(tmp_path / "downsampled.db"), \
        ("--metrics-tiers", "5s=5s,15s=15s")
    try:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from test_deploy_support import fresh_postgres_database, postgres_url
        url, drop = fresh_postgres_database(postgres_url())
    except (pytest.skip.Exception, ImportError, OSError) as e:
        print(f"metrics-ingest: PostgreSQL skipped ({e})")
        return
    try:
        yield "postgresql", url, ()
    finally:
        drop()


@pytest.mark.timeout(1800)
def test_controller_ingests_1000_nodes_metrics_under_a_fifth_of_a_core(tmp_path, benchmark):
    results = {}
    for name, url, extra in databases(tmp_path):
        directory = tmp_path / name
        directory.mkdir()
        figures = asyncio.run(measure(url, directory, extra))
        line = {"database": name, "nodes": NODES, "interval_s": INTERVAL, **figures}
        print("metrics-ingest " + json.dumps(line))
        results[name] = figures
    benchmark.extra_info.update(results)
    benchmark.pedantic(lambda: None, rounds=1)
    for name, figures in results.items():
        assert figures["ingest"]["samples_per_s"] > 0.9 * NODES / INTERVAL
        assert figures["ingest"]["cpu_share"] < 0.20, (name, figures)
    if "sqlite+downsampling" in results:
        assert results["sqlite+downsampling"]["store"][
            "splay_controller_metric_samples_thinned_total"] > 0

"""The daemon's instances: reservations, processes, output, stop of a whole process group."""
import asyncio
import json
import os
import socket
import sys


from splay.deploy.instances import InstanceManager, Limits
from splay.deploy.testbed import alive, free_port_range
from test_deploy_support import PYTHONPATH

# Starts a grandchild (a sleeping process) and reports both pids, then waits.
FAMILY_APP = '''
import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
job = json.loads(os.environ["SPLAY_JOB"])
print(json.dumps({"me": os.getpid(), "child": child.pid, "position": job["position"],
                  "nodes": len(job["nodes"]), "port": job["me"]["port"], "dir": job["dir"],
                  "cwd": os.getcwd()}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
time.sleep(600)
'''


def manager(tmp_path, **limits):
    messages, lines = [], []
    instances = InstanceManager(Limits(**limits), "127.0.0.1", str(tmp_path), messages.append,
                                lambda *line: lines.append(line), sandbox=False)
    return instances, messages, lines


def port_range(count):
    start = free_port_range(count)
    return {"start_port": start, "end_port": start + count - 1}


def test_register_refuses_with_reasons_and_skips_busy_ports(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        instances, _, _ = manager(tmp_path, max_instances=3, max_memory=2**20, start_port=port,
                                  end_port=port + 1)
        ports, refused = instances.register("job", 0, [1, 2])
        # The busy port is skipped; the next one may be free (or used by another program).
        assert port not in ports.values() and len(ports) <= 1
        assert set(refused.values()) == {"no free port left in the range"}
        assert len(ports) + len(refused) == 2
    ports, refused = instances.register("job", 2**21, [7])
    assert ports == {} and "needs 2 MiB per node, this daemon offers 1 MiB" in refused[7]
    instances.free(list(ports) + [1, 2])
    assert instances.live() == []


def test_register_stops_at_the_slot_limit(tmp_path):
    instances, _, _ = manager(tmp_path, max_instances=2, **port_range(100))
    ports, refused = instances.register("job", 0, [1, 2, 3])
    assert sorted(ports) == [1, 2] and refused == {3: "all 2 instance slots taken"}
    _, again = instances.register("job", 0, [1])
    assert again == {1: "instance id already in use"}


def test_a_started_instance_gets_its_job_and_stop_kills_its_whole_group(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    instances, messages, lines = manager(tmp_path, **port_range(100))

    async def scenario():
        ports, _ = instances.register("ref1", 0, [5])
        job = {"ref": "ref1", "name": "family", "code": FAMILY_APP, "list_type": "head",
               "list_size": 3, "settings": {}}
        nodes = [{"ip": "127.0.0.1", "port": ports[5]}, {"ip": "127.0.0.1", "port": 1},
                 {"ip": "127.0.0.1", "port": 2}]
        started, failed = await instances.start(job, nodes, [{"id": 5, "position": 0, "list": None}])
        assert failed == {} and started[0]["id"] == 5
        instances.announce(started)
        instances.release_job("ref1")
        while not any(stream == "stdout" for _, _, stream, _ in lines):
            await asyncio.sleep(0.05)
        info = json.loads(next(text for _, _, stream, text in lines if stream == "stdout"))
        assert info["me"] == started[0]["pid"]
        assert info["position"] == 0 and info["nodes"] == 3 and info["port"] == ports[5]
        assert os.path.realpath(info["cwd"]) == os.path.realpath(info["dir"])
        assert os.path.exists(os.path.join(info["dir"], "nodes.json"))
        assert alive(info["child"])
        instances.stop([5, 99])
        while not any(m["type"] == "exited" and m["id"] == 5 for m in messages):
            await asyncio.sleep(0.05)
        return info
    info = asyncio.run(scenario())
    ends = {m["id"]: m for m in messages if m["type"] == "exited"}
    assert ends[5]["state"] == "KILLED" and ends[99]["state"] == "KILLED"
    assert not alive(info["me"]) and not alive(info["child"])
    assert ("stderr", "to stderr") in [(stream, text) for _, _, stream, text in lines]
    assert [r["state"] for r in instances.report()] == ["KILLED"]


def test_an_instance_that_cannot_start_is_reported_failed(tmp_path, monkeypatch):
    instances, _, _ = manager(tmp_path, **port_range(100))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setattr("splay.deploy.instances.SETPRIV", None)

    async def scenario():
        instances.register("ref2", 0, [1])
        job = {"ref": "ref2", "name": "x", "code": "print(1)", "list_type": "head",
               "list_size": 1, "settings": {}}
        return await instances.start(job, [{"ip": "127.0.0.1", "port": 1}],
                                     [{"id": 1, "position": 0, "list": None},
                                      {"id": 2, "position": 1, "list": None}])
    started, failed = asyncio.run(scenario())
    assert started == []
    assert "cannot start the process" in failed[1]
    assert "not registered" in failed[2]


def test_a_node_list_too_long_for_the_environment_stays_in_the_nodes_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    instances, messages, lines = manager(tmp_path, **port_range(100))
    app = ('import json, os\njob = json.loads(os.environ["SPLAY_JOB"])\n'
           'print(len(job["nodes"]), len(json.load(open(job["nodes_file"]))))\n')
    nodes = [{"ip": "127.0.0.1", "port": 40000 + i} for i in range(5000)]

    async def scenario():
        instances.register("ref3", 0, [1])
        job = {"ref": "ref3", "name": "big", "code": app, "list_type": "head",
               "list_size": 5000, "settings": {}}
        started, failed = await instances.start(job, nodes, [{"id": 1, "position": 0, "list": None}])
        assert failed == {}
        instances.announce(started)
        instances.release_job("ref3")
        while not any(m["type"] == "exited" for m in messages):
            await asyncio.sleep(0.05)
    asyncio.run(scenario())
    assert [text for _, _, _, text in lines] == ["0 5000"]
    assert [m["exit_code"] for m in messages if m["type"] == "exited"] == [0]

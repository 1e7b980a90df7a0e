"""splay.job: the Job object, its JSON form (SPLAY_JOB) and the nodes file it re-reads on churn."""
import importlib
import json
import os
import time

import pytest

from splay import Node
from splay.job import ENV_VAR, Job, read_nodes_from
from support_log import check_module_logger

NODES = [Node("127.0.0.1", 20000 + i) for i in range(5)]


def write_nodes_file(path, nodes):
    """Atomic rewrite, as launchers and daemons do (temporary file + rename)."""
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump([{"ip": n[0], "port": n[1]} for n in nodes], f)
    os.replace(tmp, path)


def test_fields_and_head_invariant():
    job = Job(me={"ip": "127.0.0.1", "port": 20002}, position=2, nodes=NODES, ref="r1", name="app")
    assert job.me == Node("127.0.0.1", 20002) and isinstance(job.me, Node)
    assert job.position == 2 and job.list_type == "head"
    assert job.ref == "r1" and job.name == "app"
    assert job.nodes()[job.position] == job.me
    assert job.settings == {} and job.dir is None and job.sandbox is None


def test_nodes_returns_a_fresh_list_each_call():
    job = Job(me=NODES[0], position=0, nodes=NODES)
    first = job.nodes()
    first.clear()
    second = job.nodes()
    assert second == NODES and second is not first
    assert all(isinstance(n, Node) for n in second)


def test_derive_computes_once_per_membership_for_the_jobs_of_a_process(tmp_path):
    # Jobs of one process reading one nodes file (--in-process, --sim) share one result.
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    calls = []

    def count(nodes):
        calls.append(nodes)
        return len(nodes)

    written = time.time() - 1                 # older than RACY_SECONDS: read once, then trusted
    os.utime(path, (written, written))
    jobs = [Job(me=n, position=i, nodes=[], nodes_file=str(path)) for i, n in enumerate(NODES)]
    assert [job.derive(count) for job in jobs] == [5] * 5
    assert calls == [tuple(NODES)]


def test_derive_follows_a_membership_change(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    job = Job(me=NODES[0], position=0, nodes=[], nodes_file=str(path))
    assert job.derive(lambda nodes: [n.port for n in nodes]) == [n.port for n in NODES]
    write_nodes_file(path, NODES[:2])
    assert job.derive(lambda nodes: [n.port for n in nodes]) == [20000, 20001]


def test_derive_without_a_nodes_file_uses_the_start_list():
    job = Job(me=NODES[1], position=1, nodes=NODES)
    assert job.derive(sorted) == sorted(NODES)
    other = Job(me=NODES[0], position=0, nodes=NODES[:3])     # another list: its own result
    assert other.derive(sorted) == NODES[:3]


def test_nodes_accept_every_node_form():
    job = Job(me=("127.0.0.1", 20000), position=0,
              nodes=[{"ip": "127.0.0.1", "port": 20000}, ("127.0.0.1", 20001), Node("127.0.0.1", 20002)])
    assert job.nodes() == NODES[:3]


def test_json_round_trip_keeps_every_field(tmp_path):
    job = Job(me=NODES[1], position=1, nodes=NODES[2:], list_type="random", ref="ref-7", name="chord",
              list_size=3, nodes_file=str(tmp_path / "nodes.json"), dir=str(tmp_path),
              sandbox={"max_memory": 1 << 20}, settings={"max_sockets": 64})
    d = json.loads(job.to_json())
    assert d == {"ref": "ref-7", "name": "chord", "me": {"ip": "127.0.0.1", "port": 20001},
                 "position": 1, "list_type": "random",
                 "nodes": [{"ip": "127.0.0.1", "port": p} for p in (20002, 20003, 20004)],
                 "list_size": 3, "nodes_file": str(tmp_path / "nodes.json"), "dir": str(tmp_path),
                 "sandbox": {"max_memory": 1 << 20}, "settings": {"max_sockets": 64}}
    back = Job.from_json(job.to_json())
    assert back.to_dict() == job.to_dict()


def test_optional_keys_absent_from_minimal_json():
    d = json.loads(Job(me=NODES[0], position=0, nodes=NODES[:1]).to_json())
    assert set(d) == {"ref", "name", "me", "position", "list_type", "nodes"}


def test_from_json_defaults():
    job = Job.from_json('{"me": {"ip": "10.0.0.1", "port": 1}, "position": 0, "nodes": []}')
    assert job.list_type == "head" and job.ref == "local" and job.name == "local"
    assert job.nodes() == []


@pytest.mark.parametrize("text, message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"me": {"ip": "a", "port": 1}, "nodes": []}', "missing required key(s) position"),
    ('{"position": 0, "nodes": []}', "missing required key(s) me"),
    ('{"me": {"ip": "a", "port": 1}, "position": -1, "nodes": []}', "position must be an integer >= 0"),
    ('{"me": {"ip": "a", "port": 1}, "position": "3", "nodes": []}', "position must be an integer >= 0"),
    ('{"me": {"ip": "a", "port": 70000}, "position": 0, "nodes": []}', "invalid port 70000"),
    ('{"me": {"ip": "a", "port": 1}, "position": 0, "nodes": {}}', "'nodes' must be a list"),
    ('{"me": {"ip": "a", "port": 1}, "position": 0, "nodes": [], "list_type": "tail"}',
     "list_type must be 'head' or 'random'"),
    ('{"me": {"ip": "a", "port": 1}, "position": 0, "nodes": [], "settings": [1]}', "settings must be a dict"),
    ('{"me": {"ip": "a", "port": 1}, "position": 0, "nodes": [], "sandbox": true}', "sandbox must be a dict"),
    ('{"me": {"ip": "a", "port": 1}, "position": 0, "nodes": [], "list_size": -2}', "list_size must be"),
])
def test_bad_json_names_what_is_wrong(text, message):
    with pytest.raises(ValueError) as err:
        Job.from_json(text)
    assert message in str(err.value)


def test_from_env():
    job = Job(me=NODES[3], position=3, nodes=NODES)
    assert Job.from_env({}) is None
    assert Job.from_env({ENV_VAR: ""}) is None
    assert Job.from_env({ENV_VAR: job.to_json()}).me == NODES[3]
    with pytest.raises(ValueError, match="SPLAY_JOB: job is not valid JSON"):
        Job.from_env({ENV_VAR: "{"})


def test_table_style_access():
    job = Job(me=NODES[0], position=0, nodes=NODES, name="x")
    assert job["me"] == NODES[0] and job["position"] == 0 and job["name"] == "x"
    assert job["nodes"]() == NODES
    with pytest.raises(KeyError):
        job["nothing"]


def test_nodes_file_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    job = Job(me=NODES[0], position=0, nodes=NODES, nodes_file=str(path))
    assert job.nodes() == NODES
    write_nodes_file(path, NODES[:2])
    assert job.nodes() == NODES[:2]
    write_nodes_file(path, NODES[:2] + [Node("127.0.0.1", 30000)])
    assert job.nodes() == NODES[:2] + [Node("127.0.0.1", 30000)]


def test_nodes_file_head_view_follows_list_size(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    job = Job(me=NODES[0], position=0, nodes=[], list_size=2, nodes_file=str(path))
    assert job.nodes() == NODES[:2]                  # empty start list: read from the file
    write_nodes_file(path, NODES[1:])
    assert job.nodes() == NODES[1:3]


def test_start_list_holds_until_the_nodes_file_changes(tmp_path):
    # A random list chosen by the launcher or controller is not redrawn at the first call.
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    chosen = [NODES[4], NODES[1]]
    job = Job(me=NODES[0], position=0, nodes=chosen, list_type="random", list_size=2, nodes_file=str(path))
    assert all(job.nodes() == chosen for _ in range(5))
    write_nodes_file(path, NODES[:3])
    assert sorted(job.nodes()) == [NODES[1], NODES[2]]


def test_nodes_file_random_view_never_contains_me_and_is_stable(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    job = Job(me=NODES[2], position=2, nodes=[], list_type="random", list_size=2, nodes_file=str(path))
    view = job.nodes()
    assert len(view) == 2 and NODES[2] not in view and set(view) <= set(NODES)
    assert all(job.nodes() == view for _ in range(20))   # drawn once per version of the file
    write_nodes_file(path, NODES[:3])
    assert sorted(job.nodes()) == [NODES[0], NODES[1]]


def test_read_nodes_from_serves_the_membership_from_memory_instead_of_the_file(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    head = Job(me=NODES[0], position=0, nodes=[], nodes_file=str(path))
    drawn = Job(me=NODES[1], position=1, nodes=[], list_type="random", list_size=2, nodes_file=str(path))
    alive = [tuple(NODES[:3])]
    read_nodes_from(str(path), lambda: alive[0])
    try:
        assert head.nodes() == NODES[:3]               # the host's list, not the file's five
        view = drawn.nodes()
        assert len(view) == 2 and set(view) <= {NODES[0], NODES[2]}
        assert all(drawn.nodes() == view for _ in range(20))     # drawn again only on a change
        alive[0] = (NODES[0], NODES[3])
        assert head.nodes() == [NODES[0], NODES[3]] and sorted(drawn.nodes()) == [NODES[0], NODES[3]]
        assert head.derive(len) == 2
    finally:
        read_nodes_from(str(path), None)
    write_nodes_file(path, NODES[:4])
    assert head.nodes() == NODES[:4]                    # the file again


def test_unreadable_nodes_file_keeps_the_last_list(tmp_path):
    path = tmp_path / "nodes.json"
    job = Job(me=NODES[0], position=0, nodes=NODES, nodes_file=str(path))
    assert job.nodes() == NODES                      # no file yet: the list given at start
    path.write_text("[{\"ip\": \"127.0.0.1\", ")     # a writer caught mid-write
    assert job.nodes() == NODES
    write_nodes_file(path, NODES[:1])
    assert job.nodes() == NODES[:1]
    path.unlink()
    assert job.nodes() == NODES[:1]


def test_rewrite_that_keeps_the_stamp_is_still_seen(tmp_path):
    # Two versions of the file within one tick of the file system clock, same size, same inode:
    # the stamp cannot tell them apart, so a young file is read again and compared.
    path = tmp_path / "nodes.json"
    future = (time.time_ns() + 3600 * 10**9,) * 2          # "just written", whatever the load
    write_nodes_file(path, NODES[:2])
    os.utime(path, ns=future)
    job = Job(me=NODES[0], position=0, nodes=[], nodes_file=str(path))
    assert job.nodes() == NODES[:2]
    before = os.stat(path)
    with open(path, "r+") as f:                             # same size, in place
        f.write(json.dumps([{"ip": "127.0.0.1", "port": n.port} for n in NODES[2:4]]))
    os.utime(path, ns=future)
    after = os.stat(path)
    assert (before.st_mtime_ns, before.st_size, before.st_ino) == (after.st_mtime_ns, after.st_size, after.st_ino)
    assert job.nodes() == NODES[2:4]


def test_same_content_keeps_a_random_view(tmp_path):
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES)
    job = Job(me=NODES[0], position=0, nodes=[], list_type="random", list_size=2, nodes_file=str(path))
    view = job.nodes()
    for _ in range(5):
        write_nodes_file(path, NODES)                     # rewritten, membership unchanged
        assert job.nodes() == view


def test_start_list_older_than_the_nodes_file_is_replaced(tmp_path):
    # The launcher computed the start list; a node left before this node read its job.
    path = tmp_path / "nodes.json"
    write_nodes_file(path, NODES[1:])
    head = Job(me=NODES[2], position=2, nodes=NODES, nodes_file=str(path))
    assert head.nodes() == NODES[1:]
    rand = Job(me=NODES[2], position=2, nodes=[NODES[0], NODES[1]], list_type="random", list_size=2,
               nodes_file=str(path))
    view = rand.nodes()
    assert NODES[0] not in view and NODES[2] not in view and len(view) == 2


def test_module_logger_l_o():
    check_module_logger(importlib.import_module("splay.job"), "job")

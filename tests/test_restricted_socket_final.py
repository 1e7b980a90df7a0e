"""The launcher's network limits are final: a node cannot lift them (issue #19, item 1).

The node runner installs the job's restricted-socket limits and seals them before the
application runs. The hostile job below tries every way Python offers to lift them
(``restricted_socket.init({...})`` with looser values, ``splayc.accounting.install_default``,
``policy().configure()``, a thread of a fake node carrying its own unlimited ``net_policy``) and
then does what the limits forbid: each lift raises ``splay.Restricted`` and each action is
refused with ``"restricted"``. Tightening stays allowed.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from splay.deploy.testbed import free_port_range
from splay import Restricted, restricted_socket, utils
from splay.job import ENV_VAR
from splayc import accounting

pytestmark = pytest.mark.timeout(60)

ROOT = pathlib.Path(__file__).resolve().parent.parent

LIMITS = {"blacklist": ["127.0.0.9"], "max_send": 1000, "max_sockets": 3,
          "start_port": 41500, "end_port": 41510}

HOSTILE = """
from splay.base import *
from splay import Restricted, restricted_socket
from splayc import accounting, hub

class Free:                     # a node object of the job's own, with no limits
    net_policy = accounting.NetPolicy()

lifts = {
    "init_unlimited": lambda: restricted_socket.init({"max_send": None, "max_sockets": 10**6,
                                                      "start_port": 1, "end_port": 65535}),
    "init_looser": lambda: restricted_socket.init({"max_send": 10**9}),
    "blacklist_emptied": lambda: restricted_socket.policy().configure(
        max_send=1000, max_sockets=3, start_port=41500, end_port=41510, blacklist=[]),
    "install_none": lambda: accounting.install_default(None),
    "install_fresh": lambda: accounting.install_default(accounting.NetPolicy()),
    "reseed": lambda: restricted_socket.policy().seed(1),
}
for name, lift in lifts.items():
    try:
        lift()
        print(name, "LIFTED")
    except Restricted as e:
        print(name, "refused", "final" in str(e))

def attack():
    print("limits", socket.limits())
    rx = socket.bind("127.0.0.1", 41501)
    s = socket.connect("127.0.0.9", 41501)
    print("blacklisted", s, socket.last_error)
    print("bind outside", socket.bind("127.0.0.1", 45000), socket.last_error)
    u = socket.udp()
    print("send 300 kB", u.sendto(b"x" * 300_000, "127.0.0.1", 41501), u.error)
    socks = [u]
    while len(socks) < 10 and socks[-1] is not None:
        socks.append(socket.udp())
    print("sockets", len(socks) - 1, socket.last_error)

def main():
    hub.spawn_in_node(Free(), attack).join()
    restricted_socket.init({"max_send": 500})        # tightening is allowed
    print("tightened", socket.limits()[0])
events.run(main)
"""


def test_a_node_cannot_lift_the_launchers_network_limits(tmp_path):
    app = tmp_path / "hostile.py"
    app.write_text(textwrap.dedent(HOSTILE))
    job = utils.generate_job(0, 1, first_port=41505, settings=LIMITS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    env[ENV_VAR] = job.to_json()
    out = subprocess.run([sys.executable, "-m", "splay.launch.node", str(app)], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "init_unlimited refused True", "init_looser refused True", "blacklist_emptied refused True",
        "install_none refused True", "install_fresh refused True", "reseed refused True",
        "limits (1000, None, 3, 41500, 41510, None)",
        "blacklisted None restricted",
        "bind outside None restricted",
        "send 300 kB None restricted",
        "sockets 2 restricted",
        "tightened 500"], out.stdout + out.stderr


def test_sealing_needs_a_policy_and_a_sealed_policy_only_tightens():
    policy = restricted_socket.new_policy({"max_send": 100, "start_port": 40000,
                                           "end_port": 40010, "blacklist": ["10.*"]})
    policy.seal()
    policy.configure(max_send=50, start_port=40002, end_port=40005, blacklist=["10.*", "11.*"])
    assert policy.limits()[:5] == (50, None, None, 40002, 40005)
    for looser in ({"max_send": 51}, {"start_port": 39999, "end_port": 40005},
                   {"start_port": None, "end_port": None}, {"blacklist": ["11.*"]}):
        args = dict(max_send=50, start_port=40002, end_port=40005, blacklist=["10.*", "11.*"])
        args.update(looser)
        with pytest.raises(Restricted, match="final"):
            policy.configure(**args)
    assert policy.limits()[:5] == (50, None, None, 40002, 40005)
    for field, value in (("sealed", False), ("max_send", -1), ("start_port", 0),
                         ("blacklist", ()), ("tcp_sockets", -100)):
        with pytest.raises(AttributeError, match="not writable"):
            setattr(policy, field, value)
    with pytest.raises(TypeError):
        policy.__setstate__((None,))            # no pickling path rewrites the C fields either
    assert policy.sealed and policy.limits()[:5] == (50, None, None, 40002, 40005)
    if accounting.default_policy() is None:
        with pytest.raises(ValueError, match="no process-wide policy"):
            restricted_socket.seal()


def test_in_process_nodes_cannot_lift_their_limits_either(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        from splay.base import *
        from splay import Restricted, restricted_socket
        try:
            restricted_socket.init({"max_sockets": 50})
            print("lifted")
        except Restricted:
            restricted_socket.init({"max_sockets": 1})
            print("node", job.position, "kept", socket.limits()[2])
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", "2",
                          "--in-process", "--max-sockets", "4", "--first-port",
                          str(free_port_range(2)),
                          "--log-dir", str(tmp_path)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[node 0] node 0 kept 1" in out.stdout and "[node 1] node 1 kept 1" in out.stdout, out.stdout

"""A controller and N daemons on this machine: ``splay testbed up --daemons 8`` / ``down``.

Daemons run on loopback with distinct port ranges, or, as root where ``ip netns`` works (and with
``--netns on|auto``), each in its own network namespace with its own address on a bridge
(10.213.0.0/16: the controller at .0.1, daemon i at .0.(i+2)), reached through the
namespace's ``eth0``, which is then each daemon's ``--shaping-device`` (for ``splay submit
--shaping kernel``). Everything lives in one directory (default ``$SPLAY_HOME/testbed``): the
database, the key and token, logs of every process, ``testbed.json`` (what to stop) and
``client.json`` (read by the ``splay`` command).

The :class:`Testbed` class is also what the tests and the benchmark use.
"""
import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

from .cli import Client, CommandError, splay_home

BRIDGE = "splaytb0"
SUBNET = "10.213"
NETNS_PREFIX = "splaytb"


def free_port(host="127.0.0.1"):
    """A TCP port free right now on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_range(count, host="127.0.0.1"):
    """The first of ``count`` consecutive TCP ports free on ``host`` now, outside the ephemeral
    range (other programs on a shared machine may hold thousands of ports)."""
    starts = list(range(10000, 32768 - count, 97)) + list(range(61000, 65536 - count, 97))
    random.shuffle(starts)
    for start in starts:
        if all(_bindable(host, port) for port in range(start, start + count)):
            return start
    raise RuntimeError(f"no {count} consecutive free ports on {host}")


def _bindable(host, port):
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def import_roots():
    """The directories that hold the ``splay`` and ``splayc`` packages (children need them)."""
    import splay
    import splayc
    return list(dict.fromkeys(os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
                              for mod in (splay, splayc)))


def netns_usable():
    """True when we may create network namespaces (root, ``ip netns`` works)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"{NETNS_PREFIX}probe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True


def _ip(*args, check=True):
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


class Testbed:
    """A controller and daemons started as processes, described in ``directory``/testbed.json."""

    def __init__(self, directory, daemons=8, netns=False, db=None, first_port=None,
                 ports_per_daemon=1000, max_instances=None, controller_args=(), daemon_args=(),
                 daemon_extra=None, env=None, python=sys.executable):
        self.dir = os.path.abspath(directory)
        self.n = daemons
        self.netns = netns
        self.db = db or os.path.join(self.dir, "controller.db")
        self.first_port = first_port      # None: a free range is found at up()
        self.ports_per_daemon = ports_per_daemon
        self.max_instances = max_instances or ports_per_daemon
        self.controller_args = list(controller_args)
        self.daemon_args = list(daemon_args)
        self.daemon_extra = daemon_extra or {}      # index -> more options for that daemon
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [p for p in (*import_roots(), self.env.get("PYTHONPATH")) if p])
        self.python = python
        self.controller = None
        self.daemons = {}                 # index -> Popen (only in the process that started them)
        self.state = {}

    # -- paths and secrets -----------------------------------------------------------------
    def path(self, *parts):
        """A path inside the testbed directory."""
        return os.path.join(self.dir, *parts)

    def _secret(self, name):
        path = self.path(name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(secrets.token_hex(16) + "\n")
            os.chmod(path, 0o600)
        with open(path) as f:
            return f.readline().strip()

    @property
    def token(self):
        """The API token."""
        return self._secret("api.token")

    @property
    def url(self):
        """The API URL."""
        return f"http://127.0.0.1:{self.state['api_port']}"

    def client(self):
        """A :class:`~splay.deploy.cli.Client` of this testbed's controller."""
        return Client(self.url, self.token)

    def controller_address(self):
        """Where daemons reach the controller."""
        host = f"{SUBNET}.0.1" if self.netns else "127.0.0.1"
        return host, self.state["daemon_port"]

    def daemon_ip(self, index):
        """The address daemon ``index`` gives its nodes."""
        return f"{SUBNET}.{(index + 2) // 256}.{(index + 2) % 256}" if self.netns else "127.0.0.1"

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, argv, log_name):
        with open(self.path(log_name), "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir,
                                    start_new_session=True)

    def start_controller(self, timeout=30.0):
        """Start (or restart) the controller; returns once its API answers."""
        ready = self.path("ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        host = f"{SUBNET}.0.1" if self.netns else "127.0.0.1"
        self.controller = self._spawn([
            self.python, "-m", "splay.deploy.controller", "--db", self.db,
            "--listen", f"{host}:{self.state['daemon_port']}",
            "--api", f"127.0.0.1:{self.state['api_port']}",
            "--daemon-key-file", self.path("daemon.key"), "--token-file", self.path("api.token"),
            "--ready-file", ready, *self.controller_args], "controller.log")
        self.state["controller_pid"] = self.controller.pid
        self._save()
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if self.controller.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the controller did not start; see " + self.path("controller.log"))
            time.sleep(0.05)

    def stop_controller(self, signum=signal.SIGTERM, timeout=15.0):
        """Stop the controller (SIGTERM: graceful; SIGKILL: a crash)."""
        _stop_pid(self.state.get("controller_pid"), signum, timeout, self.controller)
        self.controller = None

    def start_daemon(self, index, extra=()):
        """Start daemon ``index`` with its own port range (and namespace)."""
        start = self.first_port + index * self.ports_per_daemon
        host, port = self.controller_address()
        # In a namespace, eth0 carries the daemon's traffic to the other daemons: kernel shaping
        # (splay submit --shaping kernel) shapes it.
        shaping = ["--shaping-device", "eth0"] if self.netns else []
        argv = [self.python, "-m", "splay.deploy.daemon", "--controller", f"{host}:{port}",
                "--key-file", self.path("daemon.key"), "--name", f"tb{index}",
                "--ip", self.daemon_ip(index), "--ports", f"{start}-{start + self.ports_per_daemon - 1}",
                "--max-instances", str(self.max_instances), "--dir", self.path(f"daemon{index}"),
                *shaping, *self.daemon_args, *extra]
        if self.netns:
            argv = ["ip", "netns", "exec", f"{NETNS_PREFIX}{index}", *argv]
        process = self._spawn(argv, f"daemon{index}.log")
        self.daemons[index] = process
        self.state.setdefault("daemon_pids", {})[str(index)] = process.pid
        self._save()
        return process

    def stop_daemon(self, index, signum=signal.SIGTERM, timeout=15.0):
        """Stop daemon ``index`` (SIGKILL: as if its host died)."""
        _stop_pid(self.state["daemon_pids"].pop(str(index), None), signum, timeout,
                  self.daemons.pop(index, None))
        self._save()

    def wait_daemons(self, count=None, timeout=60.0):
        """Wait until ``count`` (default all) daemons are CONNECTED."""
        count = self.n if count is None else count
        deadline = time.monotonic() + timeout
        while True:
            try:
                connected = [d for d in self.client().get("/api/daemons") if d["state"] == "CONNECTED"]
            except CommandError:
                connected = []
            if len(connected) >= count:
                return connected
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(connected)} of {count} daemons connected after "
                                   f"{timeout:g} s; see the logs in {self.dir}")
            time.sleep(0.1)

    # -- whole testbed -------------------------------------------------------------------------
    def up(self):
        """Start the controller and every daemon; returns once all daemons are connected."""
        os.makedirs(self.dir, exist_ok=True)
        self._secret("daemon.key")
        self._secret("api.token")
        if self.first_port is None:
            self.first_port = (20000 if self.netns else
                               free_port_range(self.n * self.ports_per_daemon))
        self.state = {"daemons": self.n, "netns": self.netns, "db": self.db, "daemon_pids": {},
                      "daemon_port": free_port(), "api_port": free_port()}
        if self.netns:
            self._make_network()
        self.start_controller()
        for index in range(self.n):
            self.start_daemon(index, self.daemon_extra.get(index, ()))
        self.wait_daemons()
        with open(self.path("client.json"), "w") as f:
            json.dump({"url": self.url, "token": self.token}, f)
        return self

    def down(self):
        """Stop every process of the testbed and remove its namespaces."""
        self.load()
        pids = self.state.get("daemon_pids", {})
        for pid in pids.values():             # all at once, then wait for each
            _signal_group(pid, signal.SIGTERM)
        for index in list(pids):
            self.stop_daemon(int(index))
        self.stop_controller()
        if self.state.get("netns"):
            self._remove_network()
        for name in ("testbed.json", "client.json", "ready.json"):
            if os.path.exists(self.path(name)):
                os.unlink(self.path(name))

    def load(self):
        """Read testbed.json (for ``down`` from another process)."""
        if not self.state:
            try:
                with open(self.path("testbed.json")) as f:
                    self.state = json.load(f)
            except (OSError, ValueError):
                self.state = {}
            self.netns = self.state.get("netns", False)
        return self.state

    def _save(self):
        with open(self.path("testbed.json.tmp"), "w") as f:
            json.dump(self.state, f)
        os.replace(self.path("testbed.json.tmp"), self.path("testbed.json"))

    def _make_network(self):
        self._remove_network()
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{SUBNET}.0.1/16", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for index in range(self.n):
            ns, outside = f"{NETNS_PREFIX}{index}", f"{NETNS_PREFIX}v{index}"
            _ip("netns", "add", ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", outside, "master", BRIDGE, "up")
            _ip("-n", ns, "addr", "add", f"{self.daemon_ip(index)}/16", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _remove_network(self):
        for index in range(max(self.n, self.state.get("daemons", 0))):
            _ip("netns", "del", f"{NETNS_PREFIX}{index}", check=False)
        _ip("link", "del", BRIDGE, check=False)


def _signal_group(pid, signum):
    """Signal a process group; False when it is gone."""
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        return False


def alive(pid):
    """True while ``pid`` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid, signum, timeout, process=None):
    """Signal a process group and wait for its leader to end."""
    if not pid or not _signal_group(pid, signum):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return
        elif not alive(pid):
            return
        time.sleep(0.05)
    if _signal_group(pid, signal.SIGKILL) and process is not None:
        process.wait()


def main(argv=None):
    """``splay testbed up|down|status``. Returns the exit status."""
    p = argparse.ArgumentParser(prog="splay testbed", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--daemons", type=int, default=8, help="number of daemons (default 8)")
    p.add_argument("--dir", default=os.path.join(splay_home(), "testbed"),
                   help="testbed directory (default %(default)s)")
    p.add_argument("--netns", choices=("auto", "on", "off"), default="auto",
                   help="one network namespace per daemon (auto: when root and ip netns work)")
    p.add_argument("--db", help="database (default DIR/controller.db; or a postgresql:// URL)")
    p.add_argument("--first-port", type=int,
                   help="first node port (default: 20000 in namespaces, else a free range)")
    p.add_argument("--ports-per-daemon", type=int, default=1000, help="ports (and slots) per daemon")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    bed = Testbed(args.dir, args.daemons, db=args.db, first_port=args.first_port,
                  ports_per_daemon=args.ports_per_daemon)
    if args.action == "down":
        if not bed.load():
            print(f"splay testbed: nothing to stop in {args.dir}", file=sys.stderr)
            return 0
        bed.down()
        print(f"testbed in {args.dir} stopped")
        return 0
    if args.action == "status":
        if not bed.load():
            print(f"no testbed in {args.dir}")
            return 1
        from .cli import daemons
        os.environ.setdefault("SPLAY_CONTROLLER", bed.url)
        os.environ.setdefault("SPLAY_TOKEN", bed.token)
        return daemons([])
    if bed.load().get("controller_pid"):
        print(f"splay testbed: a testbed already runs in {args.dir}; 'splay testbed down' first",
              file=sys.stderr)
        return 1
    if args.netns == "on" and not netns_usable():
        print("splay testbed: --netns on needs root and a working 'ip netns'", file=sys.stderr)
        return 2
    bed.netns = args.netns == "on" or (args.netns == "auto" and netns_usable())
    try:
        bed.up()
    except (RuntimeError, OSError) as e:
        print(f"splay testbed: {e}", file=sys.stderr)
        bed.down()
        return 1
    where = "own network namespaces" if bed.netns else "loopback"
    print(f"testbed up: controller {bed.url} and {args.daemons} daemons ({where}) in {args.dir}")
    print(f"export SPLAY_CONTROLLER={bed.url} SPLAY_TOKEN={bed.token}")
    print(f"web page (signed in): {bed.url}/#token={bed.token}")
    print("then: splay submit app.py -n 40; splay jobs; splay logs ID; splay testbed down")
    return 0

"""A controller and N daemons on this machine: ``splay testbed up --daemons 8`` / ``down``.

Daemons run on loopback with distinct port ranges, or, as root where ``ip netns`` works (and with
``--netns on|auto``), each in its own network namespace with its own address on a bridge, reached
through the namespace's ``eth0``, which is then each daemon's ``--shaping-device`` (for ``splay
submit --shaping kernel``). Names are per testbed, so several run side by side: a tag derived from
the testbed directory names the bridge (``sptbTAG``), the namespaces (``sptbTAG-I``) and the veth
ends (``sptbTAGvI``), and the subnet is a 10.X.0.0/16 that no interface of the host uses yet
(the controller at .0.1, daemon i at .0.(i+2)). Everything lives in one directory (default
``$SPLAY_HOME/testbed``): the database, the key and token, logs of every process,
``testbed.json`` (each process's PID and command line, the network names: what to stop and how
to restart a component) and ``client.json`` (read by the ``splay`` command).

The :class:`Testbed` class is also what the tests and the benchmark use.
"""
import argparse
import hashlib
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

from .cli import Client, CommandError, splay_home
from .node_output import output_directory
from .testbed_processes import processes_of, stop_processes_of

NETNS_PREFIX = "sptb"
SUBNET_OCTETS = range(64, 128)      # testbeds take 10.64.0.0/16 ... 10.127.0.0/16


def network_tag(directory):
    """Six hex digits derived from a testbed's directory: its network names carry them."""
    return hashlib.sha1(os.path.abspath(directory).encode()).hexdigest()[:6]


def used_subnets():
    """The second octets X of the 10.X.0.0/16 networks some interface of this host is in."""
    shown = _ip("-o", "-4", "addr", "show", check=False).stdout
    return {int(x) for x in re.findall(r"inet 10\.(\d+)\.", shown)}


def choose_subnet(tag, used):
    """A 10.X prefix no interface uses, the first free one from the tag's own place on."""
    start = int(tag, 16) % len(SUBNET_OCTETS)
    for k in range(len(SUBNET_OCTETS)):
        octet = SUBNET_OCTETS[(start + k) % len(SUBNET_OCTETS)]
        if octet not in used:
            return f"10.{octet}"
    raise RuntimeError("every subnet from 10.64.0.0/16 to 10.127.0.0/16 is in use on this host: "
                       "stop another testbed first ('splay testbed down --dir DIR')")


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

    # -- network names (per testbed) ---------------------------------------------------------
    @property
    def tag(self):
        """What this testbed's network names carry (see the module docstring)."""
        return network_tag(self.dir)

    @property
    def bridge(self):
        """The bridge of this testbed's namespaces."""
        return f"{NETNS_PREFIX}{self.tag}"

    def netns_name(self, index):
        """The network namespace of daemon ``index``."""
        return f"{NETNS_PREFIX}{self.tag}-{index}"

    def veth_name(self, index):
        """The bridge's end of daemon ``index``'s veth pair (its namespace's end is eth0)."""
        return f"{NETNS_PREFIX}{self.tag}v{index}"

    @property
    def subnet(self):
        """This testbed's ``10.X`` prefix (chosen at ``up``)."""
        return self.state["subnet"]

    def controller_address(self):
        """Where daemons reach the controller."""
        host = f"{self.subnet}.0.1" if self.netns else "127.0.0.1"
        return host, self.state["daemon_port"]

    def daemon_ip(self, index):
        """The address daemon ``index`` gives its nodes."""
        if not self.netns:
            return "127.0.0.1"
        return f"{self.subnet}.{(index + 2) // 256}.{(index + 2) % 256}"

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name, argv, log_name):
        """Start component ``name`` and record its PID and command line in testbed.json."""
        with open(self.path(log_name), "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir,
                                       start_new_session=True)
        self.state.setdefault("processes", {})[name] = {
            "pid": process.pid, "argv": argv, "cwd": self.dir, "log": self.path(log_name),
            "pythonpath": self.env.get("PYTHONPATH", "")}
        return process

    def start_controller(self, timeout=30.0):
        """Start (or restart) the controller; returns once its API answers."""
        ready = self.path("ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        host = self.controller_address()[0]
        self.controller = self._spawn("controller", [
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
            argv = ["ip", "netns", "exec", self.netns_name(index), *argv]
        process = self._spawn(f"daemon{index}", argv, f"daemon{index}.log")
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
                      "daemon_port": free_port(), "api_port": free_port(), "processes": {}}
        if self.netns:
            self.state["subnet"] = choose_subnet(self.tag, used_subnets())
            self.state["network"] = {"bridge": self.bridge, "namespaces": [
                self.netns_name(i) for i in range(self.n)]}
            self._save()                  # a killed `up` leaves the names for `down`
            self._make_network()
        self.start_controller()
        for index in range(self.n):
            self.start_daemon(index, self.daemon_extra.get(index, ()))
        self.wait_daemons()
        # the API token: readable by its owner only, even when the file already existed
        descriptor = os.open(self.path("client.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with open(descriptor, "w") as f:
            json.dump({"url": self.url, "token": self.token}, f)
        return self

    def down(self):
        """Stop every process of the testbed (the recorded ones, and any other controller, daemon
        or node running under its directory, e.g. restarted by hand) and remove its namespaces."""
        self.load()
        pids = self.state.get("daemon_pids", {})
        for pid in pids.values():             # all at once, then wait for each
            _signal_group(pid, signal.SIGTERM)
        for index in list(pids):
            self.stop_daemon(int(index))
        self.stop_controller()
        stop_processes_of(self.dir)
        self._remove_network()
        # The output files a killed daemon left for its next run, which will not come now.
        for index in range(self.state.get("daemons", self.n)):
            shutil.rmtree(output_directory(self.path(f"daemon{index}")), ignore_errors=True)
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

    def running(self):
        """PIDs of the processes of this testbed alive now (recorded or found under its dir)."""
        recorded = [p["pid"] for p in self.state.get("processes", {}).values()]
        return sorted(set(pid for pid in recorded if alive(pid)) | set(processes_of(self.dir)))

    def _make_network(self):
        self._remove_network()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.0.1/16", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index in range(self.n):
            ns, outside = self.netns_name(index), self.veth_name(index)
            _ip("netns", "add", ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.daemon_ip(index)}/16", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _remove_network(self):
        """Remove this testbed's namespaces and bridge (those recorded, and any other named with
        its tag: a killed ``up`` may have made more than it recorded)."""
        if os.geteuid() != 0 or shutil.which("ip") is None:
            return
        network = self.state.get("network", {})
        names = set(network.get("namespaces", []))
        listed = _ip("netns", "list", check=False).stdout.split()
        names.update(n for n in listed if n.startswith(f"{NETNS_PREFIX}{self.tag}-"))
        for name in sorted(names):
            _ip("netns", "del", name, check=False)
        _ip("link", "del", network.get("bridge", self.bridge), check=False)


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


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def describe_processes(bed):
    """The recorded processes of a testbed, alive or not, each with the command that (re)starts
    it (run from the testbed directory, with the PYTHONPATH shown)."""
    lines = []
    for name, process in bed.state.get("processes", {}).items():
        state = "running" if alive(process["pid"]) else "not running"
        lines.append(f"{name}: pid {process['pid']} {state}; log {process['log']}")
        command = shlex.join(process["argv"])
        if process.get("pythonpath"):
            command = f"PYTHONPATH={shlex.quote(process['pythonpath'])} {command}"
        lines.append(f"  cd {shlex.quote(process['cwd'])} && {command}")
    others = sorted(set(processes_of(bed.dir)) - {p["pid"] for p in
                                                   bed.state.get("processes", {}).values()})
    if others:
        lines.append(f"also under {bed.dir} (started by hand, or nodes): pids "
                     + ", ".join(map(str, others)))
    return "\n".join(lines)


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
        if not bed.load() and not processes_of(bed.dir):
            print(f"splay testbed: nothing to stop in {args.dir}", file=sys.stderr)
            return 0
        bed.down()
        print(f"testbed in {args.dir} stopped")
        return 0
    if args.action == "status":
        if not bed.load():
            print(f"no testbed in {args.dir}")
            return 1
        print(describe_processes(bed))
        from .cli import daemons
        os.environ.setdefault("SPLAY_CONTROLLER", bed.url)
        os.environ.setdefault("SPLAY_TOKEN", bed.token)
        return daemons([])
    if bed.load() or processes_of(bed.dir):
        finished = os.path.exists(bed.path("client.json"))   # written at the end of `up`
        if finished and bed.running():
            print(f"splay testbed: a testbed already runs in {args.dir}; 'splay testbed down' "
                  "first", file=sys.stderr)
            return 1
        # A previous `up` was killed half-way, or its processes died: remove what they left.
        print(f"splay testbed: removing what a previous testbed left in {args.dir}",
              file=sys.stderr)
        bed.down()
        bed.state = {}
    if args.netns == "on" and not netns_usable():
        print("splay testbed: --netns on needs root and a working 'ip netns'", file=sys.stderr)
        return 2
    bed.netns = args.netns == "on" or (args.netns == "auto" and netns_usable())
    # SIGTERM (or Ctrl-C) during `up` stops what was started so far.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        bed.up()
    except (RuntimeError, OSError, KeyboardInterrupt) as e:
        print(f"splay testbed: {e or 'interrupted'}; stopping what was started", file=sys.stderr)
        bed.down()
        return 1
    where = "own network namespaces" if bed.netns else "loopback"
    print(f"testbed up: controller {bed.url} and {args.daemons} daemons ({where}) in {args.dir}")
    print(f"export SPLAY_CONTROLLER={bed.url} SPLAY_TOKEN={bed.token}")
    print(f"web page (signed in): {bed.url}/#token={bed.token}")
    print("then: splay submit app.py -n 40; splay jobs; splay logs ID; splay testbed down")
    return 0

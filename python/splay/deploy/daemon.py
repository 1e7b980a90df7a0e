"""splayd: the daemon that runs job instances on a host for a controller.

It connects to the controller (plain TCP or TLS), presents its key and limits, and then obeys:
register (reserve ports), free, start, stop. It forwards every output line of its instances with
the time it read it, and reports every end. When the connection drops it reconnects forever with
exponential backoff; its instances keep running meanwhile, unless the controller stays away longer
than ``--orphan-timeout``, in which case the daemon stops them all.
"""
import argparse
import asyncio
import collections
import logging
import os
import random
import resource
import signal
import socket
import sys
import time

from .host_shaping import HostShaping, check_device_name, wants_kernel_shaping
from .daemon_cleanup import clean_previous_run
from .daemon_metrics import SHIP_INTERVAL, MetricsRelay
from .daemon_priority import raise_daemon_priority
from .instances import KEEP_FINISHED, InstanceManager
from .job_limits import DEFAULTS, Limits
from .node_output import NodeOutputs, output_directory
from .protocol import CONTROLLER_MESSAGES, MAX_LINE, Channel, ProtocolError, client_tls, decode
from .report_spool import REPORTED, ReportSpool

log = logging.getLogger("splay.daemon")

MAX_BUFFERED_LINES = 200_000     # output kept while the controller is away
LINES_PER_MESSAGE = 2000
FLUSH_INTERVAL = 0.05


class Refused(Exception):
    """The controller refused this daemon (wrong key, bad hello)."""


class Daemon:
    """The daemon's connection loop and message handling."""

    def __init__(self, host, port, key, name, ip, limits, base_dir, tls=None, orphan_timeout=60.0,
                 max_backoff=10.0, silence_timeout=30.0, clock_offset=0.0, sandbox=True,
                 shaping_device=None, node_output="file"):
        self.host, self.port = host, port
        self.key = key
        self.name = name
        self.ip = ip
        self.tls = tls
        self.orphan_timeout = orphan_timeout
        self.max_backoff = max_backoff
        self.silence_timeout = silence_timeout
        self.clock_offset = clock_offset
        self.channel = None
        self.gone_since = time.monotonic()
        self.lines = collections.deque(maxlen=MAX_BUFFERED_LINES)
        self.dropped_lines = 0
        # Reports kept until the controller acknowledges them (at-least-once, see report_spool.py)
        self.spool = ReportSpool(os.path.join(base_dir, "report-spool"))
        # Nodes write their output to files that outlive this daemon (see node_output.py).
        self.outputs = NodeOutputs(output_directory(base_dir), self.spool)
        self.shaping = HostShaping(shaping_device, name, base_dir)
        self.metrics = MetricsRelay()
        self.manager = InstanceManager(limits, ip, base_dir, self.emit, self.log_line, self.clock,
                                       sandbox, on_job_end=self.shaping.job_ended,
                                       metrics=self.metrics,
                                       outputs=self.outputs if node_output == "file" else None)
        self.report_left_output()

    def clock(self):
        """This daemon's clock (``--clock-offset`` shifts it, to test the controller's correction)."""
        return time.time() + self.clock_offset

    def emit(self, message):
        """Send a message now if connected. Reports (ends, churn actions) are numbered and spooled
        until acknowledged; other messages are dropped while disconnected."""
        if message["type"] in REPORTED:
            self.spool_lines()                  # a node's last lines come before its end
            message = self.spool.append(message)
        if self.channel is not None:
            if message["type"] == "exited":
                self.send_metrics(self.channel)   # a node's last samples come before its end
            self.channel.send_nowait(message)

    def log_line(self, instance_id, stamp, stream, text, mark=None):
        """Queue one output line for the controller. ``mark``: (OutputFile, offset of the line's
        end) for a line read from a node's output file (see node_output.py)."""
        if len(self.lines) == MAX_BUFFERED_LINES:
            self.dropped_lines += 1             # the deque drops the oldest line
            oldest = self.lines[0][4]
            if oldest is not None:
                self.outputs.spooled([oldest])
        if mark is not None:
            mark[0].queued += 1
        self.lines.append((instance_id, stamp, stream, text, mark))

    def report_left_output(self):
        """Spool the lines a previous run of this daemon left unreported in its nodes' output
        files (it was killed: its nodes died with it), then delete the files."""
        for output in self.outputs.left_behind(self.spool.offsets):
            lines = output.read_lines(final=True)
            for line, offset in lines:
                self.log_line(output.instance_id, self.clock(), output.stream,
                              line.decode("utf-8", "replace"), (output, offset))
            if lines:
                log.info("node output: %d line(s) of instance %d left unreported by the previous "
                         "run", len(lines), output.instance_id)
            self.outputs.done(output)
        self.spool_lines()

    def drain_output(self):
        """At a clean stop, after the nodes were killed: spool what they printed last and delete
        their output files."""
        self.manager.drain_output_files()
        self.spool_lines()
        self.outputs.remove_directory()

    async def run(self):
        """Connect, serve, reconnect, forever (returns only when refused)."""
        asyncio.ensure_future(self.watch_orphans())
        asyncio.ensure_future(self.flush_lines())
        asyncio.ensure_future(self.retry_nodes_files())
        backoff = 0.2
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls,
                                                               limit=MAX_LINE)
            except OSError as e:
                log.info("cannot reach controller %s:%d (%s); retrying in %.1f s",
                         self.host, self.port, e, backoff)
            else:
                channel = Channel(reader, writer)
                try:
                    if await self.serve(channel):
                        backoff = 0.2
                except Refused:
                    raise
                except (ConnectionError, OSError, asyncio.TimeoutError, ProtocolError) as e:
                    log.warning("connection to controller lost: %s", e)
                finally:
                    self.channel = None
                    channel.close()
                    self.gone_since = time.monotonic()
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.max_backoff)

    async def serve(self, channel):
        """One connection: hello, then messages until it ends. True if it was accepted."""
        await channel.send({"type": "hello", "key": self.key, "name": self.name, "ip": self.ip,
                            "limits": self.manager.limits.as_dict(),
                            "instances": self.manager.report(), "time": self.clock(),
                            "incarnation": self.spool.incarnation,
                            "spool_dropped": self.spool.dropped})
        line = await asyncio.wait_for(channel.receive_line(), 15)
        if line is None:
            return False
        answer = decode(line, CONTROLLER_MESSAGES)
        if answer["type"] == "refused":
            raise Refused(answer.get("reason", "no reason given"))
        if answer["type"] != "welcome":
            raise ProtocolError(f"expected welcome, got {answer['type']!r}")
        log.info("connected to controller %s:%d as %s (daemon id %s)", self.host, self.port,
                 self.name, answer.get("daemon_id"))
        self.spool.ack(int(answer.get("acked") or 0))
        self.spool.overflow_reported()
        for report in self.spool.pending():     # what the controller has not applied, in order
            channel.send_nowait(report)
        self.channel = channel
        self.gone_since = None
        shipper = asyncio.ensure_future(self.ship_metrics(channel))
        try:
            while True:
                try:
                    line = await asyncio.wait_for(channel.receive_line(), self.silence_timeout)
                except asyncio.TimeoutError:
                    log.warning("controller silent for %.0f s; reconnecting", self.silence_timeout)
                    return True
                if line is None:
                    log.warning("controller closed the connection")
                    return True
                try:
                    await self.handle(decode(line, CONTROLLER_MESSAGES))
                except (ProtocolError, KeyError, TypeError, ValueError) as e:
                    log.warning("malformed message from the controller (%s: %s); ignored",
                                type(e).__name__, e)
                except Refused:
                    raise
                except Exception:
                    log.exception("could not carry out a controller message; going on")
        finally:
            shipper.cancel()

    async def handle(self, message):
        """Obey one controller message."""
        kind = message["type"]
        manager = self.manager
        if kind == "ping":
            self.emit({"type": "pong", "t0": message["t0"], "time": self.clock()})
        elif kind == "register":
            ids = [int(i) for i in message["instances"]]
            ports, refused = manager.register(str(message["job"]), int(message.get("memory") or 0), ids)
            self.emit({"type": "registered", "job": message["job"], "ports": ports,
                       "refused": refused})
        elif kind == "free":
            manager.free([int(i) for i in message["instances"]])
        elif kind == "start" and wants_kernel_shaping(message["job"].get("settings")):
            # tc first, in the background (see host_shaping.py), then as any other job.
            manager._track(self.start(message["job"], message["nodes"], message["instances"],
                                      message.get("churn")))
        elif kind == "start" and message.get("churn") is not None:
            self.schedule(message["job"], message["nodes"], message["instances"], message["churn"])
        elif kind == "start":
            # In the background: pings, logs and stops keep flowing while processes start.
            manager._track(self.start(message["job"], message["nodes"], message["instances"]))
        elif kind == "nodes":
            manager.update_nodes(str(message["job"]), list(message["nodes"]))
        elif kind == "release":
            manager.release_job(str(message["job"]))
        elif kind == "stop":
            manager.stop([int(i) for i in message["instances"]])
        elif kind == "ack":
            self.spool.ack(int(message["seq"]))
        elif kind == "error":
            log.warning("the controller refused a message: %s", message.get("reason"))
        elif kind == "refused":
            raise Refused(message.get("reason", "no reason given"))

    def schedule(self, job, nodes, entries, churn):
        """A churn job: its instances start and stop on their own schedule, from now on."""
        scheduled, failed = self.manager.schedule(job, nodes, entries, churn)
        self.emit({"type": "started", "job": job["ref"], "instances": [],
                   "scheduled": scheduled, "failed": failed})

    async def start(self, job, nodes, entries, churn=None):
        """Shape this host when the job asks for kernel shaping, then start (or, with ``churn``,
        schedule) its instances and tell the controller which run."""
        refusal = await self.shaping.install(job, entries)
        if refusal is not None:
            ids = [int(entry["id"]) for entry in entries]
            self.manager.free(ids)
            self.emit({"type": "started", "job": job["ref"], "instances": [],
                       "failed": {instance_id: refusal for instance_id in ids}})
            log.warning("job %s: %d instance(s) not started: %s", job["ref"], len(ids), refusal)
            return
        if churn is not None:
            self.schedule(job, nodes, entries, churn)
            return
        try:
            started, failed = await self.manager.start(job, nodes, entries)
        except Exception as e:
            log.exception("job %s: starting instances failed", job.get("ref"))
            started, failed = [], {int(e_["id"]): f"daemon error: {e}" for e_ in entries}
        self.emit({"type": "started", "job": job["ref"], "instances": started, "failed": failed})
        self.manager.announce(started)
        log.info("job %s: started %d instance(s), %d failed", job["ref"], len(started), len(failed))
        from splay.faults.deployed import start_for_daemon
        start_for_daemon(self.manager, job, nodes, entries)    # --faults: pause, kill, restart

    async def flush_lines(self):
        """Spool queued output lines in batches (and send them when connected), connected or not."""
        while True:
            if self.dropped_lines:
                log.warning("dropped %d output lines (more than %d between two flushes)",
                            self.dropped_lines, MAX_BUFFERED_LINES)
                self.dropped_lines = 0
            self.manager.poll_output()
            self.spool_lines()
            channel = self.channel
            if channel is not None:
                try:
                    await channel.writer.drain()
                except (ConnectionError, OSError):
                    pass                        # the connection loop sees it and reconnects
            await asyncio.sleep(FLUSH_INTERVAL)

    def spool_lines(self):
        """Number and spool every buffered output line, in batches; send them when connected."""
        lines = self.lines
        while lines:
            batch = [lines.popleft() for _ in range(min(LINES_PER_MESSAGE, len(lines)))]
            marks = [entry[4] for entry in batch if entry[4] is not None]
            message = {"type": "log", "lines": [entry[:4] for entry in batch]}
            if marks:                           # how far these lines reach in their files
                message["offsets"] = {output.key: offset for output, offset in marks}
            message = self.spool.append(message)
            if self.channel is not None:
                self.channel.send_nowait(message)
            self.outputs.spooled(marks)

    async def ship_metrics(self, channel):
        """Send the nodes' samples every SHIP_INTERVAL (see daemon_metrics.py)."""
        while True:
            await asyncio.sleep(SHIP_INTERVAL)
            self.send_metrics(channel)
            await channel.writer.drain()

    def send_metrics(self, channel):
        """Queue the buffered samples of the nodes on ``channel``."""
        for message in self.metrics.messages():
            channel.send_nowait(message)

    async def retry_nodes_files(self):
        """Every second, write the nodes files a full disk kept stale (see update_nodes)."""
        while True:
            await asyncio.sleep(1.0)
            self.manager.write_unwritten_nodes()

    async def watch_orphans(self):
        """Stop every instance once the controller has been away longer than ``orphan_timeout``."""
        while True:
            await asyncio.sleep(1.0)
            if self.gone_since is not None and self.manager.live() and \
                    time.monotonic() - self.gone_since > self.orphan_timeout:
                log.warning("controller away for more than %.0f s: stopping all %d instance(s)",
                            self.orphan_timeout, len(self.manager.live()))
                self.manager.stop_all()


def parse_size(text):
    """'512M', '2G', '1048576' -> bytes."""
    text = text.strip().upper()
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def build_parser():
    """The command-line options of splayd."""
    p = argparse.ArgumentParser(prog="splayd", description=__doc__.splitlines()[0])
    p.add_argument("--controller", default="127.0.0.1:11000", help="HOST:PORT of the controller")
    p.add_argument("--key", help="the controller's daemon key")
    p.add_argument("--key-file", help="file whose first line is the daemon key")
    p.add_argument("--name", help="unique name of this daemon (default HOSTNAME-STARTPORT)")
    p.add_argument("--ip", default="127.0.0.1", help="address the nodes of this daemon listen on")
    p.add_argument("--max-instances", type=int, default=DEFAULTS["max_instances"],
                   help="job instances at once (default %(default)s)")
    p.add_argument("--max-memory", default="512M",
                   help="memory (address space) per instance (e.g. 512M, 2G; default %(default)s)")
    p.add_argument("--ports", default="20000-20999",
                   help="port range START-END for instances; each instance may bind only its own "
                        "port of it (default %(default)s)")
    p.add_argument("--max-bandwidth", default="0", help="bytes/s per instance (0: unlimited)")
    limits = p.add_argument_group(
        "limits of every instance", "applied to every job whatever it asks (a job may ask for "
        "less, never more); 0 means no limit. Sizes take K/M/G suffixes.")
    limits.add_argument("--max-cpu", type=float, default=DEFAULTS["max_cpu"], metavar="SECONDS",
                        help="CPU time per instance (with the sandbox; default %(default)s)")
    limits.add_argument("--max-disk", default="1G", metavar="SIZE",
                        help="disk space of an instance's directory (with the sandbox; "
                             "default %(default)s)")
    limits.add_argument("--max-files", type=int, default=DEFAULTS["max_files"], metavar="N",
                        help="open descriptors per instance (with the sandbox; default %(default)s)")
    limits.add_argument("--max-send", default="4G", metavar="SIZE",
                        help="bytes an instance may send in all (default %(default)s)")
    limits.add_argument("--max-receive", default="4G", metavar="SIZE",
                        help="bytes an instance may receive in all (default %(default)s)")
    limits.add_argument("--max-sockets", type=int, default=DEFAULTS["max_sockets"], metavar="N",
                        help="sockets an instance may have open at once (default %(default)s)")
    limits.add_argument("--log-node-limit", default="10M", metavar="SIZE",
                        help="output bytes forwarded per instance; later lines are dropped and "
                             "counted (default %(default)s)")
    limits.add_argument("--log-job-limit", default="100M", metavar="SIZE",
                        help="output bytes forwarded per job from this daemon (default %(default)s)")
    limits.add_argument("--log-rate", default="1M", metavar="SIZE",
                        help="output bytes per second per instance, in bursts of up to 4 s "
                             "(default %(default)s)")
    limits.add_argument("--log-job-rate", default="4M", metavar="SIZE",
                        help="output bytes per second per job from this daemon, in bursts of up "
                             "to 4 s (default %(default)s)")
    p.add_argument("--dir", help="working directory (default ./splayd-NAME)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--tls-ca", help="PEM CA that signed the controller's certificate")
    p.add_argument("--tls-cert", help="PEM client certificate, when the controller asks for one")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--orphan-timeout", type=float, default=60.0,
                   help="seconds without controller before all instances are stopped")
    p.add_argument("--max-backoff", type=float, default=10.0, help="longest wait between reconnections")
    p.add_argument("--silence-timeout", type=float, default=30.0,
                   help="seconds without a message from the controller (it pings) after which "
                        "the connection counts as lost and the daemon reconnects")
    p.add_argument("--clock-offset", type=float, default=0.0,
                   help="shift this daemon's clock by SECONDS (to test log time correction)")
    p.add_argument("--nice", type=int, default=-10,
                   help="the daemon's own niceness when allowed (root), also given to its "
                        "session's scheduling group when it leads its own session (setsid): it "
                        "then keeps control while it spawns and keeps churn times on a busy "
                        "host; nodes keep the niceness the daemon started with")
    p.add_argument("--sandbox", choices=("auto", "on", "off"), default="auto",
                   help="confine instances with splay.sandbox (auto: when it is installed)")
    p.add_argument("--maelstrom-programs", action="store_true",
                   help="start the program of a 'splay submit --maelstrom --bin' job beside each "
                        "of its nodes, outside the sandbox (a confined node may create no "
                        "process): the program runs unconfined, so only for programs you trust")
    p.add_argument("--shaping-device", metavar="DEV",
                   help="the network device whose egress carries this host's traffic to the "
                        "other hosts (e.g. eth0): jobs submitted with --shaping kernel shape it "
                        "with tc (needs root); without it such jobs fail here")
    p.add_argument("--node-output", choices=("file", "pipe"), default="file",
                   help="how nodes hand their output to the daemon: files that outlive a killed "
                        "daemon (nothing lost; a node's output per life counts in its file-size "
                        "limit), or pipes (lines still in a pipe die with a killed daemon)")
    p.add_argument("--log-level", default="INFO")
    return p


def sandbox_available():
    """True when ``splay.sandbox.confine`` exists in this installation."""
    try:
        import splay.sandbox
    except ImportError:
        return False
    return callable(getattr(splay.sandbox, "confine", None))


def main(argv=None):
    """Run the daemon. Returns the exit status (3 when the controller refuses it)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s splayd %(levelname)s %(message)s")
    key = args.key
    if args.key_file:
        with open(args.key_file) as f:
            key = f.readline().strip()
    if not key:
        print("splayd: give --key or --key-file (the controller's daemon key)", file=sys.stderr)
        return 2
    try:
        start, _, end = args.ports.partition("-")
        limits = Limits(args.max_instances, parse_size(args.max_memory), int(start), int(end),
                        parse_size(args.max_bandwidth), max_cpu=args.max_cpu or None,
                        max_disk=parse_size(args.max_disk) or None, max_files=args.max_files or None,
                        max_send=parse_size(args.max_send) or None,
                        max_receive=parse_size(args.max_receive) or None,
                        max_sockets=args.max_sockets or None,
                        log_node_bytes=parse_size(args.log_node_limit) or None,
                        log_job_bytes=parse_size(args.log_job_limit) or None,
                        log_node_rate=parse_size(args.log_rate) or None,
                        log_job_rate=parse_size(args.log_job_rate) or None)
        host, _, port = args.controller.rpartition(":")
        port = int(port)
        if args.shaping_device is not None:
            check_device_name(args.shaping_device)
    except ValueError as e:
        print(f"splayd: bad option value: {e}", file=sys.stderr)
        return 2
    name = args.name or f"{socket.gethostname()}-{limits.start_port}"
    base_dir = os.path.abspath(args.dir or f"splayd-{name}")
    os.makedirs(base_dir, exist_ok=True)
    # What a crashed earlier run left: its nodes' processes, its tc shaping, old job directories.
    clean_previous_run(base_dir, KEEP_FINISHED)
    tls = client_tls(args.tls_ca, args.tls_cert, args.tls_key) if (args.tls or args.tls_ca) else None
    log.info("daemon priority: %s", raise_daemon_priority(args.nice))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # two pipes per instance
    sandbox = args.sandbox == "on" or (args.sandbox == "auto" and sandbox_available())
    if args.sandbox == "auto" and not sandbox:
        log.warning("splay.sandbox is not available: instances run unconfined")
    daemon = Daemon(host or "127.0.0.1", port, key, name, args.ip, limits, base_dir, tls,
                    args.orphan_timeout, args.max_backoff, args.silence_timeout,
                    clock_offset=args.clock_offset,
                    sandbox=sandbox, shaping_device=args.shaping_device,
                    node_output=args.node_output)
    if args.maelstrom_programs:
        from splay.maelstrom.programs import ProgramBridges
        daemon.manager.programs = ProgramBridges(daemon.manager.log_line, daemon.manager.clock)
    return asyncio.run(_run(daemon))


async def _run(daemon):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.ensure_future(daemon.run())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([runner, stopper], return_when=asyncio.FIRST_COMPLETED)
    daemon.manager.kill_all_now()
    daemon.drain_output()
    daemon.shaping.clear_now()
    daemon.spool.close()
    if runner.done():
        error = runner.exception()
        if isinstance(error, Refused):
            log.error("the controller refused this daemon: %s", error)
            return 3
        log.error("daemon failed: %r", error)
        return 1
    runner.cancel()
    log.info("daemon stopped; its instances were killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

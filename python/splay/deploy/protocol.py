"""The daemon <-> controller protocol: one JSON object per line over TCP, optionally inside TLS.

Every message is a JSON object with a ``"type"``. The daemon speaks first:

  daemon -> controller
    hello       {key, name, ip, limits: {max_instances, max_memory, start_port, end_port,
                 max_bandwidth}, instances: [{id, state, exit_code}], time}
    pong        {t0, time}                  answer to ping; gives the daemon's clock offset
    registered  {job, ports: {instance_id: port}, refused: {instance_id: reason}}
    started     {instances: [{id, pid}], failed: {instance_id: reason}}
    exited      {id, exit_code, state, time}        a process ended (state EXITED or KILLED)
                                                    for good (a churn job's last down included)
    churn       {id, change: up|down|crashed, at, scheduled, pid, exit_code, reason}
                a churn replay started (up) or stopped (down) an instance, or its process ended
                while the trace had it up (crashed); it comes up again at its next up time
    log         {lines: [[instance_id, time, stream, text], ...]}
    metrics     {samples: [[instance_id, sample], ...], dropped: {instance_id: n},
                 cut: {instance_id: reason}}
                the nodes' metrics samples (splay.observatory), about once a second; dropped:
                samples lost since the previous message; cut: nodes whose metrics were cut off
                (see daemon_metrics.py). Lossy: never resent
    exited, churn and log carry ``seq``, the daemon's report number (report_spool.py); the hello
    then carries ``incarnation`` (the numbers' owner) and ``spool_dropped`` {messages, lines}
    (what the spool's bound dropped since the last accepted hello)
  controller -> daemon
    welcome     {daemon_id, time, acked}     or   refused {reason}  (and the connection closes)
                acked: the last report number applied of the hello's incarnation; the daemon
                sends the later ones again
    ack         {seq}                         every numbered report up to seq is applied
    ping        {t0}
    register    {job, memory, instances: [instance_id, ...]}    reserve a port for each
    free        {instances: [instance_id, ...]}                 drop reservations
    start       {job: {ref, name, code, list_type, settings, sandbox},
                 nodes: [{ip, port}, ...], instances: [{id, position, list: [index, ...] | null,
                 times: [up, down, ...] (churn jobs)}], churn: {t0, speed} (churn jobs: t0 is
                 the trace's time 0 on the daemon's clock; the daemon replays the times itself)}
    release     {job}          every node of the job was started: let its processes run
    nodes       {job, nodes: [{ip, port}, ...]}   the job's alive nodes changed: rewrite the
                                                  nodes file of each of its instances
    stop        {instances: [instance_id, ...]}                 kill their processes
    error       {reason}                      a message was refused; the connection stays up

A line longer than ``MAX_LINE`` closes the connection (its framing cannot be trusted). A line that is
not a JSON object, or a message of unknown type, is logged and answered with ``error``.
"""
import asyncio
import json
import ssl

MAX_LINE = 64 * 1024 * 1024

DAEMON_MESSAGES = frozenset({"hello", "pong", "registered", "started", "exited", "log",
                             "churn", "metrics"})
CONTROLLER_MESSAGES = frozenset({"welcome", "refused", "ping", "register", "free", "start",
                                 "release", "nodes", "stop", "error", "ack"})


class ProtocolError(Exception):
    """A message that does not follow the protocol (bad JSON, not an object, no type...)."""


def encode(message):
    """One message as the bytes of its line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line, allowed=None):
    """The message of one line; raises ProtocolError saying what is wrong with it."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"not JSON ({e}): {line[:80]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {line[:80]!r}")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(f"message without a string 'type': {line[:80]!r}")
    if allowed is not None and kind not in allowed:
        raise ProtocolError(f"unknown message type {kind!r}")
    return message


class Channel:
    """A message stream over an asyncio (reader, writer) pair."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def receive_line(self):
        """The next line's bytes, or None at end of stream. A too-long line raises ProtocolError."""
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"line longer than {MAX_LINE} bytes") from None
        except (ConnectionError, ssl.SSLError, OSError):
            return None
        return line

    async def send(self, message):
        """Write one message and wait until the transport has room again."""
        self.writer.write(encode(message))
        await self.writer.drain()

    def send_nowait(self, message):
        """Queue one message without waiting (the transport buffers it)."""
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    def close(self):
        """Close the connection (idempotent)."""
        if not self.writer.is_closing():
            self.writer.close()


def server_tls(cert, key, ca=None):
    """A server TLS context from PEM files; with ``ca``, daemons must also show a certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(ca=None, cert=None, key=None):
    """A client TLS context: verifies the controller against ``ca`` (else trusts any certificate,
    which still encrypts; the shared key authenticates the daemon)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca:
        context.load_verify_locations(ca)
        context.check_hostname = False
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return context

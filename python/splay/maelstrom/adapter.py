"""The pysplay application that hosts one Maelstrom node (run by ``splay run --maelstrom``).

Node ``i`` of the job is Maelstrom node ``n<i>`` and hosts client ``c<i>``. It starts the
program (``bin=``, stdin and stdout on a loopback connection, stderr into the node's log) or
loads a :class:`splay.maelstrom.Node` application (``app=``), then routes every message:

* the program's messages to ``n<j>`` travel over pysplay's network (``rpcq``) to node ``j``'s
  adapter, which writes them to its program -- so partitions and topologies act on them; a
  message that cannot be delivered is dropped and counted, as Maelstrom's network drops it;
* messages to ``lin-kv``, ``seq-kv`` and ``lww-kv`` go to the services on node 0;
* messages to ``c<i>`` answer this node's client.

The clients follow one schedule: every node initialises its program and reports ready to node
0, which gives them all the same start time; each client then runs the workload for
``time=`` seconds at ``rate=`` operations per second in all, waits ``recovery=`` seconds and,
for workloads that need it, reads a final time; the nodes end together.
"""
import json
import os
import runpy
import shlex
import socket as pysocket
import subprocess
import sys

from splay.base import events, job, log, misc, socket
from splay import history, rpcq
from splay.maelstrom import messages as M
from splay.maelstrom import services, workloads
from splay.maelstrom.bundle import BRIDGE_FILE
from splay.maelstrom.node import Node
from splayc.errors import Restricted

opts = dict(arg.split("=", 1) for arg in sys.argv[1:] if "=" in arg)
WORKLOAD = workloads.get(opts["workload"], opts)
RATE, DURATION = float(opts.get("rate", 10)), float(opts.get("time", 10))
RECOVERY, TIMEOUT = float(opts.get("recovery", 3)), float(opts.get("timeout", 1))
INIT_TIMEOUT = float(opts.get("init_timeout", 10))
START_WAIT = 60.0              # how long a node tries to reach node 0 before giving up
SEED = opts.get("seed", "0")
PEERS = job.nodes()
N = len(PEERS)
ME = job.position
NODE_ID, CLIENT_ID = f"n{ME}", f"c{ME}"
NODE_IDS = [f"n{j}" for j in range(N)]

program = None                 # the subprocess, or the Node application
to_program_conn = None
write_lock = events.lock()
inited = False
held = []                      # messages that arrived before the program answered init
replies = {}                   # the client's msg_id -> reply body (None while waiting)
dropped = {"undeliverable": 0, "bad": 0}
kv_services = {name: services.KeyValueService(name) for name in services.NAMES} if ME == 0 else {}
ready_nodes = set()
aborted_nodes = set()             # positions whose program could not start (node 0 keeps them)
start_at = []


def peer_of(dest):
    """The position of the node hosting ``dest`` (a node, a client or a service), or None."""
    if dest in kv_services or (dest in services.NAMES):
        return 0
    if dest[:1] in ("n", "c") and dest[1:].isdigit() and int(dest[1:]) < N:
        return int(dest[1:])
    return None


def route(message):
    """Send ``message`` towards its destination (here or over the network)."""
    where = peer_of(message["dest"])
    if where is None:
        dropped["undeliverable"] += 1
        log.warning(f"maelstrom: dropped a message to unknown destination {message['dest']!r}")
        return
    if where == ME:
        arrive(message)
        return
    queue = outboxes.get(where)
    if queue is None:
        queue = outboxes[where] = []
        events.thread(lambda: sender(where, queue))
    queue.append(M.dump(message))
    if len(queue) == 1:
        events.fire(f"maelstrom outbox {NODE_ID} {where}")


outboxes = {}                  # peer position -> lines waiting to be sent


def sender(where, queue):
    """One thread per peer: sends what queued up since its last call in one RPC; what cannot be
    delivered is dropped (and counted), as Maelstrom's network drops it."""
    while True:
        if not queue:
            events.wait(f"maelstrom outbox {NODE_ID} {where}")
            continue
        batch = queue[:]
        del queue[:]
        ok, _ = rpcq.acall(PEERS[where], ["deliver", batch], TIMEOUT * 2)
        if not ok:
            dropped["undeliverable"] += len(batch)


def deliver(lines):
    """RPC entry point: messages from another node's adapter (a list of JSON lines)."""
    if not isinstance(lines, list):
        dropped["bad"] += 1
        log.warning(f"maelstrom: refused a delivery that is not a list of messages")
        return False
    for line in lines:
        try:
            message = M.parse(line)
        except (M.BadMessage, TypeError) as e:
            dropped["bad"] += 1
            log.warning(f"maelstrom: refused a message from the network: {e}")
            continue
        arrive(message)
    return True


def arrive(message):
    """A message for something hosted here: the program, the client or a service."""
    dest = message["dest"]
    if dest == CLIENT_ID:
        answer = message["body"].get("in_reply_to")
        if answer in replies:
            replies[answer] = message["body"]
            events.fire(f"maelstrom reply {CLIENT_ID} {answer}")
        return
    if dest in kv_services:
        reply = kv_services[dest].handle(message["body"])
        route({"src": dest, "dest": message["src"], "body": reply})
        return
    if dest != NODE_ID:
        dropped["undeliverable"] += 1
        return
    if not inited and message["src"] != CLIENT_ID:
        held.append(message)
        return
    to_program(message)


def to_program(message):
    if isinstance(program, Node):
        program.handle(message)
        return
    with write_lock:
        if to_program_conn.send(M.dump(message) + "\n") is None:
            log.error(f"maelstrom: the program of {NODE_ID} stopped reading its input")


def read_program(conn):
    """Every line the program writes is a message to route."""
    while True:
        line = conn.receive("*l")
        if line is None:
            if conn.error != "timeout":
                return
            continue
        try:
            message = M.parse(line)
        except M.BadMessage as e:
            dropped["bad"] += 1
            log.warning(f"maelstrom: {NODE_ID} wrote a line that is not a message: {e}")
            continue
        route(message)


def relay_stderr(conn):
    while True:
        line = conn.receive("*l")
        if line is None:
            if conn.error != "timeout":
                return
            continue
        log.print(f"[{NODE_ID}] {line.decode('utf-8', 'replace')}")


def shipped(word):
    """``word`` of ``app=``/``bin=``, as a path into the deployed job's files when it names one
    of them (``home=`` is where ``splay submit --maelstrom`` unpacked them), else unchanged."""
    home = opts.get("home")
    if home and not os.path.isabs(word) and os.path.isfile(os.path.join(home, word)):
        return os.path.join(home, word)
    return word


def program_argv():
    """The program's command line, its shipped files made absolute and executable."""
    argv = [shipped(word) for word in shlex.split(opts["bin"])]
    if argv and os.path.isfile(argv[0]) and not os.access(argv[0], os.X_OK):
        os.chmod(argv[0], os.stat(argv[0]).st_mode | 0o111)   # a zip archive keeps no mode bits
    return argv


def start_program():
    """Start the program with its stdin/stdout and stderr on loopback connections."""
    global program, to_program_conn
    if "app" in opts:
        namespace = runpy.run_path(shipped(opts["app"]), run_name="maelstrom_app")
        nodes = [v for v in namespace.values() if isinstance(v, Node)]
        if len(nodes) != 1:
            raise RuntimeError(f"{opts['app']} must create exactly one splay.maelstrom.Node "
                               f"(found {len(nodes)})")
        program = nodes[0]
        program.out = route
        return
    bridge = os.path.join(job.dir, BRIDGE_FILE) if job.dir else None
    if bridge and os.path.exists(bridge):
        connect_to_daemon_program(bridge)
        return
    why = "this node is confined by splay.sandbox" if confined() else None
    if why is None:
        try:
            start_subprocess()
        except Restricted as e:
            why = str(e)
    if why is not None:
        raise RuntimeError(
            f"the sandbox refused to start the Maelstrom program {opts['bin']!r} ({why}): a "
            f"confined node may create no process (its audit hook refuses subprocess and "
            f"os.fork, its seccomp filter fork, clone and execve). Start the daemons with "
            f"--maelstrom-programs (they then start the program beside the confined node, "
            f"unconfined) or with '--sandbox off', or serve the messages from a pysplay "
            f"application (--app FILE)")


def connect_to_daemon_program(bridge):
    """The daemon started this node's program (``splayd --maelstrom-programs``, see
    :mod:`splay.maelstrom.programs`): one loopback connection carries its stdin and stdout, the
    daemon puts its stderr in the node's log."""
    global to_program_conn
    with open(bridge) as f:
        port = json.load(f)["port"]
    conn = socket.connect("127.0.0.1", port)
    if conn is None:
        raise RuntimeError(f"cannot reach the program the daemon started (port {port}): "
                           f"{socket.last_error}")
    conn.settimeout(None)
    to_program_conn = conn
    events.thread(lambda: read_program(conn))


def confined():
    """True in a node confined by :mod:`splay.sandbox` (which refuses processes)."""
    sandbox = sys.modules.get("splay.sandbox")
    return sandbox is not None and sandbox.current() is not None


def start_subprocess():
    """The program's stdin/stdout and stderr are two loopback TCP connections: the listening
    and accepted ends are plain sockets handed to the program; this node connects with its own
    (non-blocking) sockets -- a deployed node may bind no port but its own."""
    global program, to_program_conn
    listener = pysocket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        conn = socket.connect("127.0.0.1", port)
        stdio = listener.accept()[0] if conn else None
        conn_err = socket.connect("127.0.0.1", port)
        errors = listener.accept()[0] if conn_err else None
    finally:
        listener.close()
    if conn is None or conn_err is None:
        for end in (stdio, conn):
            if end is not None:
                end.close()
        raise RuntimeError(f"cannot connect to the program's loopback socket: {socket.last_error}")
    argv = program_argv()
    try:
        program = subprocess.Popen(argv, stdin=stdio.fileno(), stdout=stdio.fileno(),
                                   stderr=errors.fileno(), close_fds=True, cwd=os.getcwd())
    except OSError as e:
        raise RuntimeError(f"cannot start the Maelstrom program {opts['bin']!r}: {e}") from None
    finally:
        stdio.close()
        errors.close()
    for c in (conn, conn_err):
        c.settimeout(None)
    to_program_conn = conn
    events.thread(lambda: read_program(conn))
    events.thread(lambda: relay_stderr(conn_err))


def request(body, timeout):
    """Send ``body`` from this node's client to its node; the reply body, or None (timeout)."""
    request.next_id = getattr(request, "next_id", 0) + 1
    msg_id = request.next_id
    replies[msg_id] = None
    arrive({"src": CLIENT_ID, "dest": NODE_ID, "body": dict(body, msg_id=msg_id)})
    if replies[msg_id] is None:
        events.wait(f"maelstrom reply {CLIENT_ID} {msg_id}", timeout)
    return replies.pop(msg_id)


def ready(position):
    """RPC on node 0: ``position`` is ready; returns the common start time once all are."""
    ready_nodes.add(position)
    events.fire("maelstrom heard")
    if len(ready_nodes) == N:
        start_at.append(misc.time() + 0.5)
        events.fire("maelstrom all ready")
    while not start_at:
        events.wait("maelstrom all ready")
    return start_at[0]


def abort(position):
    """RPC on node 0: node ``position`` could not start its program; every node stops."""
    aborted_nodes.add(position)
    if not start_at:
        start_at.append(None)
        events.fire("maelstrom all ready")
    events.fire("maelstrom heard")
    return True


def tell_the_others_and_stop():
    """Node 0's program could not start: answer the other nodes (their ``ready`` or ``abort``
    gets "stop") until each has asked, or for START_WAIT at most, then end. Node 0 must stay
    up for that: a node that finds node 0 gone cannot tell it from a node 0 not started yet,
    and would try for START_WAIT before giving up."""
    abort(ME)
    deadline = misc.time() + START_WAIT
    while len(ready_nodes | aborted_nodes) < N and misc.time() < deadline:
        events.wait("maelstrom heard", deadline - misc.time())


def perform(f, value, body):
    op = history.invoke(f, value)
    reply = request(body, TIMEOUT)
    if reply is None:
        op.info("timeout")
        return
    kind, result = WORKLOAD.outcome(f, value, reply)
    if kind == "ok":
        op.ok(result)
    elif kind == "fail":
        op.fail(result)
    else:
        op.info(result)


def call_node_0(call, timeout):
    """``rpcq.acall`` to node 0, tried again while it cannot be reached: deployed nodes start
    at different times, and node 0 may not serve yet. ``(ok, answer)``."""
    deadline = misc.time() + START_WAIT
    while True:
        ok, answer = rpcq.acall(PEERS[0], call, timeout)
        if ok or misc.time() > deadline:
            return ok, answer
        events.sleep(0.2)


def sleep_until(t):
    if t > misc.time():
        events.sleep(t - misc.time())


def main():
    global inited
    rpcq.server(job.me)
    try:
        start_program()
    except Exception as e:       # the other nodes must not wait for this one: stop them all
        log.error(f"maelstrom: {NODE_ID}: {e}; stopping the run")
        if ME == 0:
            tell_the_others_and_stop()
        else:
            call_node_0(["abort", ME], 5)
        finish()
        return
    reply = request({"type": "init", "node_id": NODE_ID, "node_ids": NODE_IDS}, INIT_TIMEOUT)
    if reply is None or reply.get("type") != "init_ok":
        log.error(f"maelstrom: the program of {NODE_ID} did not answer init with init_ok "
                  f"within {INIT_TIMEOUT:g} s (got {reply!r}); stopping the run")
        call_node_0(["abort", ME], 5)
        finish()
        return
    inited = True
    for message in held:
        to_program(message)
    held.clear()
    for body in WORKLOAD.setup(NODE_ID, NODE_IDS):
        request(body, TIMEOUT * 5)
    ok, answer = call_node_0(["ready", ME], 120)
    t0 = answer[0] if ok and answer else None
    if t0 is None:
        log.error(f"maelstrom: another node's program failed to start ({answer if not ok else 'aborted'}); "
                  f"{NODE_ID} stops")
        finish()
        return
    rng = workloads.rng_for(SEED, ME)
    per_client = RATE / N
    sleep_until(t0)
    seq, end = 0, t0 + DURATION
    while misc.time() < end:
        perform(*WORKLOAD.operation(rng, ME, seq))
        seq += 1
        events.sleep(min(rng.expovariate(per_client), max(0.0, end - misc.time())))
    if WORKLOAD.final_read:
        sleep_until(end + RECOVERY)
        perform(*WORKLOAD.final())
        end += RECOVERY
    sleep_until(end + TIMEOUT + 0.2)   # the other nodes' last operations may still need us
    if sum(dropped.values()):
        log.print(f"maelstrom: {NODE_ID} dropped {dropped['undeliverable']} undeliverable and "
                  f"{dropped['bad']} malformed messages")
    finish()


def finish():
    """Stop the program and end this node."""
    if isinstance(program, subprocess.Popen):
        program.terminate()
        for _ in range(20):            # waiting without blocking the other nodes' threads
            if program.poll() is not None:
                break
            events.sleep(0.1)
        else:
            program.kill()
            program.wait()
    events.exit()


events.run(main)

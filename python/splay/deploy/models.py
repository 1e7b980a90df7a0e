"""States of jobs, instances and daemons, and the rules between them."""

# Job states. A job moves QUEUED -> REGISTERING -> STARTING -> RUNNING -> ENDED | FAILED | KILLED,
# or stops early in NO_RESOURCES or FAILED; every final state comes with a human-readable reason.
# A job that ran ENDED only when every node exited with status 0 (or was stopped on schedule by
# its churn trace); when any node exited with an error, was lost or could not start it is FAILED,
# and its reason counts them.
QUEUED = "QUEUED"
REGISTERING = "REGISTERING"
STARTING = "STARTING"
RUNNING = "RUNNING"
ENDED = "ENDED"
KILLED = "KILLED"
NO_RESOURCES = "NO_RESOURCES"
FAILED = "FAILED"

JOB_STATES = (QUEUED, REGISTERING, STARTING, RUNNING, ENDED, KILLED, NO_RESOURCES, FAILED)
JOB_FINAL = frozenset({ENDED, KILLED, NO_RESOURCES, FAILED})
JOB_ACTIVE = frozenset({QUEUED, REGISTERING, STARTING, RUNNING})

# Instance states. An instance is one node of a job on one daemon.
I_REGISTERED = "REGISTERED"   # a slot (port, memory) is reserved on the daemon
I_STARTING = "STARTING"       # the daemon was told to start it
I_RUNNING = "RUNNING"         # its process runs
I_DOWN = "DOWN"               # a churn trace has it down for now; it comes up again (slot kept)
I_EXITED = "EXITED"           # its process ended by itself (exit_code says how)
I_KILLED = "KILLED"           # stopped on request (kill, max time)
I_LOST = "LOST"               # its daemon disappeared (or forgot it) while it ran
I_FAILED = "FAILED"           # the daemon could not start it

# Shown, never stored: a live instance whose daemon's connection dropped. The controller cannot
# tell whether it still runs; it becomes LOST once the daemon stays away longer than the
# controller's --daemon-timeout, or takes its reported state again when the daemon comes back.
I_UNREACHABLE = "UNREACHABLE"

INSTANCE_FINAL = frozenset({I_EXITED, I_KILLED, I_LOST, I_FAILED})
INSTANCE_LIVE = frozenset({I_REGISTERED, I_STARTING, I_RUNNING, I_DOWN})
INSTANCE_SHOWN_LIVE = INSTANCE_LIVE | {I_UNREACHABLE}

# Daemon states, as the controller sees them.
D_CONNECTED = "CONNECTED"
D_DISCONNECTED = "DISCONNECTED"   # gone, its instances wait for it to come back
D_LOST = "LOST"                   # gone longer than the controller's daemon timeout

LIST_TYPES = ("head", "random")


def shown_state(instance):
    """The state to show for an instance row (with its daemon's state as ``daemon_state``): its
    stored state, or UNREACHABLE while it is live and its daemon is not connected."""
    if instance["state"] in INSTANCE_LIVE and instance.get("daemon_state") not in (None, D_CONNECTED):
        return I_UNREACHABLE
    return instance["state"]


def instance_failed(instance):
    """True when an instance did not end well: it exited with a non-zero status, was lost, or
    could not start (a node stopped on request or by its churn trace did not fail)."""
    if instance["state"] == I_EXITED:
        return instance["exit_code"] not in (0, None)
    return instance["state"] in (I_LOST, I_FAILED)


def failure_summary(instances, limit=3):
    """What went wrong with ``instances`` in words (e.g. ``2 with an error status, 1 lost:
    node 0 exit status 1; node 3 lost: daemon tb1 unreachable ...``), or "" when nothing did."""
    failed = [i for i in instances if instance_failed(i)]
    if not failed:
        return ""
    counts = [f"{sum(i['state'] == I_EXITED for i in failed)} with an error status",
              f"{sum(i['state'] == I_LOST for i in failed)} lost"]
    not_started = sum(i["state"] == I_FAILED for i in failed)
    if not_started:
        counts.append(f"{not_started} not started")
    examples = []
    for instance in sorted(failed, key=lambda i: (i["position"] is None, i["position"] or 0))[:limit]:
        node = f"node {instance['position']}"
        if instance["state"] == I_EXITED:
            examples.append(f"{node} exit status {instance['exit_code']}")
        else:
            what = "lost" if instance["state"] == I_LOST else "not started"
            examples.append(f"{node} {what}" + (f" ({instance['reason']})" if instance["reason"] else ""))
    more = f"; {len(failed) - limit} more" if len(failed) > limit else ""
    return ", ".join(counts) + ": " + "; ".join(examples) + more

"""States of jobs, instances and daemons, and the rules between them."""

# Job states. A job moves QUEUED -> REGISTERING -> STARTING -> RUNNING -> ENDED | KILLED, or stops
# early in NO_RESOURCES or FAILED; every final state comes with a human-readable reason.
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

INSTANCE_FINAL = frozenset({I_EXITED, I_KILLED, I_LOST, I_FAILED})
INSTANCE_LIVE = frozenset({I_REGISTERED, I_STARTING, I_RUNNING, I_DOWN})

# Daemon states, as the controller sees them.
D_CONNECTED = "CONNECTED"
D_DISCONNECTED = "DISCONNECTED"   # gone, its instances wait for it to come back
D_LOST = "LOST"                   # gone longer than the controller's daemon timeout

LIST_TYPES = ("head", "random")

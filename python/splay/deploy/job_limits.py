"""What a daemon imposes on every job it runs, whatever the job asks (issue #19, items 1 and 7).

A daemon's limits come from ``splayd``'s options (:class:`Limits`, with defaults that protect the
host). Every instance gets:

* network limits, sealed by the node runner before the application starts: bind only the
  instance's own port (its slot), and ``max_send``, ``max_receive``, ``max_sockets`` no higher
  than the daemon's. A job may ask for less (``splay submit --max-send ...``), never for more;
  its blacklist is kept. So ``socket.limits()`` is never None on a daemon;
* with the sandbox on, ``splay.sandbox.confine`` limits: memory, CPU time, open files, disk, and
  the kernel's TCP bind wall on the same port.
"""

__all__ = ["Limits", "node_settings", "node_sandbox", "NET_LIMITS", "DEFAULTS"]

#: splayd's defaults, also shown by ``splayd --help``.
DEFAULTS = {"max_instances": 64, "max_memory": 512 << 20, "start_port": 20000, "end_port": 20999,
            "max_bandwidth": 0, "max_cpu": 3600.0, "max_disk": 1 << 30, "max_files": 1024,
            "max_send": 4 << 30, "max_receive": 4 << 30, "max_sockets": 512,
            "log_node_bytes": 10 << 20, "log_job_bytes": 100 << 20, "log_node_rate": 1 << 20,
            "log_job_rate": 4 << 20}

#: the restricted-socket settings a daemon caps
NET_LIMITS = ("max_send", "max_receive", "max_sockets")


class Limits:
    """What a daemon offers and imposes: instance slots, memory, ports, bandwidth, and the limits
    each instance runs under (CPU seconds, disk and open files, network bytes and sockets, and
    log bytes per node and per job, in all and per second). ``None`` for a limit means none."""

    def __init__(self, max_instances=DEFAULTS["max_instances"], max_memory=DEFAULTS["max_memory"],
                 start_port=DEFAULTS["start_port"], end_port=DEFAULTS["end_port"],
                 max_bandwidth=DEFAULTS["max_bandwidth"], *, max_cpu=DEFAULTS["max_cpu"],
                 max_disk=DEFAULTS["max_disk"], max_files=DEFAULTS["max_files"],
                 max_send=DEFAULTS["max_send"], max_receive=DEFAULTS["max_receive"],
                 max_sockets=DEFAULTS["max_sockets"], log_node_bytes=DEFAULTS["log_node_bytes"],
                 log_job_bytes=DEFAULTS["log_job_bytes"], log_node_rate=DEFAULTS["log_node_rate"],
                 log_job_rate=DEFAULTS["log_job_rate"]):
        if end_port < start_port:
            raise ValueError(f"empty port range {start_port}-{end_port}")
        for name, value in (("max_cpu", max_cpu), ("max_disk", max_disk), ("max_files", max_files),
                            ("max_send", max_send), ("max_receive", max_receive),
                            ("max_sockets", max_sockets), ("log_node_bytes", log_node_bytes),
                            ("log_job_bytes", log_job_bytes), ("log_node_rate", log_node_rate),
                            ("log_job_rate", log_job_rate)):
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.max_instances = max_instances
        self.max_memory = max_memory
        self.start_port = start_port
        self.end_port = end_port
        self.max_bandwidth = max_bandwidth
        self.max_cpu = max_cpu
        self.max_disk = max_disk
        self.max_files = max_files
        self.max_send = max_send
        self.max_receive = max_receive
        self.max_sockets = max_sockets
        self.log_node_bytes = log_node_bytes
        self.log_job_bytes = log_job_bytes
        self.log_node_rate = log_node_rate
        self.log_job_rate = log_job_rate

    def as_dict(self):
        """The limits as advertised to the controller."""
        return dict(vars(self))


def _asked(value):
    """A job's numeric limit when it is a whole number >= 0, else None (the daemon's applies)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


def node_settings(job_settings, limits, port):
    """The job's settings for the instance on ``port``, with the daemon's network limits: the
    bind range is the instance's port, and each of :data:`NET_LIMITS` is the lower of the job's
    and the daemon's."""
    settings = dict(job_settings or {})
    for name in NET_LIMITS:
        imposed, asked = getattr(limits, name), _asked(settings.get(name))
        settings[name] = asked if imposed is None or (asked is not None and asked <= imposed) \
            else imposed
    settings["start_port"] = settings["end_port"] = port
    return settings


def node_sandbox(limits, memory, port):
    """The ``splay.sandbox.confine`` keywords of an instance on ``port`` (``memory``: its bytes)."""
    sandbox = {"max_memory": memory, "bind_ports": [port, port]}
    for name in ("max_cpu", "max_disk", "max_files"):
        if getattr(limits, name) is not None:
            sandbox[name] = getattr(limits, name)
    return sandbox

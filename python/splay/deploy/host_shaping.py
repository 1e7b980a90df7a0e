"""Kernel shaping on a daemon's host: ``splay submit app.py --topology FILE --shaping kernel``.

With ``--shaping kernel`` the nodes do not emulate the topology in their sockets; each daemon
installs its host's outgoing links with ``tc`` (`splay.emulation.kernel`) before it starts the
job's processes, and removes them when the job's last instance on this daemon has ended. Shaping
is per host: the link to another daemon's host is the model's link between the lowest job
position here and the lowest position there (`kernel.links_for_host`), shared by every node of
both hosts, and nodes on the same daemon talk to each other unshaped.

A daemon shapes only with ``splayd --shaping-device DEV`` (the device whose egress carries this
host's traffic to the other hosts), as root, with tc, htb and u32 (and netem when the topology
asks for a delay or a partial loss); one kernel-shaped job at a time. When it cannot, the job's
instances on this daemon fail to start with a reason that says why and what to do, and the
controller fails the job with it.
"""
import asyncio
import concurrent.futures
import logging
import os

from splay.emulation import kernel

from .daemon_cleanup import forget_shaping, record_shaping

log = logging.getLogger("splay.daemon")

#: The values of a job's ``settings["shaping"]``: ``core`` (the default: each node's sockets
#: emulate the topology) or ``kernel`` (tc on each daemon's host).
SHAPING_MODES = ("core", "kernel")
CLEAR_AT_EXIT_TIMEOUT = 20.0
INSTEAD = "or submit the job with --shaping core (the topology is then emulated in the nodes' sockets)"


def wants_kernel_shaping(settings):
    """True when job ``settings`` ask for kernel shaping (``"shaping": "kernel"``)."""
    return (settings or {}).get("shaping") == "kernel"


def check_device_name(device):
    """``device`` when it can name a network device for tc (splayd ``--shaping-device``); raises
    ValueError saying why not."""
    try:
        kernel.clear_plan(device)       # checks the name as every tc command needs it
    except ValueError as e:
        raise ValueError(f"--shaping-device: {e}") from None
    return device


class ShapingRefused(Exception):
    """This host cannot shape a job as asked; the message says why and what to do."""


def _netem_words(delay, loss):
    """What of a link only netem can shape, in words ("" when nothing: a cut needs no netem)."""
    if loss >= 1.0:
        return ""
    words = ([f"{delay * 1000:g} ms delay"] if delay > 0.0 else []) + \
            ([f"{loss * 100:g}% loss"] if loss > 0.0 else [])
    return ", ".join(words)


class HostShaping:
    """The kernel shaping of one daemon's host: at most one job's links on ``device`` at a time.

    ``install`` and ``job_ended`` are called from the daemon's event loop; the tc commands run in
    one worker thread, in the order they were asked for, so the loop keeps serving meanwhile."""

    def __init__(self, device, daemon_name, record_dir=None):
        self.device = device
        self.daemon_name = daemon_name
        # Where the daemon notes that it shapes the device (daemon_cleanup.py): a restarted
        # daemon removes what a crashed run installed.
        self.record_dir = record_dir
        self.job_ref = None                 # the job whose links are on the device (or going on)
        self.worker = concurrent.futures.ThreadPoolExecutor(1, "splayd-tc")

    async def install(self, job, entries):
        """Shape this host's traffic for ``job`` when its settings ask for kernel shaping, before
        its instances ``entries`` (``{id, position}``) start. Returns None when done (or not
        asked), else the reason the instances cannot start."""
        settings = job.get("settings") or {}
        if not wants_kernel_shaping(settings):
            return None
        ref = job["ref"]
        where = f"daemon {self.daemon_name}"
        if self.device is None:
            return (f"the job asks for kernel shaping (--shaping kernel) but {where} was started "
                    f"without --shaping-device: start splayd with --shaping-device DEV (the "
                    f"device that carries this host's traffic to the other hosts, e.g. eth0), "
                    f"{INSTEAD}")
        if self.job_ref is not None:
            return (f"{where} already shapes its host's traffic for job {self.job_ref} (kernel "
                    f"shaping is per host, one job at a time): wait until that job has ended, "
                    f"{INSTEAD}")
        try:
            links = self.links(settings, [int(entry["position"]) for entry in entries])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            return f"{where} cannot work out its host's links from the job's topology: {e}"
        self.job_ref = ref
        if self.record_dir is not None:
            record_shaping(self.record_dir, self.device)
        try:
            report = await asyncio.get_running_loop().run_in_executor(self.worker, self._apply,
                                                                      links)
        except ShapingRefused as e:
            if self.job_ref == ref:
                self.job_ref = None
            if self.record_dir is not None:
                forget_shaping(self.record_dir)
            return f"{where}: {e}"
        log.info("job %s: kernel shaping on %s", ref, report.describe())
        return None

    @staticmethod
    def links(settings, positions):
        """This host's outgoing links for a job (``kernel.links_for_host``): ``positions`` are the
        job positions it holds, ``settings`` hold the topology's text and every position's
        address (``topology_text``, ``topology_nodes``, as the controller sends them)."""
        from splay.emulation import parse_link_model
        text, nodes = settings.get("topology_text"), settings.get("topology_nodes")
        if not isinstance(text, str):
            raise ValueError("the job's settings have no 'topology_text' (the topology to shape)")
        if not isinstance(nodes, list) or not nodes:
            raise ValueError("the job's settings have no 'topology_nodes' (the address of every "
                             "job position, added by the controller)")
        model = parse_link_model(text, "the job's topology")
        if model.nodes is not None and model.nodes < len(nodes):
            raise ValueError(f"the job's topology describes {model.nodes} nodes, fewer than its "
                             f"{len(nodes)} nodes")
        return kernel.links_for_host(model, positions, [node["ip"] for node in nodes])

    def _apply(self, links):
        """In the worker thread: check that this host can shape ``links``, then install them."""
        if os.geteuid() != 0:
            raise ShapingRefused(f"kernel shaping needs root (tc changes the device's queueing) "
                                 f"but splayd runs as uid {os.geteuid()}: run splayd as root, "
                                 f"{INSTEAD}")
        capabilities = kernel.probe()
        if not capabilities.can_shape:
            raise ShapingRefused(f"{capabilities.describe()} Install what is missing on this "
                                 f"host, {INSTEAD}")
        needs_netem = {ip: _netem_words(delay, loss) for ip, (delay, _, loss) in links.items()
                       if _netem_words(delay, loss)}
        if needs_netem and not capabilities.netem:
            ip, what = next(iter(sorted(needs_netem.items())))
            raise ShapingRefused(
                f"{kernel.NETEM_NEEDED}, so tc cannot add the delay or loss the topology asks for "
                f"{len(needs_netem)} destination(s) (e.g. {ip}: {what}): load netem on every "
                f"daemon's host, use a topology with bandwidths only, {INSTEAD}")
        try:
            return kernel.apply(links, self.device, capabilities=capabilities)
        except kernel.TcError as e:
            raise ShapingRefused(f"tc failed on {self.device}: {e}") from None
        except (ValueError, kernel.KernelShapingUnavailable) as e:
            raise ShapingRefused(f"cannot shape --shaping-device {self.device}: {e}; start "
                                 f"splayd with the device that carries this host's traffic to "
                                 f"the other hosts") from None

    def _clear(self, ref):
        """In the worker thread: remove what ``_apply`` installed; errors are logged."""
        try:
            removed = kernel.clear(self.device)
        except (ValueError, kernel.TcError) as e:
            log.warning("job %s: could not remove the kernel shaping from %s: %s", ref,
                        self.device, e)
            return
        if self.record_dir is not None:
            forget_shaping(self.record_dir)
        log.info("job %s: kernel shaping %s %s", ref,
                 "removed from" if removed else "was already gone from", self.device)

    def job_ended(self, job_ref):
        """The last instance of ``job_ref`` on this daemon has ended: remove its shaping (in the
        worker thread, after any tc command asked for before)."""
        if job_ref != self.job_ref:
            return
        self.job_ref = None
        self.worker.submit(self._clear, job_ref)

    def clear_now(self):
        """Remove the shaping at once and wait for it (the daemon is exiting)."""
        ref, self.job_ref = self.job_ref, None
        if ref is not None:
            try:
                self.worker.submit(self._clear, ref).result(CLEAR_AT_EXIT_TIMEOUT)
            except concurrent.futures.TimeoutError:
                log.warning("job %s: tc did not remove the kernel shaping from %s within %.0f s",
                            ref, self.device, CLEAR_AT_EXIT_TIMEOUT)
        self.worker.shutdown(wait=False)

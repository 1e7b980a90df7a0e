"""The simulated network: ``splay.socket`` TCP and UDP (so ``rpc``, ``rpcq``, ``urpc``, ``net``)
between the nodes of one process, in virtual time, with no file descriptor and no kernel.

API (for the simulation runner)::

    from splay.sim import clock, network

    clock.enable()                               # the network runs on virtual time
    net = network.install(seed=1)                # sockets created from now on are simulated
    ...  events.run(...)                         # the nodes talk through it
    network.node_down("10.0.0.7")                # a host stops (churn): see below
    network.node_up("10.0.0.7")
    network.uninstall(); clock.disable()

or ``with network.simulated(seed=1): events.run(main)`` (virtual time on and off included).

* ``install(seed=0, delay=0.0, loss=0.0, connect_timeout=127.0, default_ip="127.0.0.1")``:
  returns the :class:`Network`. ``seed`` seeds every ``splayc.shaping.Link`` created from then on
  (which datagrams are lost), so install it *before* applying a topology
  (``splay.emulation.apply``/``apply_job``, whose Links then take effect unchanged: delay, rate,
  loss, partitions' cuts). ``delay``/``loss`` are the default link, for pairs no topology shapes.
  ``connect_timeout``: how long a connect to a down host or over a cut link waits at most (the
  socket's own timeout if shorter). ``default_ip``: the address of a node without a job.
* Addresses are the jobs' ``(ip, port)``: a node's sockets bound to ``"*"`` (or connecting
  unbound) take ``node.job.me.ip``. In-process nodes are ``127.0.0.1:FIRST_PORT+i``; give each
  node its own IP (any IPv4 text works: there is no kernel) when hosts must go down one by one.
* ``node_down(ip)``: the host stops: its sockets close at once, the peers of its connections see a
  reset after the link delay (as from a crashed process), datagrams to it are lost and connects
  to it time out, until ``node_up(ip)``. ``crash(node)``: the sockets of one node object
  (``events.current_node()``) are reset; the host stays up, so its ports refuse connections.
* Churn with in-process nodes: call ``crash(node)`` (or ``node_down(ip)``) before stopping the
  node's threads, so its peers see resets; stopping alone closes its sockets gracefully (EOF at
  the peers, as ``events.exit()`` does in a real run).
* Tie rule: deliveries due at the same virtual instant run in the order they were scheduled (a
  global sequence number); all of them before the threads whose timers are due at that instant
  (which wake in arming order).
* ``installed()``: the network or None; ``Network.stats()``: events run, connects, refusals,
  resets, datagrams sent and lost.

Semantics in detail: the module docstring of ``splayc/simnet.pyx``; the user's view:
docs/simulation.md.
"""
import contextlib
import hashlib

from splayc import shaping as _shaping
from splayc import simnet as _simnet

from . import clock as _clock

Network = _simnet.Network
NetworkError = _simnet.NetworkError

__all__ = ["install", "uninstall", "installed", "simulated", "node_down", "node_up", "crash",
           "Network", "NetworkError"]


def _links_seed(seed):
    """The seed of the Links' generators for run seed ``seed`` (any int or str)."""
    digest = hashlib.sha256(f"splay-sim-links:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def install(seed=0, delay=0.0, loss=0.0, connect_timeout=127.0, default_ip="127.0.0.1"):
    """Install a simulated network (see the module docstring); the virtual clock must be on
    (``splay.sim.clock.enable()``). Returns the :class:`Network`."""
    if not _clock.is_virtual():
        raise NetworkError("the simulated network runs on virtual time: call "
                           "splay.sim.clock.enable() before network.install()")
    _shaping.seed_new_links(_links_seed(seed))
    try:
        net = Network(float(delay), float(loss), float(connect_timeout), str(default_ip))
        _simnet.install(net)
    except BaseException:
        _shaping.seed_new_links(None)
        raise
    return net


def uninstall():
    """Back to real sockets (sockets created from now on); pending deliveries are dropped.
    Returns the network that was installed, or None."""
    _shaping.seed_new_links(None)
    return _simnet.uninstall()


def installed():
    """The installed :class:`Network`, or None."""
    return _simnet.installed()


def _network():
    net = _simnet.installed()
    if net is None:
        raise NetworkError("no simulated network is installed: call splay.sim.network.install()")
    return net


def node_down(ip):
    """Host ``ip`` goes down (see the module docstring); returns how many sockets it had."""
    return _network().node_down(ip)


def node_up(ip):
    """Host ``ip`` answers again."""
    _network().node_up(ip)


def crash(node):
    """Reset every simulated socket of ``node`` (a crashed process on a live host); returns how
    many sockets it had."""
    return _network().crash(node)


@contextlib.contextmanager
def simulated(seed=0, start=0.0, **options):
    """``with simulated(seed=1) as net: events.run(main)``: virtual time from ``start`` and a
    simulated network (``options`` as for :func:`install`), both removed afterwards."""
    _clock.enable(start)
    try:
        net = install(seed, **options)
        try:
            yield net
        finally:
            uninstall()
    finally:
        _clock.disable()

"""Apply a link model to a node's real traffic, in the cooperative socket layer.

``apply(model, me, nodes)`` gives node ``me`` (a job position) one :class:`splayc.shaping.Link` per
direction to every other job node, from ``model.between``, made when the node first talks to that
peer (a node of a 100,000-node topology holds the links it uses); the socket layer (``splayc/tcp.pyx``,
``splayc/udp.pyx``) then delays, paces and drops that node's traffic. It works per node, so every
``--in-process`` node can have its own view. See docs/emulation.md, "Applying it".

>>> from splay.emulation import LinkModel, apply
>>> model = LinkModel.uniform(50, kbps=8000)          # 50 ms one way, 1 MB/s
>>> emu = apply(model, 0, [("127.0.0.1", 20000 + i) for i in range(4)])
>>> emu.cut([0, 1], [2, 3]); emu.heal()
1
"""
import weakref

from splayc.shaping import Link

from .peers import ConsecutivePeers, peer_table

__all__ = ["apply", "apply_job", "has_emulation", "kernel_shaped", "Emulation", "PeerLinks",
           "local_peers"]

# Every Emulation applied in this process, by model: a cut or heal refreshes all of them.
_by_model = weakref.WeakKeyDictionary()


class PeerLinks(dict):
    """An :class:`Emulation`'s links, ``{peer position: (Link out, Link in)}``, each pair made
    when first used: reading ``links[j]`` (or the node talking to peer ``j``) makes it; ``get``,
    ``in`` and iteration see the pairs made so far."""

    def __init__(self, emulation):
        super().__init__()
        self.emulation = emulation

    def __missing__(self, position):
        return self.emulation.pair(position)


class Emulation:
    """The links of one node to the others (see :func:`apply`)."""

    def __init__(self, model, me, peers, policy):
        self.model = model
        self.me = me
        self.peers = peers                  # a splay.emulation.peers table, shared by the nodes
        self.policy = policy
        self.links = PeerLinks(self)        # peer position -> (Link out, Link in), made on use
        self.faults = None                  # (delay, loss, duplicate, reorder) of splay.faults
        # The socket layer asks for a peer's pair the first time the node talks to it
        # (NetPolicy.link_pair): a node holds the pairs of the peers it talks to, so N nodes of
        # a large topology cost O(N + pairs used), not O(N**2).
        policy.link_source = self._pair_at

    def _pair_at(self, address):
        j = self.peers.position(address)
        return None if j is None or j == self.me else self.pair(j)

    def pair(self, j):
        """``(Link out, Link in)`` between this node and peer ``j``, made on first use."""
        pair = dict.get(self.links, j)
        if pair is None:
            if j == self.me or not 0 <= j < len(self.peers):
                raise KeyError(f"node {j} is not a peer of node {self.me} (positions 0 to "
                               f"{len(self.peers) - 1}, itself excluded)")
            pair = (Link(), Link())
            dict.__setitem__(self.links, j, pair)
            self.policy.links[self.peers.address(j)] = pair
            self._set(j, pair)
        return pair

    def _set(self, j, pair):
        out, back = pair
        delay, rate, loss = self.model.between(self.me, j)
        if self.faults is not None:
            extra_delay, extra_loss, duplicate, reorder = self.faults
            delay, loss = delay + extra_delay, 1.0 - (1.0 - loss) * (1.0 - extra_loss)
            out.set_faults(duplicate, reorder)
        out.set(delay, rate, loss)
        back.set(*self.model.between(j, self.me))

    def refresh(self):
        """Re-read every link made so far from the model (after the model's ``cut``/``heal``)."""
        for j, pair in self.links.items():
            self._set(j, pair)

    def set_faults(self, delay=0.0, loss=0.0, duplicate=0.0, reorder=0.0):
        """Message faults on what this node sends (``splay.faults``), over the model's links: an
        added delay in seconds, and the probabilities that a datagram is lost, sent twice, or held
        back behind later ones. All zero: the model's links alone."""
        self.faults = (float(delay), float(loss), float(duplicate), float(reorder))
        self.refresh()

    def cut(self, group_a, group_b=None):
        """``model.cut(...)``, then refresh every node of this process using the model."""
        partition = self.model.cut(group_a, group_b)
        _refresh_all(self.model)
        return partition

    def heal(self, partition=None, group_b=None):
        """``model.heal(...)``, then refresh every node of this process using the model."""
        result = self.model.heal(partition, group_b)
        _refresh_all(self.model)
        return result

    def remove(self):
        """Stop emulating: this node's new connections and datagrams are no longer shaped."""
        for j in self.links:
            self.policy.links.pop(self.peers.address(j), None)
        if self.policy.link_source == self._pair_at:
            self.policy.link_source = None
        emulations = _by_model.get(self.model, [])
        if self in emulations:
            emulations.remove(self)


def _refresh_all(model):
    for emu in list(_by_model.get(model, ())):
        emu.refresh()


def apply(model, me, nodes, node=None):
    """Shape the traffic of job node ``me`` to the other ``nodes`` (their addresses in job order,
    any node form, or a table of :mod:`splay.emulation.peers`) as ``model`` says; returns the
    :class:`Emulation`. A peer's links are made when the node first talks to it.

    Applies to the current node (``node``, or the process when there is none): it gets a
    restricted-socket policy if it had none (counting only, no limits). TCP connections this node
    opens to a peer's address, and datagrams it sends there, are shaped; see docs/emulation.md.
    """
    from splay import restricted_socket
    peers = peer_table(nodes)
    if not 0 <= me < len(peers):
        raise IndexError(f"node {me} is not in the list of {len(peers)} nodes")
    policy = getattr(node, "net_policy", None) if node is not None else restricted_socket.policy()
    if policy is None:
        restricted_socket.init({}, node=node)
        policy = restricted_socket.policy(node)
    policy.links = {}                      # a node's new emulation replaces its previous one
    emu = Emulation(model, me, peers, policy)
    _by_model.setdefault(model, []).append(emu)
    return emu


# Models read by apply_job, by path: the nodes of one process share one model, so a cut made
# through any node's Emulation holds for all of them.
_loaded = {}


def kernel_shaped(settings):
    """True when job ``settings`` leave the topology to the kernel (``splay submit --shaping
    kernel``: ``"shaping": "kernel"``, each daemon shapes its host with tc)."""
    return (settings or {}).get("shaping") == "kernel"


def has_emulation(settings):
    """True when job ``settings`` ask for an emulation in the nodes' sockets: a topology (unless
    the kernel shapes it), partitions, or a fault timeline (``--faults``: its partitions and
    message faults act on the links)."""
    settings = settings or {}
    if settings.get("partitions") or settings.get("faults"):
        return True
    return not kernel_shaped(settings) and bool(
        settings.get("topology") or settings.get("topology_text") is not None)


def apply_job(job, node=None):
    """Apply the emulation a launcher put in ``job.settings``. Its forms:

    - ``splay run --topology FILE``: ``{"topology": path, "topology_nodes": N}``, nodes ``i`` at
      ``me.ip:me.port - position + i``;
    - ``splay submit --topology FILE``: ``{"topology_text": content, "topology_nodes": [{ip,
      port}, ...]}``, the address of every job position as the controller placed them;
    - with either, or alone (over links that change nothing), ``splay run --partition SPEC``:
      ``{"partitions": [spec dicts], "partition_epoch": t}``, applied on schedule
      (:mod:`splay.emulation.partitions`); alone, ``topology_nodes`` is the number of nodes.

    With ``"shaping": "kernel"`` (``splay submit --shaping kernel``) the daemons shape the
    topology with tc: it is not emulated here, only the partitions are (over links that change
    nothing).

    Returns the :class:`Emulation`, or None when the job has no emulation in the sockets."""
    settings = getattr(job, "settings", None) or {}
    text = settings.get("topology_text")
    if not has_emulation(settings):
        return None
    if text is not None or isinstance(settings.get("topology_nodes"), list):
        in_sockets = None if kernel_shaped(settings) else text
        emulation = _apply_deployed(job, in_sockets, settings.get("topology_nodes"), node)
    elif settings.get("topology") or settings.get("partitions") or settings.get("faults"):
        emulation = _apply_local(job, settings.get("topology"), settings.get("topology_nodes"), node,
                                 settings.get("topology_first_port"))
    else:
        return None
    if settings.get("partitions"):
        _schedule_partitions(emulation.model, settings)
    return emulation


def _apply_local(job, path, count, node, first_port=None):
    """``apply_job`` for ``splay run``: the model's file (None: links that change nothing) and
    the number of nodes, at consecutive ports from the first node's (``first_port``)."""
    model = local_model(path, count)
    count = count or model.nodes
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"job settings: 'topology_nodes' must be the number of nodes, got {count!r}")
    return apply(model, job.position, local_peers(job, count, first_port), node=node)


# The ConsecutivePeers of splay run's layout, by (ip, first port, count): shared by the nodes.
_local_tables = {}


def local_peers(job, count, first_port=None):
    """The table of ``count`` nodes placed as ``splay run`` places them, seen from ``job``:
    consecutive ports from ``first_port`` (default: the first node's, ``me.port - position``),
    then the same ports on the next IPv4 addresses (``--sim`` with more nodes than ports)."""
    if first_port is None:
        first_port = job.me.port - job.position
        if first_port < 1:
            raise ValueError(f"job settings: node {job.position} at port {job.me.port} is past its "
                             "address's ports: give 'topology_first_port' (splay run does)")
    ip = ConsecutivePeers.first_ip(job.me, job.position, first_port)
    key = (ip, first_port, count)
    table = _local_tables.get(key)
    if table is None:
        table = _local_tables[key] = ConsecutivePeers(ip, first_port, count)
    return table


def local_model(path, count):
    """The link model every node of this process shares in a ``splay run``: the topology file
    at ``path`` (None: links that change nothing between ``count`` nodes), loaded once."""
    from .links import LinkModel
    from .matrix import load_link_model
    key = path or ("no topology", count)
    model = _loaded.get(key)
    if model is None:
        model = _loaded[key] = load_link_model(path) if path else LinkModel.uniform(0, nodes=count)
    return model


# The partition schedule of each model (one per process: in-process nodes share their model).
_schedules = weakref.WeakKeyDictionary()


def _schedule_partitions(model, settings):
    from .partitions import PartitionSchedule, PartitionSpec
    if model in _schedules:
        return
    try:
        specs = [PartitionSpec.from_dict(d) for d in settings["partitions"]]
        epoch = float(settings["partition_epoch"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"job settings: bad 'partitions' or 'partition_epoch' ({e})") from None

    def cut(group_a, group_b):
        partition = model.cut(group_a, group_b)
        _refresh_all(model)
        return partition

    def heal(partition):
        model.heal(partition)
        _refresh_all(model)
    _schedules[model] = PartitionSchedule(specs, epoch, cut, heal).start()


def _apply_deployed(job, text, addresses, node):
    """``apply_job`` for a deployed job: the model's text (None: links that change nothing, the
    kernel shapes the topology) and every position's address."""
    from .links import LinkModel
    from .matrix import parse_link_model
    if text is not None and not isinstance(text, str):
        raise ValueError("job settings: 'topology_text' must be the text of a topology file")
    if not isinstance(addresses, list) or not addresses:
        raise ValueError("job settings: 'topology_nodes' must list the address of every job "
                         "position (the controller adds it)")
    key = text if text is not None else ("no topology", len(addresses))
    model = _loaded.get(key)
    if model is None:
        model = _loaded[key] = (parse_link_model(text, "the job's topology") if text is not None
                                else LinkModel.uniform(0, nodes=len(addresses)))
    if model.nodes is not None and model.nodes < len(addresses):
        raise ValueError(f"the job's topology describes {model.nodes} nodes, fewer than its "
                         f"{len(addresses)} nodes")
    return apply(model, job.position, addresses, node=node)

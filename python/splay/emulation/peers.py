"""The job nodes an emulation shapes traffic to: position <-> address, one table per process.

A node's :class:`splay.emulation.apply.Emulation` finds the peer behind an ``(ip, port)`` it
talks to through one of these tables. Every node of an ``--in-process`` run or a simulation
shares the same table, so a 100,000-node topology costs one table, not one per node:

- :class:`PeerTable`: the addresses of any list of nodes, in job order (``splay submit``, the
  daemons' placement, or a list given to ``apply``);
- :class:`ConsecutivePeers`: ``splay run``'s layout, computed rather than stored: node ``i`` is
  ``first_port + i`` on ``ip``, and past the last port the same ports on the next IPv4 address
  (the layout of ``splay run --sim`` with more nodes than one address has ports).

>>> table = ConsecutivePeers("127.0.0.1", 65530, 10)
>>> table.address(7), table.position(("127.0.0.2", 65531))
(('127.0.0.2', 65531), 7)
"""
import ipaddress

from splay.node import address as _address

__all__ = ["PeerTable", "ConsecutivePeers", "peer_table"]


class PeerTable:
    """The addresses of ``nodes`` (any node form, in job order) and the position of each."""

    def __init__(self, nodes):
        self.addresses = tuple(tuple(_address(n)) for n in nodes)
        self.positions = {a: i for i, a in enumerate(self.addresses)}

    def __len__(self):
        return len(self.addresses)

    def address(self, position):
        """The ``(ip, port)`` of job node ``position``."""
        return self.addresses[position]

    def position(self, address):
        """The position of the node at ``(ip, port)``, or None when no job node is there."""
        return self.positions.get(address)


class ConsecutivePeers:
    """``count`` nodes from ``ip:first_port``: ports ``first_port``-65535 on ``ip``, then the same
    ports on the next IPv4 addresses (nothing stored: 1,000,000 nodes cost what 10 do)."""

    def __init__(self, ip, first_port, count):
        if not 1 <= first_port <= 65535:
            raise ValueError(f"the first node's port must be between 1 and 65535, got {first_port}")
        self.ip = str(ip)
        self.base = int(ipaddress.IPv4Address(self.ip))
        self.first_port = first_port
        self.per_ip = 65536 - first_port
        self.count = count

    def __len__(self):
        return self.count

    @staticmethod
    def first_ip(me, position, first_port):
        """The address of node 0 in the layout where node ``position`` is at ``me`` (an
        ``(ip, port)``) and node 0 at port ``first_port``: ``me``'s, or one before it per block of
        ports its position is past."""
        block, _ = _place(position, first_port)
        return me[0] if block == 0 else str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(me[0])) - block))

    def address(self, position):
        """The ``(ip, port)`` of job node ``position``."""
        if not 0 <= position < self.count:
            raise IndexError(f"node {position} is not one of the {self.count} nodes")
        block, port = _place(position, self.first_port)
        ip = self.ip if block == 0 else str(ipaddress.IPv4Address(self.base + block))
        return (ip, port)

    def position(self, address):
        """The position of the node at ``(ip, port)``, or None when no job node is there."""
        ip, port = address
        if type(port) is not int or port < self.first_port or port > 65535:
            return None
        if ip == self.ip:
            block = 0
        else:
            try:
                block = int(ipaddress.IPv4Address(ip)) - self.base
            except ValueError:               # a host name, an IPv6 address: not a job node
                return None
        position = block * self.per_ip + port - self.first_port
        return position if block >= 0 and position < self.count else None


def _place(position, first_port):
    """``(block, port)`` of node ``position`` in the consecutive layout from ``first_port``: on the
    ``block``-th IPv4 address after the first one, at ``port``."""
    block, offset = divmod(position, 65536 - first_port)
    return block, first_port + offset


# The last table built from a tuple, by identity: nodes that call apply() with the same tuple
# share its table. (A list may change between two calls: it gets a table of its own each time.)
_last = (None, None)


def peer_table(nodes):
    """``nodes`` as a table: a table is used as it is; a sequence gets a :class:`PeerTable` (the
    same one as the previous call when it is the same tuple object)."""
    global _last
    if isinstance(nodes, (PeerTable, ConsecutivePeers)):
        return nodes
    if type(nodes) is tuple and _last[0] is nodes:
        return _last[1]
    table = PeerTable(nodes)
    if type(nodes) is tuple:
        _last = (nodes, table)
    return table

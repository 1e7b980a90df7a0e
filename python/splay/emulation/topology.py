"""ModelNet-style XML topologies (as SPLAY used them) and shortest paths between job nodes.

A topology is a directed graph::

    <topology>
      <vertices>
        <vertex int_idx="1" role="virtnode" int_vn="1"/>
        <vertex int_idx="2" role="gateway"/>
        ...
      </vertices>
      <edges>
        <edge int_idx="1" int_src="1" int_dst="2" specs="client-stub" int_delayms="5"/>
        <edge int_idx="2" int_src="2" int_dst="1" specs="client-stub"/>
        ...
      </edges>
      <specs>
        <client-stub dbl_plr="0" dbl_kbps="1024" int_delayms="10" int_qlen="10"/>
      </specs>
    </topology>

- **vertices**: ``int_idx`` (required, unique), ``role``. Vertices with role ``virtnode`` (or
  ``client``) are where job nodes sit: job node ``i`` (its position, from 0) is the virtnode with
  the ``i``-th smallest ``int_vn`` (``int_idx`` when ``int_vn`` is absent). Other roles
  (``gateway``, ``stub``, ``transit``) are routers. A topology without any virtnode puts job
  nodes on all its vertices, in ``int_idx`` order.
- **edges** are one-way, from ``int_src`` to ``int_dst`` (list both directions for a two-way
  link, as ModelNet does). ``int_delayms`` (one-way delay, ms; decimals accepted), ``dbl_kbps``
  (bandwidth, kbit/s), ``dbl_plr`` (packet loss rate, 0 to 1) and ``int_qlen`` (queue length,
  packets) come from the edge, else from the link class named by ``specs``. A link without a
  delay anywhere is an error; without bandwidth it is unlimited; without loss it loses nothing.
- **specs**: one element per link class; its tag is the class name used in ``specs="..."``.

Between two job nodes, traffic takes the path of least total delay (Dijkstra; ties go to the
path with fewer hops, then to lower vertex numbers). The path's bandwidth is the smallest of its
links', its loss ``1 - prod(1 - loss)``. Elements other than these are ignored. Errors name the
line and column of the element at fault.
"""
import heapq
import math
import xml.parsers.expat
from dataclasses import dataclass, field
from typing import Optional

from .errors import TopologyError
from .links import LinkModel, PathQuality, kbps_to_bytes_per_second, path_loss

CLIENT_ROLES = ("virtnode", "client")
LINK_ATTRIBUTES = ("int_delayms", "dbl_kbps", "dbl_plr", "int_qlen")


@dataclass
class _Element:
    tag: str
    attributes: dict
    line: int
    column: int
    parent: Optional[str]


@dataclass(frozen=True)
class Link:
    """One directed link of a topology: delay in ms, bandwidth in kbit/s, loss rate, queue."""
    source: int
    destination: int
    delay_ms: float
    kbps: float = math.inf
    loss: float = 0.0
    qlen: Optional[int] = None


@dataclass
class Topology:
    """A parsed topology: vertices (index -> role), links, and the vertices of the job nodes."""
    vertices: dict
    links: list
    clients: list
    filename: str = "<topology>"
    _outgoing: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._outgoing = {v: [] for v in self.vertices}
        for link in self.links:
            self._outgoing[link.source].append(link)

    def shortest_paths(self, source):
        """From vertex ``source``: {vertex: (delay_ms, route tuple, links list)} for every
        vertex it can reach, along least-delay paths."""
        best = {source: (0.0, 0)}
        previous = {}
        heap = [(0.0, 0, source)]
        while heap:
            delay, hops, vertex = heapq.heappop(heap)
            if best.get(vertex) != (delay, hops):
                continue
            for link in self._outgoing[vertex]:
                candidate = (delay + link.delay_ms, hops + 1)
                known = best.get(link.destination)
                if known is None or candidate < known:
                    best[link.destination] = candidate
                    previous[link.destination] = link
                    heapq.heappush(heap, (candidate[0], candidate[1], link.destination))
        paths = {}
        for vertex, (delay, _) in best.items():
            links, cursor = [], vertex
            while cursor != source:
                link = previous[cursor]
                links.append(link)
                cursor = link.source
            links.reverse()
            route = (source,) + tuple(link.destination for link in links)
            paths[vertex] = (delay, route, links)
        return paths

    def link_model(self):
        """A `LinkModel` over the job nodes of this topology (shortest paths, computed lazily
        per source node and cached)."""
        per_source = {}

        def quality(i, j):
            source = self.clients[i]
            if source not in per_source:
                per_source[source] = self.shortest_paths(source)
            found = per_source[source].get(self.clients[j])
            if found is None:
                return PathQuality(math.inf, 0.0, 1.0, ())
            delay_ms, route, links = found
            bandwidth = min((kbps_to_bytes_per_second(link.kbps) for link in links), default=math.inf)
            return PathQuality(delay_ms / 1000.0, bandwidth, path_loss(link.loss for link in links), route)

        return LinkModel(quality, nodes=len(self.clients),
                         description=f"{self.filename}: {len(self.vertices)} vertices, "
                                     f"{len(self.links)} links, {len(self.clients)} job nodes")


def _read_elements(text, filename):
    """All elements of an XML document with their line, column and parent tag."""
    parser = xml.parsers.expat.ParserCreate()
    elements, stack = [], []

    def start(tag, attributes):
        elements.append(_Element(tag, dict(attributes), parser.CurrentLineNumber,
                                 parser.CurrentColumnNumber + 1, stack[-1] if stack else None))
        stack.append(tag)

    def end(tag):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text.encode("utf-8") if isinstance(text, str) else text, True)
    except xml.parsers.expat.ExpatError as error:
        raise TopologyError(f"this is not well-formed XML: {xml.parsers.expat.ErrorString(error.code)}",
                            filename, error.lineno, error.offset + 1) from None
    return elements


def _number(element, name, filename, kind=float):
    text = element.attributes[name]
    try:
        value = float(text)
    except ValueError:
        raise TopologyError(f"<{element.tag}> attribute {name}={text!r} is not a number",
                            filename, element.line, element.column) from None
    if not math.isfinite(value):
        raise TopologyError(f"<{element.tag}> attribute {name}={text!r} is not a finite number",
                            filename, element.line, element.column)
    if kind is int:
        if value != int(value):
            raise TopologyError(f"<{element.tag}> attribute {name}={text!r} must be a whole number",
                                filename, element.line, element.column)
        return int(value)
    return value


def _link_values(element, filename):
    """The link attributes an <edge> or a link class gives, checked."""
    values = {}
    for name in LINK_ATTRIBUTES:
        if name not in element.attributes:
            continue
        value = _number(element, name, filename, int if name == "int_qlen" else float)
        problem = None
        if name == "int_delayms" and value < 0:
            problem = "a delay cannot be negative"
        elif name == "dbl_kbps" and value <= 0:
            problem = "a bandwidth must be above 0 kbit/s"
        elif name == "dbl_plr" and not 0.0 <= value <= 1.0:
            problem = "a loss rate is between 0 and 1"
        elif name == "int_qlen" and value < 0:
            problem = "a queue length cannot be negative"
        if problem:
            raise TopologyError(f"<{element.tag}> {name}={element.attributes[name]!r}: {problem}",
                                filename, element.line, element.column)
        values[name] = value
    return values


def parse_modelnet(text, filename="<topology>"):
    """Parse a ModelNet-style XML topology into a `Topology`; raise `TopologyError` when bad."""
    elements = _read_elements(text, filename)
    if not elements or elements[0].tag != "topology":
        first = elements[0] if elements else None
        raise TopologyError(f"the root element must be <topology>, not <{first.tag}>" if first else
                            "empty document", filename, first.line if first else 1,
                            first.column if first else 1)
    vertices, vertex_elements, virtual_numbers = {}, {}, {}
    specs, edge_elements = {}, []
    for element in elements[1:]:
        if element.tag == "vertex" and element.parent == "vertices":
            if "int_idx" not in element.attributes:
                raise TopologyError("<vertex> has no int_idx", filename, element.line, element.column)
            index = _number(element, "int_idx", filename, int)
            if index in vertices:
                other = vertex_elements[index]
                raise TopologyError(f"vertex {index} is defined twice (first at line {other.line})",
                                    filename, element.line, element.column)
            vertices[index] = element.attributes.get("role", "")
            vertex_elements[index] = element
            if "int_vn" in element.attributes:
                number = _number(element, "int_vn", filename, int)
                if number in virtual_numbers:
                    raise TopologyError(f"int_vn {number} is used twice (also by vertex {virtual_numbers[number]})",
                                        filename, element.line, element.column)
                virtual_numbers[number] = index
        elif element.tag == "edge" and element.parent == "edges":
            edge_elements.append(element)
        elif element.parent == "specs":
            specs[element.tag] = (element, _link_values(element, filename))
    if not vertices:
        raise TopologyError("the topology has no <vertex> inside <vertices>", filename,
                            elements[0].line, elements[0].column)

    links = []
    for element in edge_elements:
        ends = []
        for name in ("int_src", "int_dst"):
            if name not in element.attributes:
                raise TopologyError(f"<edge> has no {name}", filename, element.line, element.column)
            vertex = _number(element, name, filename, int)
            if vertex not in vertices:
                raise TopologyError(f"<edge> {name}={vertex} names no vertex", filename,
                                    element.line, element.column)
            ends.append(vertex)
        values = {}
        class_name = element.attributes.get("specs")
        if class_name is not None:
            if class_name not in specs:
                known = ", ".join(sorted(specs)) or "none"
                raise TopologyError(f"<edge> specs={class_name!r} is not a link class in <specs> "
                                    f"(known: {known})", filename, element.line, element.column)
            values.update(specs[class_name][1])
        values.update(_link_values(element, filename))
        if "int_delayms" not in values:
            raise TopologyError("<edge> has no int_delayms, and no link class (specs) gives one",
                                filename, element.line, element.column)
        links.append(Link(ends[0], ends[1], values["int_delayms"], values.get("dbl_kbps", math.inf),
                          values.get("dbl_plr", 0.0), values.get("int_qlen")))

    clients = [v for v in vertices if vertices[v] in CLIENT_ROLES]
    if clients:
        by_number = {index: number for number, index in virtual_numbers.items()}
        clients.sort(key=lambda v: (by_number.get(v, v), v))
    else:
        clients = sorted(vertices)
    return Topology(vertices, links, clients, filename)


def read_modelnet(path):
    """Read and parse the ModelNet-style XML topology file at ``path``."""
    with open(path, "rb") as f:
        return parse_modelnet(f.read(), filename=str(path))

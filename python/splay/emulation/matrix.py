"""Simple link model files: a latency matrix, or one uniform model for all pairs.

**Latency matrix** (measured end-to-end values, used as they are, without routing)::

    # one-way values from the row's node to the column's node
    #      a        b          c
    a      -        10         20/1000
    b      10       -          5/500/0.01
    c      20/1000  5/500      -

- The first line that is not blank or a comment names the nodes (job node ``i`` is the
  ``i``-th name). Then one row per node, in the same order, starting with that node's name.
- A cell is ``delay_ms[/kbps[/loss]]``: one-way delay in milliseconds, then optionally the
  bandwidth in kbit/s (unlimited when absent, or ``*``) and the loss rate, 0 to 1 (0 when absent).
  ``x`` means no connectivity. The diagonal is ``-`` (or ``0``).
- Text after ``#`` is a comment.

**Uniform model** (all pairs alike), one line::

    uniform delay_ms=50 kbps=1000 loss=0.01

``delay_ms`` is required; ``kbps`` (default unlimited) and ``loss`` (default 0) are optional;
``nodes=N`` fixes the number of nodes (default: any).

Errors name the line and the column of the cell at fault.
"""
import math

from .errors import TopologyError
from .links import UNREACHABLE, LinkModel, PathQuality, kbps_to_bytes_per_second


def _content_lines(text):
    """(line number, content without comment, [(column, token)]) for each non-blank line."""
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0]
        tokens, position = [], 0
        for token in content.split():
            column = content.index(token, position)
            tokens.append((column + 1, token))
            position = column + len(token)
        if tokens:
            yield number, tokens


def _cell(token, filename, line, column):
    """A matrix cell: a `PathQuality`, or None for the diagonal."""
    if token == "x":
        return PathQuality(*UNREACHABLE)
    parts = token.split("/")
    if len(parts) > 3:
        raise TopologyError(f"cell {token!r} has more than 3 parts (delay_ms/kbps/loss)",
                            filename, line, column)
    names = ("delay", "bandwidth", "loss")
    values = []
    for name, part in zip(names, parts):
        if name == "bandwidth" and part == "*":
            values.append(math.inf)
            continue
        try:
            value = float(part)
        except ValueError:
            raise TopologyError(f"cell {token!r}: the {name} {part!r} is not a number "
                                f"(cells are delay_ms[/kbps[/loss]], or x, or - on the diagonal)",
                                filename, line, column) from None
        if not math.isfinite(value):
            raise TopologyError(f"cell {token!r}: the {name} must be a finite number", filename, line, column)
        values.append(value)
    delay = values[0]
    kbps = values[1] if len(values) > 1 else math.inf
    loss = values[2] if len(values) > 2 else 0.0
    if delay < 0:
        raise TopologyError(f"cell {token!r}: a delay cannot be negative", filename, line, column)
    if not kbps > 0:
        raise TopologyError(f"cell {token!r}: a bandwidth must be above 0 kbit/s", filename, line, column)
    if not 0.0 <= loss <= 1.0:
        raise TopologyError(f"cell {token!r}: a loss rate is between 0 and 1", filename, line, column)
    return PathQuality(delay / 1000.0, kbps_to_bytes_per_second(kbps), loss)


def parse_matrix(text, filename="<matrix>"):
    """Parse a latency matrix (see the module docstring) into a `LinkModel`."""
    lines = list(_content_lines(text))
    if not lines:
        raise TopologyError("the matrix is empty: expected a line of node names, then one row per node",
                            filename, 1, 1)
    header_line, header = lines[0]
    names = [token for _, token in header]
    seen = {}
    for column, name in header:
        if name in seen:
            raise TopologyError(f"node name {name!r} appears twice in the header", filename, header_line, column)
        seen[name] = column
    rows = lines[1:]
    if len(rows) != len(names):
        where = rows[-1][0] if rows else header_line
        raise TopologyError(f"the header names {len(names)} nodes but {len(rows)} rows follow",
                            filename, where, 1)
    table = {}
    for i, (line, tokens) in enumerate(rows):
        label_column, label = tokens[0]
        if label != names[i]:
            raise TopologyError(f"row {i + 1} should start with {names[i]!r} (header order), not {label!r}",
                                filename, line, label_column)
        cells = tokens[1:]
        if len(cells) != len(names):
            # Point at the first cell too many, or at the last cell there is.
            column = cells[len(names)][0] if len(cells) > len(names) else \
                (cells[-1][0] if cells else label_column)
            raise TopologyError(f"row {label!r} has {len(cells)} cells, expected {len(names)}",
                                filename, line, column)
        for j, (column, token) in enumerate(cells):
            if i == j:
                if token not in ("-", "0"):
                    raise TopologyError(f"the diagonal cell of {label!r} must be '-' or '0', not {token!r}",
                                        filename, line, column)
                continue
            table[(i, j)] = _cell(token, filename, line, column)
    return LinkModel(lambda i, j: table[(i, j)], nodes=len(names), names=names,
                     description=f"{filename}: latency matrix of {len(names)} nodes")


def parse_uniform(text, filename="<model>"):
    """Parse a one-line uniform model (``uniform delay_ms=50 kbps=1000 loss=0``)."""
    lines = list(_content_lines(text))
    if len(lines) != 1 or lines[0][1][0][1] != "uniform":
        raise TopologyError("a uniform model is one line: uniform delay_ms=D [kbps=B] [loss=L] [nodes=N]",
                            filename, lines[0][0] if lines else 1, 1)
    line, tokens = lines[0]
    values = {}
    for column, token in tokens[1:]:
        key, equals, text_value = token.partition("=")
        if not equals or key not in ("delay_ms", "kbps", "loss", "nodes"):
            raise TopologyError(f"{token!r}: expected delay_ms=, kbps=, loss= or nodes=", filename, line, column)
        if key in values:
            raise TopologyError(f"{key} is given twice", filename, line, column)
        try:
            value = float(text_value)
        except ValueError:
            raise TopologyError(f"{token!r}: {text_value!r} is not a number", filename, line, column) from None
        if key == "nodes" and (value != int(value) or value < 1):
            raise TopologyError(f"{token!r}: nodes must be a whole number >= 1", filename, line, column)
        values[key] = (value, column)
    if "delay_ms" not in values:
        raise TopologyError("the uniform model needs delay_ms=", filename, line, 1)
    try:
        return LinkModel.uniform(values["delay_ms"][0], values.get("kbps", (math.inf, 0))[0],
                                 values.get("loss", (0.0, 0))[0],
                                 int(values["nodes"][0]) if "nodes" in values else None)
    except ValueError as error:
        raise TopologyError(str(error), filename, line, 1) from None


def load_link_model(path):
    """Read a link model file of any supported kind and return its `LinkModel`.

    ModelNet XML when the file starts with ``<``; a uniform model when its first word is
    ``uniform``; a latency matrix otherwise.
    """
    with open(path, "rb") as f:
        data = f.read()
    return parse_link_model(data, str(path))


def parse_link_model(data, filename="<model>"):
    """The `LinkModel` of a link model's content (``bytes`` or ``str``), of any supported kind
    (see `load_link_model`); errors name ``filename`` and the line."""
    from .topology import parse_modelnet  # here, not at the top: topology is the heavier reader

    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.lstrip().startswith(b"<"):
        return parse_modelnet(data, filename).link_model()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TopologyError(f"not UTF-8 text (byte {error.start})", filename) from None
    first = next(_content_lines(text), None)
    if first is not None and first[1][0][1] == "uniform":
        return parse_uniform(text, filename)
    return parse_matrix(text, filename)

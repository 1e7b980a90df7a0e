"""Errors for bad topology files: each names the file, line and column, and what was wrong."""
from splay.file_errors import FileError


class TopologyError(FileError):
    """A topology, latency matrix or link model file is not valid.

    ``str(error)`` reads ``file:line:col: message``; the attributes ``filename``, ``line``,
    ``column`` (1-based, ``None`` when unknown) and ``message`` hold the parts.
    """

    unnamed = "<topology>"

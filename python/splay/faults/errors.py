"""Errors for bad fault timelines: ``file:line:col: message`` (see :class:`splay.file_errors.FileError`)."""
from splay.file_errors import FileError

__all__ = ["FaultError"]


class FaultError(FileError):
    """A fault timeline (``--faults FILE``) is not valid; it says where and what to write instead."""

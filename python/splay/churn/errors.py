"""Errors for bad churn input: every one names the file, line and column, and what was wrong.

``str(error)`` reads ``file:line:col: message`` (the form compilers use, so editors can jump to
it). The attributes ``filename``, ``line``, ``column`` (1-based; ``None`` when unknown) and
``message`` let programs report it their own way (see :class:`splay.file_errors.FileError`).
"""
from splay.file_errors import FileError


class ChurnError(FileError):
    """A churn trace, churn script or availability file is not valid."""


class TraceError(ChurnError):
    """A churn trace (one line of up/down times per node) is not valid."""


class ScriptError(ChurnError):
    """A churn script cannot be parsed or compiled."""


class AvailabilityError(ChurnError):
    """An availability event file cannot be converted."""

"""Errors for bad input files that name where the problem is: ``file:line:col: message``.

``str(error)`` reads like a compiler's message (so editors can jump to it). The attributes
``filename``, ``line``, ``column`` (1-based; ``None`` when unknown) and ``message`` let programs
report it their own way. The churn errors (:mod:`splay.churn.errors`) and the topology errors
(:mod:`splay.emulation.errors`) derive from :class:`FileError`.
"""

__all__ = ["FileError"]


class FileError(ValueError):
    """An input file is not valid; it says where (see the module docstring)."""

    #: What ``str()`` names the input by when no ``filename`` was given.
    unnamed = "<input>"

    def __init__(self, message, filename=None, line=None, column=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column

    def __str__(self):
        where = [str(self.filename or self.unnamed)]
        if self.line is not None:
            where.append(str(self.line))
            if self.column is not None:
                where.append(str(self.column))
        return ":".join(where) + ": " + self.message

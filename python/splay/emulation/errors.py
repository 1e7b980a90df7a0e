"""Errors for bad topology files: each names the file, line and column, and what was wrong."""


class TopologyError(ValueError):
    """A topology, latency matrix or link model file is not valid.

    ``str(error)`` reads ``file:line:col: message``; the attributes ``filename``, ``line``,
    ``column`` (1-based, ``None`` when unknown) and ``message`` hold the parts.
    """

    def __init__(self, message, filename=None, line=None, column=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column

    def __str__(self):
        where = [str(self.filename or "<topology>")]
        if self.line is not None:
            where.append(str(self.line))
            if self.column is not None:
                where.append(str(self.column))
        return ":".join(where) + ": " + self.message

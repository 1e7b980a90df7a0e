"""Errors for bad churn input: every one names the file, line and column, and what was wrong.

``str(error)`` reads ``file:line:col: message`` (the form compilers use, so editors can jump to
it). The attributes ``filename``, ``line``, ``column`` (1-based; ``None`` when unknown) and
``message`` let programs report it their own way.
"""


class ChurnError(ValueError):
    """A churn trace, churn script or availability file is not valid."""

    def __init__(self, message, filename=None, line=None, column=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column

    def __str__(self):
        where = [str(self.filename or "<input>")]
        if self.line is not None:
            where.append(str(self.line))
            if self.column is not None:
                where.append(str(self.column))
        return ":".join(where) + ": " + self.message


class TraceError(ChurnError):
    """A churn trace (one line of up/down times per node) is not valid."""


class ScriptError(ChurnError):
    """A churn script cannot be parsed or compiled."""


class AvailabilityError(ChurnError):
    """An availability event file cannot be converted."""

"""splay.log: leveled logging with prefixes and replaceable outputs (the manual's ``splay.log``).

Levels: 1 debug, 2 notice, 3 warning, 4 error, 5 print. A message is written when its level is at
least the logger's level. The module itself is the default logger, steered by ``global_level``;
:func:`new` makes independent loggers with their own level and prefix::

    from splay import log
    log.debug("debug")            # not written: global_level is 3 (warning)
    log.global_level = 1
    log.debug("debug again")      # written

    l_o = log.new(2, "[my_log]")  # own level: notice
    l_o.debug("debug")            # not written
    l_o.level = 1
    l_o.debug("debug again")      # [my_log] D: debug again

A logger builds its line with ``write(level, *args)`` (default :func:`global_write`), puts its prefix
in front and hands the line to ``out(line)`` (default :data:`global_out`, standard output). Both can
be replaced per logger, as in the manual: ``l_o.out = out.file("my_log.txt")``.
Every library module has such a logger named ``l_o`` (level warning), made by :func:`module_logger`.
"""
from . import out as _out

__all__ = ["DEBUG", "NOTICE", "WARNING", "ERROR", "PRINT", "LABELS", "global_level", "global_out",
           "global_write", "new", "module_logger", "Logger", "debug", "notice", "info", "warning",
           "warn", "error", "print"]

DEBUG, NOTICE, WARNING, ERROR, PRINT = 1, 2, 3, 4, 5

#: The label each level puts before the message (print has none).
LABELS = {DEBUG: "D:", NOTICE: "N:", WARNING: "W:", ERROR: "E:", PRINT: ""}

#: Level of the default logger (this module): messages below it are dropped.
global_level = WARNING

#: Where loggers without their own ``out`` send their lines (a function of one string).
global_out = _out.print()


def global_write(level, *args):
    """Build a log line: the level's label, then the arguments separated by spaces.

    >>> global_write(2, "hello", 42)
    'N: hello 42'
    """
    text = " ".join(a if isinstance(a, str) else str(a) for a in args)
    label = LABELS.get(level, "")
    return f"{label} {text}" if label else text


def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"a log level is an int from 1 (debug) to 5 (print), got {level!r}")
    return level


class Logger:
    """A log object: ``level``, ``prefix``, ``out`` and ``write`` can all be changed at any time.

    ``out`` and ``write`` read as the global defaults until set on the object; setting them to
    ``None`` goes back to the defaults.
    """

    def __init__(self, level=WARNING, prefix=None):
        self.level = _check_level(level)
        self.prefix = prefix
        self._out = None
        self._write = None

    @property
    def out(self):
        """Function that outputs a finished line (default: the module's ``global_out``)."""
        return self._out if self._out is not None else global_out

    @out.setter
    def out(self, function):
        self._out = function

    @property
    def write(self):
        """Function ``(level, *args) -> line`` (default: :func:`global_write`)."""
        return self._write if self._write is not None else global_write

    @write.setter
    def write(self, function):
        self._write = function

    def _current_level(self):
        return self.level

    def log(self, level, *args):
        """Write ``args`` at ``level`` if the logger's level lets it through."""
        if level < self._current_level():
            return
        line = self.write(level, *args)
        if line is None:
            return
        if self.prefix:
            line = f"{self.prefix} {line}"
        self.out(line)

    def debug(self, *args):
        """Level 1."""
        self.log(DEBUG, *args)

    def notice(self, *args):
        """Level 2."""
        self.log(NOTICE, *args)

    info = notice

    def warning(self, *args):
        """Level 3."""
        self.log(WARNING, *args)

    warn = warning

    def error(self, *args):
        """Level 4."""
        self.log(ERROR, *args)

    def print(self, *args):
        """Level 5: written unless the level is set above 5."""
        self.log(PRINT, *args)

    def __repr__(self):
        return f"<splay.log object level={self.level} prefix={self.prefix!r}>"


class _DefaultLogger(Logger):
    # The module-level logger: its level is ``global_level``, read at every call.
    def _current_level(self):
        return global_level


_default = _DefaultLogger(WARNING, None)


def new(level=WARNING, prefix=None):
    """A new log object with its own ``level`` (default 3, warning) and ``prefix``."""
    return Logger(level, prefix)


def module_logger(name, level=WARNING):
    """The ``l_o`` of a library module: ``module_logger("rpc")`` writes ``[rpc] W: ...``."""
    return Logger(level, f"[{name}]")


def log(level, *args):
    """Write with the default logger at ``level``."""
    _default.log(level, *args)


def debug(*args):
    """Default logger, level 1 (written when ``global_level`` <= 1)."""
    _default.log(DEBUG, *args)


def notice(*args):
    """Default logger, level 2."""
    _default.log(NOTICE, *args)


info = notice


def warning(*args):
    """Default logger, level 3."""
    _default.log(WARNING, *args)


warn = warning


def error(*args):
    """Default logger, level 4."""
    _default.log(ERROR, *args)


def print(*args):  # noqa: A001 - the manual's name
    """Default logger, level 5."""
    _default.log(PRINT, *args)


def __getattr__(name):
    # The default logger's ``out``/``write`` read like a log object's (``log.out``).
    if name == "out":
        return _default.out
    if name == "write":
        return _default.write
    if name == "level":
        return global_level
    raise AttributeError(f"module 'splay.log' has no attribute {name!r}")


#: This module's own logger is the default logger.
l_o = _default

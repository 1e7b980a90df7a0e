"""The exception hierarchy shared by the compiled core and the Python layer.

It lives in ``splayc`` so that compiled modules can raise these exact classes; ``splay`` re-exports
them (``splay.SplayError`` and friends) and users should import them from there.
"""


class SplayError(Exception):
    """Base class of every error pysplay raises on purpose."""


class NotInThread(SplayError):
    """A blocking call (sleep, wait, lock, socket or RPC operation) was made outside a SPLAY thread."""


class RPCError(SplayError):
    """A remote call failed: transport error, refused name, or an exception in the remote function."""


class RPCTimeout(RPCError):
    """A remote call did not complete within its timeout."""


class Restricted(SplayError):
    """An operation was refused by the sandbox (restricted sockets, files, or the job's confinement)."""


class DecodeError(SplayError, ValueError):
    """Malformed input to a codec (benc, llenc): says at which offset and what was expected."""

    def __init__(self, message, offset=None):
        if offset is not None:
            message = f"{message} (at offset {offset})"
        super().__init__(message)
        self.offset = offset

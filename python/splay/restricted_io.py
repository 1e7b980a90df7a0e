"""Restricted IO: SPLAY's virtual file system for jobs (the manual's ``splay.restricted_io``).

After :func:`init`, every file name the job uses is mapped to one flat file inside the chosen
directory, named by the MD5 hex digest of the name's normalised absolute virtual path (as in the
original SPLAY). ``"data.txt"``, ``"/data.txt"`` and ``"x/../data.txt"`` are the same virtual file;
``"/etc/passwd"`` and ``"../../etc/passwd"`` are another one, *inside* the directory. No name
can reach a real file outside the directory, whatever it contains.

Limits, all optional: open file descriptors, number of files and total size in bytes. A refused
operation raises :class:`splay.Restricted` naming the limit (Python code expects exceptions from
``open``; only the socket layer keeps LuaSocket's ``None, "restricted"`` convention). Ordinary
failures stay ordinary Python errors (``FileNotFoundError`` for a missing file).

Sizes are accounted exactly at the level where bytes reach the disk (below Python's buffers):
each write, truncation, ``remove``, ``rename`` over an existing file, and a reopen with ``"w"``
updates the total from the file's real size. A removed file that is still open keeps counting
until its last descriptor closes, because it still occupies the disk.

    >>> from splay import restricted_io as io
    >>> io.init(directory="fs", max_size=1 << 20, max_files=64, max_file_descriptors=16, clean=True)
    >>> with io.open("notes.txt", "w") as f:
    ...     f.write("hello")
    5
    >>> io.open("notes.txt").read()
    'hello'
"""
import hashlib
import io as _io
import os
import posixpath
import shutil
import sys
import threading

from splayc.errors import Restricted

from . import log as _log

__all__ = ["init", "open", "close", "lines", "type", "tmpfile", "remove", "rename", "exists",
           "popen", "read", "write", "real_path", "limits", "stats", "infos",
           "stdin", "stdout", "stderr"]

#: This module's logger (a ``splay.log`` object, level warning) that users may tune.
l_o = _log.module_logger("restricted_io")

# Python's builtin open, kept before this module's own ``open`` shadows it.
_builtin_open = open

# The module's standard streams (None when init(no_std=True)).
stdin = sys.stdin
stdout = sys.stdout
stderr = sys.stderr


class _Entry:
    """One real file of the virtual file system: its size, its open descriptors, whether it has a name."""

    __slots__ = ("key", "size", "open_count", "linked")

    def __init__(self, key, size):
        self.key = key
        self.size = size
        self.open_count = 0
        self.linked = True


class _FileSystem:
    """The state behind the module functions: directory, limits and exact usage counters.

    In a confined job the directory and limits are fixed once set: assigning them raises
    Restricted (the confinement's max_disk, kept by the compiled audit hook, stays the wall).
    """

    _FIXED = frozenset({"directory", "max_file_descriptors", "max_size", "max_files", "keep_popen"})

    def __setattr__(self, name, value):
        if name in self._FIXED and name in self.__dict__ and _ceilings() is not None:
            raise Restricted(f"restricted_io: changing {name} refused: the limits of a confined job are "
                             f"fixed once set (call init() again; its limits are capped by the confinement)")
        object.__setattr__(self, name, value)

    def __init__(self, directory, max_file_descriptors, max_size, max_files, keep_popen):
        self.directory = directory
        self.max_file_descriptors = max_file_descriptors
        self.max_size = max_size
        self.max_files = max_files
        self.keep_popen = keep_popen
        self.lock = threading.RLock()
        self.entries = {}          # key (hex name) -> _Entry, for files that have a name
        self.total_size = 0        # bytes of every linked or still-open file
        self.open_descriptors = 0
        self.temp_counter = 0
        with os.scandir(directory) as listing:
            for item in listing:
                if item.is_file(follow_symlinks=False):
                    size = item.stat(follow_symlinks=False).st_size
                    self.entries[item.name] = _Entry(item.name, size)
                    self.total_size += size

    # -- accounting -------------------------------------------------------------------------------

    def resize(self, entry, new_size):
        """Record that ``entry`` is now ``new_size`` bytes long."""
        with self.lock:
            self.total_size += new_size - entry.size
            entry.size = new_size

    def check_growth(self, entry, new_size, action):
        """Raise Restricted when growing ``entry`` to ``new_size`` would pass ``max_size``."""
        with self.lock:
            growth = new_size - entry.size
            if self.max_size is not None and growth > 0 and self.total_size + growth > self.max_size:
                raise Restricted(
                    f"restricted_io: {action} refused: it would use {self.total_size + growth} bytes, "
                    f"over the limit max_size={self.max_size} (free space with remove())")

    def forget(self, entry):
        """Drop ``entry`` from the totals once it has neither a name nor an open descriptor."""
        if not entry.linked and entry.open_count == 0:
            self.total_size -= entry.size
            entry.size = 0

    def unlink(self, entry):
        """The name of ``entry`` is gone (remove, or replaced by rename)."""
        entry.linked = False
        self.entries.pop(entry.key, None)
        self.forget(entry)

    def release(self, entry):
        """One descriptor of ``entry`` closed."""
        with self.lock:
            entry.open_count -= 1
            self.open_descriptors -= 1
            self.forget(entry)


_fs = None


def _key(name):
    """The flat real file name of virtual file ``name``: MD5 of its normalised absolute path."""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not isinstance(name, str):
        raise TypeError(f"restricted_io: a file name must be str or bytes, not {name.__class__.__name__}")
    if not name or "\0" in name:
        raise ValueError(f"restricted_io: invalid file name {name!r}")
    virtual = posixpath.normpath("/" + name)
    if virtual.startswith("//"):
        virtual = virtual[1:]
    return hashlib.md5(virtual.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()


def _state():
    if _fs is None:
        raise Restricted("restricted_io is not initialised: call restricted_io.init(directory=...) first")
    return _fs


def _ceilings():
    """The confinement's limits when this process is confined (splay.sandbox), else None."""
    sandbox = sys.modules.get("splay.sandbox")
    return sandbox.current() if sandbox is not None else None


def _capped(value, ceiling):
    if ceiling is None:
        return value
    return ceiling if value is None else min(value, ceiling)


def init(directory, no_std=False, keep_popen=False, max_file_descriptors=None, max_size=None,
         max_files=None, clean=False):
    """Make ``directory`` the root of the virtual file system and set its limits.

    ``directory`` is created if missing. ``no_std`` sets the module's ``stdin``, ``stdout`` and
    ``stderr`` to None (and ``read``/``write`` then raise Restricted); ``keep_popen`` keeps
    :func:`popen` (refused otherwise); ``max_file_descriptors``, ``max_size`` (bytes, total) and
    ``max_files`` are limits, None meaning unlimited; ``clean`` deletes everything already in the
    directory. Files already there count against the limits. Calling init again starts over
    (files opened before keep working but are no longer counted).

    In a job confined by :func:`splay.sandbox.confine`, the directory must lie inside the job
    directory and the limits cannot exceed the confinement's ``max_disk`` and ``max_files``.
    Returns True.
    """
    global _fs, stdin, stdout, stderr
    for label, value in (("max_file_descriptors", max_file_descriptors), ("max_size", max_size),
                         ("max_files", max_files)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"restricted_io.init: {label} must be a non-negative int or None, got {value!r}")
    if not directory:
        raise ValueError("restricted_io.init: directory is mandatory (the root of the virtual file system)")
    directory = os.path.realpath(os.fsdecode(directory))
    confinement = _ceilings()
    if confinement is not None:
        job_dir = confinement["directory"]
        if os.path.commonpath([directory, job_dir]) != job_dir:
            raise Restricted(f"restricted_io.init refused: {directory} is outside the job directory {job_dir}")
        max_size = _capped(max_size, confinement["max_disk"])
        max_file_descriptors = _capped(max_file_descriptors, confinement["max_files"])
    os.makedirs(directory, exist_ok=True)
    if clean:
        with os.scandir(directory) as listing:
            for item in listing:
                if item.is_dir(follow_symlinks=False):
                    shutil.rmtree(item.path)
                else:
                    os.unlink(item.path)
    _fs = _FileSystem(directory, max_file_descriptors, max_size, max_files, keep_popen)
    stdin, stdout, stderr = (None, None, None) if no_std else (sys.stdin, sys.stdout, sys.stderr)
    return True


class _QuotaRaw(_io.RawIOBase):
    """The unbuffered file under every restricted file object: counts descriptors and bytes."""

    def __init__(self, fs, entry, fd, name, mode, readable, writable, append):
        super().__init__()
        self._fs = fs
        self._entry = entry
        self._fd = fd
        self._readable = readable
        self._writable = writable
        self._append = append
        self.name = name
        self.mode = mode

    def readable(self):
        return self._readable

    def writable(self):
        return self._writable

    def seekable(self):
        return True

    def fileno(self):
        self._checkClosed()
        return self._fd

    def readinto(self, buffer):
        self._checkClosed()
        if not self._readable:
            raise _io.UnsupportedOperation("restricted_io: file not open for reading")
        data = os.read(self._fd, len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data):
        self._checkClosed()
        if not self._writable:
            raise _io.UnsupportedOperation("restricted_io: file not open for writing")
        data = memoryview(data).cast("B")
        fs, entry = self._fs, self._entry
        with fs.lock:
            start = entry.size if self._append else os.lseek(self._fd, 0, os.SEEK_CUR)
            fs.check_growth(entry, max(entry.size, start + len(data)), f"writing {len(data)} bytes to {self.name!r}")
            written = os.write(self._fd, data)
            fs.resize(entry, os.fstat(self._fd).st_size)
        return written

    def seek(self, offset, whence=os.SEEK_SET):
        self._checkClosed()
        return os.lseek(self._fd, offset, whence)

    def tell(self):
        self._checkClosed()
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def truncate(self, size=None):
        self._checkClosed()
        if not self._writable:
            raise _io.UnsupportedOperation("restricted_io: file not open for writing")
        if size is None:
            size = self.tell()
        fs, entry = self._fs, self._entry
        with fs.lock:
            fs.check_growth(entry, size, f"truncating {self.name!r} to {size} bytes")
            os.ftruncate(self._fd, size)
            fs.resize(entry, os.fstat(self._fd).st_size)
        return size

    def close(self):
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                self._fs.release(self._entry)
                super().close()


_MODE_CHARS = frozenset("rwaxb+t")


def _parse_mode(mode):
    """(os flags, readable, writable, append, creates, binary) for a Python open() mode."""
    if not isinstance(mode, str) or not mode or set(mode) - _MODE_CHARS or len(set(mode)) != len(mode):
        raise ValueError(f"restricted_io: invalid mode {mode!r}")
    kinds = [c for c in mode if c in "rwax"]
    if len(kinds) != 1 or ("b" in mode and "t" in mode):
        raise ValueError(f"restricted_io: invalid mode {mode!r} (exactly one of r, w, a, x)")
    kind, plus = kinds[0], "+" in mode
    flags = {"r": 0, "w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND,
             "x": os.O_CREAT | os.O_EXCL}[kind]
    readable, writable = kind == "r" or plus, kind != "r" or plus
    flags |= os.O_RDWR if readable and writable else (os.O_WRONLY if writable else os.O_RDONLY)
    return flags | os.O_CLOEXEC | os.O_NOFOLLOW, readable, writable, kind == "a", kind != "r", "b" in mode


def open(name, mode="r", buffering=-1, encoding=None, errors=None, newline=None):
    """Open virtual file ``name``; like Python's ``open`` (same modes and file objects).

    Text mode defaults to UTF-8 (not the host's locale). ``buffering=0`` is allowed in binary
    mode. Raises Restricted when a descriptor or a new file would pass ``max_file_descriptors``
    or ``max_files``; writes that would pass ``max_size`` raise Restricted and write nothing.
    """
    flags, readable, writable, append, creates, binary = _parse_mode(mode)
    if buffering == 0 and not binary:
        raise ValueError("restricted_io: unbuffered (buffering=0) is only for binary mode")
    fs = _state()
    key = _key(name)
    path = os.path.join(fs.directory, key)
    with fs.lock:
        if fs.max_file_descriptors is not None and fs.open_descriptors >= fs.max_file_descriptors:
            raise Restricted(f"restricted_io: open({name!r}) refused: {fs.open_descriptors} files already "
                             f"open, the limit max_file_descriptors={fs.max_file_descriptors} (close some)")
        entry = fs.entries.get(key)
        if entry is None and creates and fs.max_files is not None and len(fs.entries) >= fs.max_files:
            raise Restricted(f"restricted_io: creating {name!r} refused: {len(fs.entries)} files exist, "
                             f"the limit max_files={fs.max_files} (remove some)")
        fd = os.open(path, flags, 0o600)
        if entry is None:
            entry = fs.entries[key] = _Entry(key, 0)
        entry.open_count += 1
        fs.open_descriptors += 1
        fs.resize(entry, os.fstat(fd).st_size)
    raw = _QuotaRaw(fs, entry, fd, name, mode, readable, writable, append)
    try:
        return _wrap(raw, mode, buffering, binary, readable, writable, encoding, errors, newline)
    except BaseException:
        raw.close()
        raise


def _wrap(raw, mode, buffering, binary, readable, writable, encoding, errors, newline):
    """Put Python's usual buffer and text layers over ``raw``."""
    if buffering == 0:
        return raw
    line_buffering = buffering == 1 and not binary
    size = _io.DEFAULT_BUFFER_SIZE if buffering in (-1, 1) else buffering
    if readable and writable:
        buffered = _io.BufferedRandom(raw, size)
    elif writable:
        buffered = _io.BufferedWriter(raw, size)
    else:
        buffered = _io.BufferedReader(raw, size)
    if binary:
        return buffered
    text = _io.TextIOWrapper(buffered, encoding or "utf-8", errors, newline, line_buffering)
    text.mode = mode
    return text


def close(file=None):
    """Close ``file`` (the module's stdout when omitted, as Lua's ``io.close()``). Returns True."""
    (file if file is not None else stdout).close()
    return True


def lines(name):
    """Iterate over the lines of virtual file ``name`` (text, newline kept), closing it at the end."""
    with open(name) as f:
        yield from f


def type(obj):
    """``"file"``, ``"closed file"`` or None, like Lua's ``io.type``."""
    if isinstance(obj, _io.IOBase):
        return "closed file" if obj.closed else "file"
    return None


def tmpfile():
    """A new anonymous file opened ``"w+b"``; it is counted while open and vanishes when closed."""
    fs = _state()
    with fs.lock:
        fs.temp_counter += 1
        name = f"/.tmpfile/{os.getpid()}/{fs.temp_counter}"
    f = open(name, "w+b")
    remove(name)
    return f


def remove(name):
    """Delete virtual file ``name`` (``FileNotFoundError`` if missing); its bytes are freed. Returns True."""
    fs = _state()
    key = _key(name)
    with fs.lock:
        os.unlink(os.path.join(fs.directory, key))
        entry = fs.entries.get(key)
        if entry is not None:
            fs.unlink(entry)
    return True


def rename(old, new):
    """Rename virtual file ``old`` to ``new``, replacing ``new`` if it exists. Returns True."""
    fs = _state()
    old_key, new_key = _key(old), _key(new)
    if old_key == new_key:
        if old_key not in fs.entries:
            raise FileNotFoundError(f"restricted_io: no file {old!r}")
        return True
    with fs.lock:
        os.replace(os.path.join(fs.directory, old_key), os.path.join(fs.directory, new_key))
        replaced = fs.entries.get(new_key)
        if replaced is not None:
            fs.unlink(replaced)
        entry = fs.entries.pop(old_key, None)
        if entry is None:   # created behind the module's back: start counting it now
            entry = _Entry(old_key, os.stat(os.path.join(fs.directory, new_key)).st_size)
            fs.total_size += entry.size
        entry.key = new_key
        fs.entries[new_key] = entry
    return True


def exists(name):
    """True when virtual file ``name`` exists."""
    return _key(name) in _state().entries


def real_path(name):
    """The real path of virtual file ``name`` inside the directory (for tools and debugging)."""
    return os.path.join(_state().directory, _key(name))


def popen(command, mode="r"):
    """Run a shell command (``os.popen``) only when init(keep_popen=True); refused otherwise.

    A confined job (splay.sandbox) cannot start processes even with keep_popen.
    """
    if not _state().keep_popen:
        raise Restricted("restricted_io: popen refused (init(keep_popen=True) allows it outside a sandbox)")
    return os.popen(command, mode)


def write(*values):
    """Write ``values`` (str) to the module's stdout, like Lua's ``io.write``. Returns True."""
    if stdout is None:
        raise Restricted("restricted_io: write refused: standard streams are disabled (no_std=True)")
    for value in values:
        stdout.write(str(value))
    return True


def read(size=-1):
    """Read ``size`` characters from the module's stdin (everything when -1), like ``io.read``."""
    if stdin is None:
        raise Restricted("restricted_io: read refused: standard streams are disabled (no_std=True)")
    return stdin.read(size)


def limits():
    """``(max_file_descriptors, max_size, max_files)``; None for an unlimited one."""
    fs = _state()
    return fs.max_file_descriptors, fs.max_size, fs.max_files


def stats():
    """``(open_descriptors, total_size, files)``: current usage."""
    fs = _state()
    with fs.lock:
        return fs.open_descriptors, fs.total_size, len(fs.entries)


def infos():
    """A human-readable line of limits and usage."""
    fs = _state()
    descriptors, size, files = stats()

    def show(used, limit):
        return f"{used}/{'unlimited' if limit is None else limit}"

    return (f"restricted_io {fs.directory}: descriptors {show(descriptors, fs.max_file_descriptors)}, "
            f"bytes {show(size, fs.max_size)}, files {show(files, fs.max_files)}")

"""An application's files: what ``splay run`` runs and what ``splay submit`` ships.

An application is given as one of:

- **a Python file** ``app.py``: the file, plus the modules beside it that it imports (directly or
  through each other), as ``python app.py`` would find them: ``examples/chord.py`` imports
  ``checkers`` from ``examples/checkers.py``, so both are shipped. Modules found elsewhere
  (the standard library, ``splay``, installed packages) are not shipped;
- **a directory** holding ``__main__.py``: every file under it is shipped (but ``__pycache__``
  and hidden entries), and ``__main__.py`` is run with the directory first on the import path,
  as ``python DIR`` does;
- **a zip archive** holding ``__main__.py`` at its top: the same, from the archive.

On the nodes the files are unpacked into one directory, which is first on the import path, and
the main file runs as ``__main__``. A sandboxed node may read this directory (its job's own
copy) and nothing else of the host's files. The total size is limited to :data:`MAX_APP_BYTES`.
"""
import ast
import base64
import io
import os
import zipfile

MAX_APP_BYTES = 8 * 1024 * 1024      # the files, uncompressed (the controller stores them)
MAX_APP_FILES = 2000
MAIN = "__main__.py"


class AppError(ValueError):
    """The application cannot be read or shipped; the message says what is wrong and what to do."""


class App:
    """An application: ``files`` maps each path relative to the application's root (``/``
    separated) to its bytes; ``main`` is the path of the file run as ``__main__``."""

    def __init__(self, files, main, origin):
        self.files, self.main, self.origin = files, main, origin

    @property
    def size(self):
        """Total size of the files in bytes."""
        return sum(len(data) for data in self.files.values())

    def main_source(self):
        """The main file's text (what the controller checks for syntax errors)."""
        try:
            return self.files[self.main].decode("utf-8")
        except UnicodeDecodeError:
            raise AppError(f"{self.origin}: {self.main} is not UTF-8 text") from None

    def archive(self):
        """The files as a zip archive (bytes)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(self.files):
                z.writestr(name, self.files[name])
        return buffer.getvalue()

    def encoded(self):
        """The archive in base64 text (the ``bundle`` field of a job submission)."""
        return base64.b64encode(self.archive()).decode("ascii")


def _check_size(files, origin):
    if len(files) > MAX_APP_FILES:
        raise AppError(f"{origin}: {len(files)} files, more than the {MAX_APP_FILES} an "
                       "application may have; ship only the application's own files")
    size = sum(len(data) for data in files.values())
    if size > MAX_APP_BYTES:
        biggest = max(files, key=lambda name: len(files[name]))
        raise AppError(f"{origin}: {size} bytes of files, more than the {MAX_APP_BYTES} an "
                       f"application may have (the biggest is {biggest}, {len(files[biggest])} "
                       "bytes); leave data files out and let the nodes fetch or generate them")


def _imported_names(source, path):
    """Top-level names of the modules ``source`` imports anywhere (absolute imports only); none
    when it does not parse."""
    try:
        tree = ast.parse(source, path)
    except (SyntaxError, ValueError):
        return set()       # shipped as it is: the node (or the controller) reports the error
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _tree_files(directory, prefix=""):
    """Every file under ``directory`` (but ``__pycache__`` and hidden entries), relative names."""
    files = {}
    for parent, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            with open(path, "rb") as f:
                files[prefix + relative] = f.read()
            if len(files) > MAX_APP_FILES:
                _check_size(files, directory)
    return files


def _from_file(path):
    """The file and the sibling modules it imports, transitively."""
    directory, main = os.path.split(path)
    files, pending = {}, [main]
    while pending:
        name = pending.pop()
        if name in files:
            continue
        with open(os.path.join(directory, name), "rb") as f:
            files[name] = f.read()
        if not name.endswith(".py"):
            continue
        for module in _imported_names(files[name], os.path.join(directory, name)):
            if os.path.isfile(os.path.join(directory, module + ".py")):
                pending.append(module + ".py")
            elif os.path.isfile(os.path.join(directory, module, "__init__.py")):
                for relative, data in _tree_files(os.path.join(directory, module), module + "/").items():
                    files.setdefault(relative, data)
                    if relative.endswith(".py"):
                        pending.append(relative)
    return App(files, main, path)


def _from_zip(path):
    try:
        with zipfile.ZipFile(path) as z:
            entries = [i for i in z.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in entries)
            if len(entries) > MAX_APP_FILES or total > MAX_APP_BYTES:
                raise AppError(f"{path}: {len(entries)} files of {total} bytes once unpacked, "
                               f"more than the {MAX_APP_FILES} files or {MAX_APP_BYTES} bytes an "
                               "application may have")
            files = {i.filename: z.read(i) for i in entries}
    except zipfile.BadZipFile as e:
        raise AppError(f"{path} is not a zip archive ({e}): give a .py file, a directory or a zip "
                       "archive with __main__.py at its top") from None
    return App(files, MAIN, path)


def load(path):
    """The :class:`App` at ``path`` (a ``.py`` file, a directory or a zip archive, see the module
    documentation); :class:`AppError` says what is wrong."""
    if not os.path.exists(path):
        raise AppError(f"application file or directory {path!r} not found: give a .py file, "
                       "a directory with __main__.py or a zip archive with __main__.py")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, MAIN)):
            raise AppError(f"directory {path!r} has no __main__.py: add one (it is what each "
                           "node runs) or give the application's main .py file instead")
        app = App(_tree_files(path), MAIN, path)
    elif zipfile.is_zipfile(path):
        app = _from_zip(path)
    else:
        app = _from_file(path)
    if app.main not in app.files:
        raise AppError(f"{path!r} has no __main__.py at its top: add one (it is what each node runs)")
    _check_size(app.files, path)
    return app


def _safe_name(name):
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise AppError(f"the application archive holds an unsafe path {name!r}")
    return os.path.join(*parts)


def decode(encoded, main):
    """The :class:`App` of a submission's ``bundle`` (base64 zip) and ``main``; AppError when
    it is not valid (bad encoding, too big, unsafe paths, no main file)."""
    if not isinstance(encoded, str) or not isinstance(main, str):
        raise AppError("'bundle' (a base64 zip archive) and 'main' (the path of the file each "
                       "node runs) must both be strings")
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise AppError("'bundle' is not valid base64") from None
    if len(data) > MAX_APP_BYTES:
        raise AppError(f"'bundle' is {len(data)} bytes, more than the {MAX_APP_BYTES} an "
                       "application may have")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            entries = [i for i in z.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in entries)
            if len(entries) > MAX_APP_FILES or total > MAX_APP_BYTES:
                raise AppError(f"'bundle' holds {len(entries)} files of {total} bytes, more than "
                               f"the {MAX_APP_FILES} files or {MAX_APP_BYTES} bytes an "
                               "application may have")
            files = {}
            for info in entries:
                _safe_name(info.filename)
                files[info.filename] = z.read(info)
    except zipfile.BadZipFile as e:
        raise AppError(f"'bundle' is not a zip archive ({e})") from None
    if main not in files:
        raise AppError(f"'main' {main!r} is not a file of the bundle")
    return App(files, main, "the submitted bundle")


def unpack(app, directory):
    """Write ``app``'s files under ``directory`` (created); returns the main file's path."""
    for name, data in app.files.items():
        path = os.path.join(directory, _safe_name(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return os.path.join(directory, _safe_name(app.main))

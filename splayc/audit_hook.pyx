# The confined job's audit hook (PEP 578), compiled: the decision lives in C-level fields.
#
# A hook written in Python keeps its tables in closures and dicts; a refused action raises an
# exception whose traceback holds the hook's frame, and from there its locals, closure cells and
# bound methods (``dict.get.__self__``) can be cleared by the job, which switches the hook off.
# Here the hook is an instance of a cdef class: its settings are C fields of the instance, which
# Python code cannot read or write (no __dict__, no attributes declared public), it runs no
# Python frame of its own (Cython functions push none), and the frames Cython adds to a
# traceback carry no locals. The only Python-visible names are this module's classes and
# functions; rebinding them changes nothing for a hook that already exists, which reads no module
# global when it runs.
#
# The policy (which events, which paths, which modules) is built by splay.sandbox.audit and
# handed over once, at construction; see that module for what is refused and why.
from libc.errno cimport errno
from libc.string cimport strerror
from libc.stdint cimport int64_t
from posix.fcntl cimport O_RDONLY, O_DIRECTORY, O_CLOEXEC, O_WRONLY, O_RDWR, O_ACCMODE
from posix.fcntl cimport openat, fcntl, F_GETFL
from posix.unistd cimport close, dup
from posix.stat cimport struct_stat, fstat, fstatat, S_ISDIR, S_ISREG
from posix.resource cimport rlimit, getrlimit, setrlimit, RLIMIT_FSIZE, rlim_t
from cpython.ref cimport PyObject, Py_DECREF

cdef extern from "Python.h":
    ctypedef struct PyFrameObject
    ctypedef struct PyCodeObject
    PyFrameObject *PyEval_GetFrame()
    PyFrameObject *PyFrame_GetBack(PyFrameObject *frame)
    PyCodeObject *PyFrame_GetCode(PyFrameObject *frame)

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR
    struct dirent:
        char d_name[256]
    DIR *fdopendir(int fd)
    dirent *readdir(DIR *dirp)
    int closedir(DIR *dirp)
    void rewinddir(DIR *dirp)

cdef extern from "<fcntl.h>":
    int AT_SYMLINK_NOFOLLOW
    int AT_FDCWD
    int O_NOFOLLOW

# Every file, directory and link of the job directory counts at least one block of this size.
cdef enum:
    BLOCK = 4096

_AF_UNIX = 1
_PYCF_ONLY_AST = 0x400

# One hook per process, made by confine() before the job runs: a job building its own instance
# could otherwise call it to recompute the disk accounting under a limit of its choosing.
cdef bint _hook_made = False


cdef object _frame_code(PyFrameObject *frame):
    """The code object of ``frame`` (no audit event, unlike ``frame.f_code``)."""
    cdef PyCodeObject *code = PyFrame_GetCode(frame)      # a new reference
    result = <object><PyObject *>code                     # one more, owned by result
    Py_DECREF(result)
    return result


cdef class AuditHook:
    """The audit hook of one confinement: ``hook(event, args)`` raises to refuse, returns to allow.

    Built once by :func:`splay.sandbox.audit.make_hook` from the confinement's settings; every
    table is copied into C fields here, so nothing the job can reach changes what it decides.
    Only one may be made per process (a second one raises ``restricted``).
    """
    cdef str directory
    cdef tuple write_roots, read_roots, code_roots
    cdef frozenset job_code_paths, code_files, generators, denied_imports, denied_native
    cdef frozenset pickle_allowed, read_path_events, unix_address_events, trusted_frame_callers
    cdef dict write_path_events, refusals, kinds
    cdef tuple ast_parse, path_like
    cdef object restricted, file_restricted, sha256, open_file, lstat, readlink, getcwd, fspath
    cdef object is_link, error_os, error_value
    cdef str fs_encoding, default_why
    cdef long own_pid
    cdef int write_flags
    cdef object max_disk
    cdef int64_t disk_limit
    cdef int proc_fd
    cdef object proc_fd_identity
    cdef object dev_job

    def __init__(self, directory, *, read_roots, code_roots, code_files, generators, ast_parse,
                 denied_imports, denied_native, pickle_allowed, refused_events, refused_why,
                 default_why, read_path_events, write_path_events, unix_address_events, write_flags,
                 own_pid, path_like, restricted, file_restricted, sha256, open_file, lstat, readlink,
                 getcwd, fspath, is_link, fs_encoding, max_disk=None):
        cdef struct_stat st
        global _hook_made
        if _hook_made:
            raise restricted("sandbox refused making another audit hook: this process has its hook already")
        _hook_made = True
        self.directory = str(directory)
        self.write_roots = (self.directory,)
        self.read_roots = tuple(read_roots)
        self.code_roots = tuple(code_roots)
        self.code_files = frozenset(code_files)
        self.job_code_paths = frozenset(path for path, _ in self.code_files)
        self.generators = frozenset(generators)
        self.ast_parse = tuple(ast_parse)
        self.denied_imports = frozenset(denied_imports)
        self.denied_native = frozenset(denied_native)
        self.pickle_allowed = frozenset(pickle_allowed)
        self.refusals = {event: (str(action), str(refused_why.get(event, default_why)))
                         for event, action in refused_events.items()}
        self.default_why = str(default_why)
        self.read_path_events = frozenset(read_path_events)
        self.write_path_events = {str(event): tuple(positions) for event, positions in write_path_events.items()}
        self.unix_address_events = frozenset(unix_address_events)
        self.write_flags = write_flags
        self.own_pid = own_pid
        self.path_like = tuple(path_like)
        self.restricted, self.file_restricted = restricted, file_restricted
        self.sha256, self.open_file, self.lstat, self.readlink = sha256, open_file, lstat, readlink
        self.getcwd, self.fspath, self.is_link = getcwd, fspath, is_link
        self.error_os, self.error_value = OSError, ValueError
        self.fs_encoding = str(fs_encoding)
        self.max_disk = max_disk
        self.disk_limit = -1 if max_disk is None else max_disk
        self.proc_fd = -1
        self.proc_fd_identity = None
        self.dev_job = None
        if max_disk is not None:
            # Kept open from before the kernel walls: the list of this process's descriptors,
            # to find the files open for writing (Landlock checks paths at open time only).
            self.proc_fd = openat(AT_FDCWD, b"/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if self.proc_fd < 0 or fstat(self.proc_fd, &st) != 0:
                raise OSError(errno, "the disk accounting cannot open /proc/self/fd")
            self.proc_fd_identity = (st.st_dev, st.st_ino)
            if fstatat(AT_FDCWD, self.directory.encode(), &st, 0) != 0:
                raise OSError(errno, f"cannot stat the job directory {self.directory}")
            self.dev_job = st.st_dev
        # Which check each event gets: one dict lookup for the many events the hook ignores.
        kinds = {"open": 1, "compile": 2, "marshal.loads": 3, "import": 4, "pickle.find_class": 5,
                 "socket.__new__": 6, "os.kill": 7, "sys._getframe": 10, "object.__getattr__": 11,
                 "sys.settrace": 12, "sys.setprofile": 12}
        for event in self.unix_address_events:
            kinds[event] = 8
        for event in self.read_path_events:
            kinds[event] = 9
        for event in self.write_path_events:
            kinds[event] = 13
        for event in self.refusals:
            kinds[event] = 14
        self.kinds = kinds

    # ---- refusals ----

    cdef int refuse(self, str action, str why) except -1:
        raise self.restricted(f"sandbox refused {action}: {why}")

    cdef int refuse_path(self, str action, path, str why) except -1:
        raise self.file_restricted(f"sandbox refused {action} {path!r}: {why}", path)

    # ---- paths ----

    cdef str as_text(self, path):
        """The exact ``str`` of a path argument (str, bytes or a pathlib path; nothing else)."""
        if not isinstance(path, (str, bytes)):
            if type(path) not in self.path_like:     # a job's own os.PathLike could answer differently twice
                self.refuse(f"using the path object {type(path).__name__}", "paths must be str, bytes or pathlib paths")
            path = self.fspath(path)
        if isinstance(path, bytes):
            return bytes.decode(path, self.fs_encoding, "surrogateescape")
        return str.__add__("", path)

    cdef str resolve(self, path):
        """Absolute path of ``path`` with every symbolic link followed (like os.path.realpath)."""
        cdef str full = self.as_text(path)
        cdef str resolved = "", name, candidate, target
        cdef list pending, more
        cdef int links = 0
        if not full.startswith("/"):
            full = str.__add__(self.getcwd() + "/", full)
        pending = full.split("/")
        pending.reverse()
        while pending:
            name = pending.pop()
            if name == "" or name == ".":
                continue
            if name == "..":
                resolved = resolved.rpartition("/")[0]
                continue
            candidate = resolved + "/" + name
            try:
                mode = self.lstat(candidate).st_mode
            except OSError:
                resolved = candidate
                continue
            if not self.is_link(mode):
                resolved = candidate
                continue
            links += 1
            if links > 40:
                self.refuse_path("resolving", full, "too many levels of symbolic links")
            try:
                target = str.__add__("", self.readlink(candidate))
            except OSError:             # a link the kernel will not show (/proc/N/exe of another user)
                resolved = candidate
                continue
            if target.startswith("/"):
                resolved = ""
            more = target.split("/")
            more.reverse()
            pending.extend(more)
        return resolved or "/"

    cdef bint inside(self, str path, tuple roots):
        cdef str root
        for root in roots:
            if path == root or path.startswith(root + "/") or root == "/":
                return True
        return False

    cdef object read_file(self, str path):
        try:
            with self.open_file(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    cdef bint trusted_code_file(self, filename):
        if not isinstance(filename, str):
            return False
        filename = str.__add__("", filename)
        return self.inside(filename, self.code_roots) or filename.startswith("<frozen ")

    cdef object caller(self):
        """(filename, name, frame) of the innermost Python frame: the code that caused the event."""
        cdef PyFrameObject *frame = PyEval_GetFrame()
        if frame is NULL:
            return None
        code = _frame_code(frame)
        return (code.co_filename, code.co_name, <object><PyObject *>frame)

    # ---- disk accounting ----

    cdef int64_t usage_of_tree(self, int dirfd, set seen) except -2:
        """Bytes charged for everything under the open directory ``dirfd`` (closed here)."""
        cdef DIR *listing = fdopendir(dirfd)
        cdef dirent *entry
        cdef struct_stat st
        cdef int64_t total = 0, charge
        cdef int child
        if listing is NULL:
            close(dirfd)
            return 0
        try:
            while True:
                entry = readdir(listing)
                if entry is NULL:
                    break
                if entry.d_name[0] == b'.' and (entry.d_name[1] == 0 or (entry.d_name[1] == b'.' and entry.d_name[2] == 0)):
                    continue
                if fstatat(dirfd, entry.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0:
                    continue
                if st.st_nlink > 1 and not S_ISDIR(st.st_mode):
                    if st.st_ino in seen:
                        continue            # a hard link to a file already counted
                    seen.add(st.st_ino)
                charge = max(<int64_t>st.st_size, <int64_t>st.st_blocks * 512, BLOCK)
                total += charge
                if S_ISDIR(st.st_mode):
                    child = openat(dirfd, entry.d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if child < 0:       # fail closed: an uncounted subtree could hold anything
                        self.refuse_path("writing", self.directory,
                                         f"the job directory cannot be accounted for max_disk "
                                         f"(a directory cannot be opened: {strerror(errno).decode()}; "
                                         f"too deep for the descriptor limit?)")
                    total += self.usage_of_tree(child, seen)
        finally:
            closedir(listing)
        return total

    cdef list open_writers(self):
        """Sizes of the regular files of the job's file system this process holds open for writing."""
        cdef struct_stat st
        cdef int listing_fd, fd, flags
        cdef DIR *listing
        cdef dirent *entry
        cdef list sizes = []
        if fstat(self.proc_fd, &st) != 0 or (st.st_dev, st.st_ino) != self.proc_fd_identity:
            self.refuse("writing", "the sandbox's descriptor for /proc/self/fd was closed; the job "
                                   "directory cannot be accounted any more")
        listing_fd = dup(self.proc_fd)
        listing = fdopendir(listing_fd)
        if listing is NULL:
            close(listing_fd)
            self.refuse("writing", "the sandbox cannot list this process's descriptors")
        try:
            rewinddir(listing)
            while True:
                entry = readdir(listing)
                if entry is NULL:
                    break
                if entry.d_name[0] < b'0' or entry.d_name[0] > b'9':
                    continue
                fd = int(entry.d_name.decode())
                if fd == listing_fd or fd == self.proc_fd:
                    continue
                flags = fcntl(fd, F_GETFL)
                if flags < 0 or (flags & O_ACCMODE) not in (O_WRONLY, O_RDWR):
                    continue
                if fstat(fd, &st) != 0 or not S_ISREG(st.st_mode) or st.st_dev != self.dev_job:
                    continue
                sizes.append((<int64_t>st.st_size, st.st_nlink == 0))
        finally:
            closedir(listing)
        return sizes

    cdef object account_disk(self, int new_entries=0, object new_writer_size=None):
        """Check ``max_disk`` and set the per-file size limit so that open writers cannot pass it.

        Usage is everything under the job directory (each file, directory and link charged its
        size, at least one 4 KiB block) plus files removed but still open. ``new_entries`` more
        entries are about to be created (refused when they do not fit) and ``new_writer_size``
        is the size of a file about to be opened for writing. Writes raise no audit event, so
        the soft RLIMIT_FSIZE (the largest offset any write may reach) is lowered until the
        files open for writing, together, can only fill what is left. Returns the bytes used.
        """
        cdef rlimit limit
        cdef int64_t used, room, level, previous, hard
        cdef int count
        if self.disk_limit < 0:
            return 0
        fd = openat(AT_FDCWD, self.directory.encode(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0:
            return 0
        used = self.usage_of_tree(fd, set())
        writers = self.open_writers()
        for size, removed in writers:
            if removed:
                used += max(<int64_t>size, BLOCK)
        if new_entries and used + new_entries * BLOCK > self.disk_limit:
            self.refuse_path("creating", self.directory,
                             f"the job directory holds its limit max_disk={self.max_disk} bytes")
        if new_writer_size is not None and used >= self.disk_limit:
            self.refuse_path("writing", self.directory,
                             f"the job directory holds its limit max_disk={self.max_disk} bytes")
        used += new_entries * BLOCK
        sizes = sorted([size for size, _ in writers] + ([] if new_writer_size is None else [new_writer_size]))
        room = self.disk_limit - used
        # Water-filling: the highest offset L with sum(max(0, L - size)) <= room.
        level, previous, count = 0, 0, 0
        if sizes:
            level = sizes[0]
            for size in sizes:
                if (size - level) * count > room:
                    break
                room -= (size - level) * count
                level = size
                count += 1
            level += room // count if count else 0
        else:
            level = self.disk_limit
        getrlimit(RLIMIT_FSIZE, &limit)
        hard = <int64_t>limit.rlim_max
        limit.rlim_cur = <rlim_t>max(0, min(level, hard, self.disk_limit))
        setrlimit(RLIMIT_FSIZE, &limit)
        return used

    # ---- the checks, by event ----

    cdef check_compile(self, args):
        source, filename = args[:2]
        caller = self.caller()
        if caller is not None and (caller[0], caller[1]) in self.generators:
            return
        if caller is not None and (caller[0], caller[1]) == self.ast_parse:
            flags = caller[2].f_locals.get("flags", 0)
            if isinstance(flags, int) and int.__and__(flags, _PYCF_ONLY_AST):
                return              # a syntax tree, not code (checked: the module global is mutable)
        trusted_caller = caller is None or self.trusted_code_file(caller[0])
        if self.file_source_matches(filename, source, trusted_caller):
            return
        self.refuse(f"compiling new code ({filename!r})",
                    "a job runs only the code it was deployed with (no exec, eval or compile)")

    cdef bint file_source_matches(self, filename, source, bint allow_piece):
        """``source`` is the content (or, with allow_piece, a piece) of a trusted code file."""
        if not isinstance(filename, (str, bytes)) or not isinstance(source, (str, bytes)):
            return False
        path = self.resolve(filename)
        trusted_root = self.inside(path, self.code_roots)
        if not trusted_root and path not in self.job_code_paths:
            return False
        content = self.read_file(path)
        if content is None:
            return False
        if not trusted_root and (path, self.sha256(content).hexdigest()) not in self.code_files:
            return False            # a job file changed since confinement: new code
        source = str.encode(source, "utf-8", "surrogateescape") if isinstance(source, str) else bytes(source)
        return source == content or (allow_piece and len(source) > 0 and bytes.__contains__(content, source))

    cdef check_marshal(self, args):
        caller = self.caller()
        if caller is not None and caller[1] == "_compile_bytecode" and isinstance(caller[0], str) \
                and str.startswith(caller[0], "<frozen importlib"):
            bytecode_path = caller[2].f_locals.get("bytecode_path")
            if isinstance(bytecode_path, str):
                path = self.resolve(bytecode_path)
                cached = self.read_file(path) or b""
                deployed = (path, self.sha256(cached).hexdigest()) in self.code_files
                if (deployed or self.inside(path, self.code_roots)) and cached[16:] == bytes(args[0]):
                    return
        self.refuse("loading marshalled code (marshal.loads)",
                    "only the bytecode cache of trusted modules and of the job as deployed may be loaded")

    cdef check_open(self, args):
        path, mode, flags = args[:3]
        if path is None or isinstance(path, int):
            return                  # an already open descriptor (os.fdopen, open(fd))
        target = self.resolve(path)
        if isinstance(mode, str):
            mode = str.__add__("", mode)
            writing = "w" in mode or "a" in mode or "x" in mode or "+" in mode
        else:
            writing = isinstance(flags, int) and int.__and__(flags, self.write_flags) != 0
        if writing:
            if not self.inside(target, self.write_roots):
                self.refuse_path("writing", target, f"a job writes only inside its directory {self.directory}")
            if self.disk_limit >= 0:
                try:
                    size = self.lstat(target).st_size
                    new = 0
                except OSError:
                    size, new = 0, 1
                self.account_disk(new, size)
        elif not self.inside(target, self.read_roots):
            self.refuse_path("reading", target, f"a job reads only inside its directory {self.directory}")

    cdef check_import(self, args):
        name = str.__add__("", args[0]) if isinstance(args[0], str) else ""
        if name == "posix":
            self.refuse("importing posix again", "its functions are guarded by the sandbox")
        if name.partition(".")[0] in self.denied_imports or name.rpartition(".")[2] in self.denied_native:
            self.refuse(f"importing {name}", "the module runs new code or reaches native memory")
        # An extension module (its file is the second argument) is native code: only trusted
        # directories may provide it, never a file the job could have written.
        if len(args) > 1 and isinstance(args[1], (str, bytes)):
            origin = self.resolve(args[1])
            if not self.inside(origin, self.code_roots):
                self.refuse(f"loading the native module {name} from {origin!r}",
                            "extension modules load only from the Python installation and pysplay's packages")

    cdef check_unpickle(self, args):
        module, name = args[:2]
        if not (isinstance(module, str) and isinstance(name, str)) \
                or (str.__add__("", module), str.__add__("", name)) not in self.pickle_allowed:
            self.refuse(f"unpickling the global {module}.{name}", "unpickled data may only contain plain data types")

    cdef check_new_socket(self, args):
        if not isinstance(args[1], int) or int.__add__(0, args[1]) != _AF_UNIX:
            self.refuse("creating a Python socket (use splay.socket, the restricted socket layer)",
                        "jobs reach the network only through the restricted socket layer")

    cdef check_unix_address(self, str event, args):
        address = args[1] if len(args) > 1 else None
        if isinstance(address, (str, bytes)):
            if address[:1] in ("\0", b"\0") or not self.inside(self.resolve(address), self.write_roots):
                self.refuse_path(f"using the unix socket ({event})", address,
                                 f"a job reaches unix sockets only inside its directory {self.directory}")

    cdef check_kill(self, args):
        if not isinstance(args[0], int) or int.__add__(0, args[0]) not in (self.own_pid, 0):
            self.refuse(f"signalling process {args[0]} (os.kill)", "a job may signal only itself")

    cdef check_listing(self, str event, args):
        path = args[0] if args else "."
        if path is not None and not isinstance(path, int):
            target = self.resolve(path)
            if not self.inside(target, self.read_roots):
                self.refuse_path(f"listing ({event})", target, f"a job reads only inside its directory {self.directory}")

    cdef check_change(self, str event, args):
        cdef int position
        for position in self.write_path_events[event]:
            if position < len(args) and isinstance(args[position], (str, bytes)):
                target = self.resolve(args[position])
                if not self.inside(target, self.write_roots):
                    self.refuse_path(f"changing ({event})", target,
                                     f"a job changes files only inside its directory {self.directory}")
        if self.disk_limit >= 0 and event in ("os.mkdir", "os.symlink", "os.link", "os.mkfifo", "os.mknod",
                                              "os.rename", "os.truncate"):
            self.account_disk(1 if event in ("os.mkdir", "os.symlink", "os.link", "os.mkfifo", "os.mknod") else 0)

    cdef check_frames(self, str event, args):
        """Frames are for the Python runtime and pysplay (tracebacks, logging), not for the job."""
        if event == "object.__getattr__" and not (len(args) > 1 and args[1] in ("tb_frame", "gi_frame", "cr_frame",
                                                                               "ag_frame")):
            return
        caller = self.caller()
        if caller is None or self.trusted_code_file(caller[0]):
            return
        what = "sys._getframe" if event == "sys._getframe" else f".{args[1]}"
        self.refuse(f"reaching a stack frame ({what})",
                    "a job may not walk or inspect the interpreter's frames (as the manual disables debug.*)")

    def __call__(self, event, args):
        """Refuse (raise) or allow (return None) one audit event."""
        kind = self.kinds.get(event)
        if kind is None:
            if str.startswith(event, "ctypes."):
                self.refuse(f"native call ({event})", "ctypes is not available in a confined job")
            if str.startswith(event, "splayc.syscalls."):
                self.refuse(f"a confinement system call ({event[16:]})",
                            "the kernel walls are set once, before the job starts")
            return
        if kind == 1:
            self.check_open(args)
        elif kind == 2:
            self.check_compile(args)
        elif kind == 3:
            self.check_marshal(args)
        elif kind == 4:
            self.check_import(args)
        elif kind == 5:
            self.check_unpickle(args)
        elif kind == 6:
            self.check_new_socket(args)
        elif kind == 7:
            self.check_kill(args)
        elif kind == 8:
            self.check_unix_address(event, args)
        elif kind == 9:
            self.check_listing(event, args)
        elif kind == 10 or kind == 11:
            self.check_frames(event, args)
        elif kind == 12:
            self.refuse(f"tracing the interpreter ({event})",
                        "a trace or profile function sees and rewrites every frame (as the manual disables debug.*)")
        elif kind == 13:
            self.check_change(event, args)
        else:
            action, why = self.refusals[event]
            self.refuse(action, why)


cdef class GuardedPathCall:
    """A file-metadata function (``os.stat``, ``os.access``...) that looks only where the job may read.

    These functions raise no audit event, so the sandbox replaces them, in ``os`` and ``posix``,
    by this wrapper: a path outside the readable paths is refused with the hook's file refusal (a
    ``PermissionError``, so ``os.path.exists`` answers False), a descriptor passes. The wrapped
    function is a C field: the job cannot take the original back from the wrapper.
    """
    cdef object call
    cdef AuditHook hook
    cdef str name

    def __init__(self, call, AuditHook hook, name):
        self.call, self.hook, self.name = call, hook, str(name)

    def __call__(self, *args, **kwargs):
        path = args[0] if args else kwargs.get("path")
        if path is not None and not isinstance(path, int):
            target = self.hook.as_text(path)
            dir_fd = kwargs.get("dir_fd")
            if dir_fd is not None and not target.startswith("/"):
                if not isinstance(dir_fd, int):
                    self.hook.refuse(f"{self.name} with dir_fd={dir_fd!r}", "dir_fd must be a descriptor")
                base = str.__add__("", self.hook.readlink(f"/proc/self/fd/{int.__add__(0, dir_fd)}"))
                target = base + "/" + target
            resolved = self.hook.resolve(target)
            if not self.hook.inside(resolved, self.hook.read_roots):
                self.hook.refuse_path(f"looking at ({self.name})", resolved,
                                      f"a job sees only its directory {self.hook.directory} and its readable paths")
        return self.call(*args, **kwargs)

    def __repr__(self):
        return f"<{self.name}, guarded by the sandbox>"


cdef class RefusedCall:
    """A function a confined job may not call (it raises no audit event): always refuses."""
    cdef AuditHook hook
    cdef str action, why

    def __init__(self, AuditHook hook, action, why):
        self.hook, self.action, self.why = hook, str(action), str(why)

    def __call__(self, *args, **kwargs):
        self.hook.refuse(self.action, self.why)

    def __repr__(self):
        return f"<refused by the sandbox: {self.action}>"


def guard_module_functions(AuditHook hook, modules, metadata_names, refused):
    """Replace, in each of ``modules``, the ``metadata_names`` functions by :class:`GuardedPathCall`
    and each ``refused`` name (``{name: (action, why)}``) by :class:`RefusedCall`. Irreversible
    for the job: re-importing ``posix`` (which would give the originals back) is refused by the hook.
    """
    originals = {}
    for module in modules:
        for name in metadata_names:
            original = getattr(module, name, None)
            if original is not None and not isinstance(original, GuardedPathCall):
                originals.setdefault(name, original)
    for module in modules:
        for name in metadata_names:
            if name in originals and hasattr(module, name):
                setattr(module, name, GuardedPathCall(originals[name], hook, name))
        for name, (action, why) in refused.items():
            if hasattr(module, name):
                setattr(module, name, RefusedCall(hook, action, why))

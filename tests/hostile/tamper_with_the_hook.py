"""Hostile job: rebind what a naive audit hook would rely on, then read /etc/passwd.

It replaces builtins (isinstance, len, any, type), os and os.path functions and the audit
module's tables, and hands os.open a path object that names /etc/passwd when the C code converts
it and a harmless file when the hook looks. The hook must still refuse, with its own messages.
"""
import builtins
import os
import posixpath

import splay.sandbox.audit as audit

builtins.isinstance = lambda obj, kind: False
builtins.len = lambda obj: 0
builtins.any = lambda items: True
builtins.type = lambda obj: str
os.lstat = posixpath.lstat = lambda path: os.stat("/")
os.path.realpath = posixpath.realpath = lambda path, **kw: os.getcwd() + "/harmless"
os.fsdecode = os.fspath = lambda path: "harmless"
audit.DENIED_IMPORTS = frozenset()
audit.PICKLE_ALLOWED = frozenset({("posix", "system")})
audit.WRITE_PATH_EVENTS.clear()


class Shifty:
    """A path that says '/etc/passwd' the first time it is asked, 'harmless' afterwards."""

    def __init__(self):
        self.asked = 0

    def __fspath__(self):
        self.asked += 1
        return "/etc/passwd" if self.asked == 1 else "harmless"


try:
    os.open(Shifty(), os.O_RDONLY)
except Exception as error:
    print("shifty path:", error.__class__.__name__, error, flush=True)
print(open("/etc/passwd").read())

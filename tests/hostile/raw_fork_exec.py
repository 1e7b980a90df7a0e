"""Hostile job: start a program with _posixsubprocess.fork_exec, which raises no audit event.

Only the kernel (the seccomp filter) stands in the way: the call fails with EPERM.
"""
import os

import _posixsubprocess

errpipe_read, errpipe_write = os.pipe()
pid = _posixsubprocess.fork_exec(
    [b"/bin/sh", b"-c", b"id > pwned.txt"], [b"/bin/sh"], True, (errpipe_write,), None, None,
    -1, -1, -1, -1, -1, -1, errpipe_read, errpipe_write, False, False, -1, None, None, -1, -1,
    None, False)
print("started process", pid)

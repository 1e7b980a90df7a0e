"""Hostile job: learn about files and processes outside the job without opening anything.

stat/exists/access reveal sizes, modes and existence (the daemon's key file, other jobs' files),
/proc/N lists the host's processes, re-importing posix would give back the unguarded functions,
an anonymous memfd holds memory max_memory does not count, and restricted_io's limits are
attributes a job could simply raise.
"""
import os
import pathlib
import sys

from splay import restricted_io

attempts = (
    ("stat /etc/passwd", lambda: os.stat("/etc/passwd").st_size),
    ("lstat /etc/shadow", lambda: os.lstat("/etc/shadow").st_mode),
    ("access /etc/passwd", lambda: os.access("/etc/passwd", os.R_OK)),
    ("exists /proc/1", lambda: os.path.exists("/proc/1")),
    ("pathlib exists /etc/passwd", lambda: pathlib.Path("/etc/passwd").exists()),
    ("getsize /etc/passwd", lambda: os.path.getsize("/etc/passwd")),
    ("readlink /proc/1/exe", lambda: os.readlink("/proc/1/exe")),
    ("memfd", lambda: os.memfd_create("hog")),
    ("re-import posix", lambda: (sys.modules.pop("posix"), __import__("posix"))[1].stat("/etc/passwd")),
)
for name, attempt in attempts:
    try:
        print(name, "->", attempt(), flush=True)
    except Exception as error:
        print(name, "refused:", str(error).split(":")[0], flush=True)
restricted_io.init(directory="fs", max_size=1 << 20)
print("own file:", os.path.exists("fs"), os.stat("fs").st_mode != 0, flush=True)
restricted_io._fs.max_size = None

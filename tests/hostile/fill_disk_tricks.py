"""Hostile job: pass max_disk with what a per-file limit does not see.

``writers``: open 64 files for writing while the directory is still empty, then fill them all
(each writer only ever passed the "is there room?" check once, at open). ``directories`` and
``symlinks``: create entries that hold no file bytes at all, by the hundred thousand. ``deep``:
nest directories deeper than the descriptors an accounting walk has, then fill the bottom.
"""
import os
import sys

trick = sys.argv[1]
if trick == "writers":
    writers = [open(f"early-{n}.bin", "wb", buffering=0) for n in range(64)]
    chunk = b"x" * 65536
    while True:
        for writer in writers:
            writer.write(chunk)
elif trick == "directories":
    for n in range(100_000):
        os.mkdir(f"d{n}")
elif trick == "symlinks":
    for n in range(100_000):
        os.symlink("x" * 200, f"l{n}")
elif trick == "deep":
    path = "d"
    for n in range(300):
        os.mkdir(path)
        path += "/d"
    with open(path + "-bottom.bin", "wb") as bottom:
        while True:
            bottom.write(b"x" * 65536)
print("ESCAPED: wrote everything")

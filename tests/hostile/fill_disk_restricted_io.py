"""Hostile job: fill restricted_io's virtual file system past its max_size."""
from splay import restricted_io as io

io.init(directory="fs", max_size=1 << 20)
with io.open("big.bin", "wb") as f:
    while True:
        f.write(b"x" * 65536)

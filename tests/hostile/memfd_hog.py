"""Hostile job: hold more than max_memory in a memfd, which is memory outside the address space."""
import os

fd = os.memfd_create("hog")
chunk = b"x" * (16 * 1024 * 1024)
for n in range(32):                     # 512 MiB, twice the job's limit
    os.write(fd, chunk)
print("ESCAPED: held", os.fstat(fd).st_size, "bytes in a memfd", flush=True)

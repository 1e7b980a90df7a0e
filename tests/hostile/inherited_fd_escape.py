"""Hostile job: read /etc/passwd through a directory descriptor it inherited (argv[1] is its number).

The audit hook sees only the relative name "passwd", which looks like a file of the job directory;
Landlock, which checks the real file, refuses it.
"""
import os
import sys

etc = int(sys.argv[1])
fd = os.open("passwd", os.O_RDONLY, dir_fd=etc)
print(os.read(fd, 100))

"""Hostile job: plant a symbolic link to /etc/passwd in its directory, then read through it."""
import os
os.symlink("/etc/passwd", "innocent.txt")
print(open("innocent.txt").read())

"""Hostile job: run a shell command."""
import os
os.system("id > pwned.txt")

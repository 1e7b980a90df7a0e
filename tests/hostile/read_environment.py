"""Hostile job: read the host's environment variables."""
import os
print(os.environ["HOME"])

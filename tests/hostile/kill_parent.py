"""Hostile job: kill the process that launched it."""
import os
import signal
os.kill(os.getppid(), signal.SIGKILL)

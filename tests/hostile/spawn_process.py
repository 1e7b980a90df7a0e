"""Hostile job: start a program through subprocess."""
import subprocess
print(subprocess.run(["id"], capture_output=True).stdout)

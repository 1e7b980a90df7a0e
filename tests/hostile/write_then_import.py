"""Hostile job: write new Python code into its directory, then import it."""
with open("freshly_written.py", "w") as f:
    f.write("print('new code ran')\n")
import freshly_written  # noqa: E402,F401

"""Hostile job: read the files that happen to sit beside the application (a home directory's keys).

The node runs an unpacked copy of the application, so the directory the user's file came from is
given as the first argument (an attacker can guess it: it is the launcher's working directory)."""
import os
import sys

here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.realpath(__file__))
for name in ("secret.txt", "."):
    try:
        target = os.path.join(here, name)
        print(name, "LEAKED:", open(target).read() if name != "." else os.listdir(target), flush=True)
    except PermissionError as error:
        print(name, "refused:", str(error).split(":")[0], flush=True)

"""Hostile job: read the files that happen to sit beside the application (a home directory's keys)."""
import os

here = os.path.dirname(os.path.realpath(__file__))
for name in ("secret.txt", "."):
    try:
        target = os.path.join(here, name)
        print(name, "LEAKED:", open(target).read() if name != "." else os.listdir(target), flush=True)
    except PermissionError as error:
        print(name, "refused:", str(error).split(":")[0], flush=True)

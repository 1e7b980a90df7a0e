"""Hostile job: write a file outside its directory (the path comes as the first argument)."""
import sys
with open(sys.argv[1], "w") as f:
    f.write("escaped")

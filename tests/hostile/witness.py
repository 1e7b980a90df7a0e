"""A well-behaved job that keeps running while hostile jobs are stopped: echoes lines until 'quit'."""
import sys

print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    print("echo", line.strip(), flush=True)
print("witness done", flush=True)

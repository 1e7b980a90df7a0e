"""Hostile job: fill the disk with one ever-growing file."""
chunk = b"x" * (256 * 1024)
with open("big.bin", "wb") as f:
    while True:
        f.write(chunk)

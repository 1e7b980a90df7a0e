"""Hostile job: fill the disk with many files of 256 KiB."""
chunk = b"x" * (256 * 1024)
for n in range(10_000):
    with open(f"junk-{n}.bin", "wb") as f:
        f.write(chunk)
print("wrote everything")

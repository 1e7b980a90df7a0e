"""Hostile job: allocate memory until the machine gives up."""
hog = []
while True:
    hog.append(bytearray(16 * 1024 * 1024))

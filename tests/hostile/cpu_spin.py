"""Hostile job: spin the CPU forever."""
while True:
    pass

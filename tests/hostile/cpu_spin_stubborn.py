"""Hostile job: spin the CPU forever, swallowing every error (even the CPU limit's)."""
while True:
    try:
        while True:
            pass
    except BaseException:
        pass

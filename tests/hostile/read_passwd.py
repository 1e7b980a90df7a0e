"""Hostile job: read the host's user list."""
print(open("/etc/passwd").read())

"""Hostile job: read an environment variable with os.getenv."""
import os
print(os.getenv("PATH"))

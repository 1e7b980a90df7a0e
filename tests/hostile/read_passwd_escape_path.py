"""Hostile job: reach /etc/passwd through a relative path climbing out of the job directory."""
import os
print(open(os.path.join("..", "..", "..", "..", "..", "..", "etc", "passwd")).read())

"""Hostile job: exec attacker text."""
exec("import os\nprint(os.getcwd())")

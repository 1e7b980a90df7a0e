"""Hostile job: reach native memory with ctypes."""
import ctypes
ctypes.string_at(0, 8)

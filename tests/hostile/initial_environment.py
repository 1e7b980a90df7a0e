"""Hostile job: the strings a process starts with stay on its initial stack for its whole life.

A job that got past the hook (native code, a memory bug) would find there every variable its
launcher handed it. It prints its pid and stays alive until its standard input ends or, when it
has none (a node of ``splay run``), until it is stopped; the test reads /proc/PID/environ from
outside, which is exactly those strings.
"""
import os
import sys
import threading

print("pid", os.getpid(), flush=True)
if not sys.stdin.readline():
    threading.Event().wait(120)

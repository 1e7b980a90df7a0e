"""Hostile job: open a Python socket, outside the restricted socket layer."""
import socket
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 1))

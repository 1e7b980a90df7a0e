"""The application of tests/test_workers.py: each node reaches the next one (position + 1) over
rpc, rpcq, urpc and a raw TCP socket; with ``--workers 2`` the next node is on the other worker.

Arguments (key=value): ``base=P`` (rpcq servers on P + position, raw sockets on P + n + position;
rpc and urpc serve on job.me), ``mode=calls|order|fail|hang``:

- calls: print what each protocol returned (the answering node's position and pid), then end;
- order: 100 times, print "ask i" then call the next node, whose handler prints "asked i";
- fail: node 1's module raises; the others end;
- hang: print the process's pid, then wait (a test kills a worker).
"""
import os, sys
from splay.base import *
from splay import rpc, rpcq, urpc

opts = dict(arg.split("=", 1) for arg in sys.argv[1:])
MODE = opts.get("mode", "calls")
BASE = int(opts.get("base", 0))

if MODE == "fail" and job.position == 1:
    raise KeyError("node 1 fails on purpose")

def whoami():
    return [job.position, os.getpid()]

def asked(i):
    print(f"asked {i}")
    return i

def raw_server(port):
    server = socket.tcp()
    assert server.bind(job.me.ip, port) and server.listen()
    while True:
        conn = server.accept()
        line = conn.receive("*l")
        conn.send(f"{job.position} {os.getpid()} {line.decode()}\n")
        conn.close()

def raw_call(ip, port):
    conn = socket.tcp()
    assert conn.connect(ip, port)
    conn.send("hello\n")
    answer = conn.receive("*l")
    conn.close()
    return answer.decode()

def main():
    n = len(job.nodes())
    nxt = (job.position + 1) % n
    peer = job.nodes()[nxt]
    rpc.server(job.me.port)
    rpcq.server({"ip": job.me.ip, "port": BASE + job.position})
    urpc.server(job.me.port)
    events.thread(lambda: raw_server(BASE + n + job.position))
    if MODE == "hang":
        print(f"pid {os.getpid()}")
        events.sleep(3600)
    events.sleep(1.5)                        # every node's servers are up
    if MODE == "calls":
        print(f"me pid {os.getpid()}")
        print("rpc", *rpc.call(peer, "whoami", 10))
        print("rpcq", *rpcq.call({"ip": peer.ip, "port": BASE + nxt}, "whoami", 10))
        print("urpc", *urpc.call(peer, "whoami", 10))
        print("raw", raw_call(peer.ip, BASE + n + nxt))
    elif MODE == "order":
        for i in range(100):
            print(f"ask {job.position}.{i}")
            rpcq.call({"ip": peer.ip, "port": BASE + nxt}, ["asked", f"{job.position}.{i}"], 10)
    events.sleep(1.5)                        # the others' calls to this node are answered
    events.exit()

events.run(main)

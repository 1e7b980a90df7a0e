"""The names the examples of docs/wire.md evaluate with, and the parser of its ```wire blocks."""
import re

from splayc.benc import encode_framed
from splayc.urpc_client import free_message

from splay import benc, llenc, log
from splay.rpc_core.dispatch import Dispatcher
from splay.rpc_core.namespace import for_server

FENCE = re.compile(r"^```wire[ \t]*\n(.*?)^```", re.S | re.M)
ARROW = "→ "


def concat(a, b):
    return a + b


def fail():
    raise ValueError("no")


def names():
    """The namespace of the examples (see the introduction of docs/wire.md)."""
    server = Dispatcher(for_server({"concat": concat, "fail": fail}), log.new(5))
    return {"benc": benc, "llenc": llenc, "encode_framed": encode_framed,
            "free_message": free_message, "server": server}


def examples(text):
    """``(expression, documented bytes literal or None)`` for each example of ``text``."""
    found = []
    for block in FENCE.findall(text):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(ARROW) or not line.strip():
                continue
            after = lines[i + 1] if i + 1 < len(lines) else ""
            found.append((line, after[len(ARROW):] if after.startswith(ARROW) else None))
    return found


def fill(text):
    """``text`` with the bytes line of each example (re)computed from the code."""
    ns = names()

    def block(match):
        out = []
        for line in match.group(1).splitlines():
            if line.startswith(ARROW):
                continue
            out.append(line)
            if line.strip():
                out.append(ARROW + repr(eval(line, dict(ns))))
        return "```wire\n" + "\n".join(out) + "\n```"
    return FENCE.sub(block, text)

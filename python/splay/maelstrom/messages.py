"""Maelstrom's message protocol: JSON objects ``{"src", "dest", "body"}``, one per line, whose
``body`` has a ``type``, an optional ``msg_id`` and, in replies, ``in_reply_to``; errors are
bodies ``{"type": "error", "code": C, "text": ...}``. The codes and whether each one is
*definite* (the operation certainly did not happen) follow Maelstrom's protocol documentation.
"""
import json

# code -> (name, definite)
ERRORS = {
    0: ("timeout", False),
    1: ("node-not-found", True),
    10: ("not-supported", True),
    11: ("temporarily-unavailable", True),
    12: ("malformed-request", True),
    13: ("crash", False),
    14: ("abort", True),
    20: ("key-does-not-exist", True),
    21: ("key-already-exists", True),
    22: ("precondition-failed", True),
    30: ("txn-conflict", True),
}

#: The biggest message line accepted from a program or a peer.
MAX_LINE = 1 << 20


class BadMessage(ValueError):
    """A line that is not a Maelstrom message; says what is wrong."""


def definite(code):
    """True when an error with ``code`` means the operation certainly did not take effect
    (unknown codes are indefinite, as Maelstrom treats them)."""
    return ERRORS.get(code, ("", False))[1]


def parse(line):
    """The message in ``line`` (bytes or str), checked: a JSON object with string ``src`` and
    ``dest`` and an object ``body`` with a string ``type``."""
    if len(line) > MAX_LINE:
        raise BadMessage(f"a message of {len(line)} bytes, over the limit of {MAX_LINE}")
    try:
        message = json.loads(line)
    except ValueError as e:
        raise BadMessage(f"not JSON ({e}): {line[:120]!r}") from None
    if not isinstance(message, dict):
        raise BadMessage(f"a message must be a JSON object, not {type(message).__name__}")
    for field in ("src", "dest"):
        if not isinstance(message.get(field), str):
            raise BadMessage(f"a message needs a string {field!r}: {line[:120]!r}")
    body = message.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise BadMessage(f"a message needs a 'body' object with a string 'type': {line[:120]!r}")
    return message


def dump(message):
    """``message`` as one line of JSON (str, no newline)."""
    return json.dumps(message, separators=(",", ":"))


def error_body(request_body, code, text):
    """The body of an error reply to ``request_body``."""
    body = {"type": "error", "code": code, "text": text}
    if "msg_id" in request_body:
        body["in_reply_to"] = request_body["msg_id"]
    return body

"""Decoded RPC message keys are the interpreter's interned strings (splayc/benc.pyx, WIRE_KEYS).

The RPC layer looks its keys up with interned constants; a decoded dict whose keys are those very
objects answers by identity. Other keys decode to equal strings as before."""
import sys

from splay import benc

REQUEST = b"d4:callli3e3:onee1:ni7e4:type4:calle"
NODE = b"d2:id3:abc2:ip9:127.0.0.14:porti20000ee"


def test_rpc_message_keys_are_the_interned_strings():
    for _ in range(3):             # the first decode fills the key cache, the next ones hit it
        request = benc.decode(REQUEST)
        assert request == {"call": [3, "one"], "n": 7, "type": "call"}
        assert all(k is sys.intern(k) for k in request)
        node = benc.decode(NODE)
        assert all(k is sys.intern(k) for k in node)


def test_other_keys_decode_to_equal_strings():
    data = benc.encode({"not_a_wire_key_1234": 1, "type": 2})
    assert benc.decode(data) == {"not_a_wire_key_1234": 1, "type": 2}
    assert benc.decode(data, raw=True) == {b"not_a_wire_key_1234": 1, b"type": 2}

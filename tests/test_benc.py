"""splay.benc: the wire facts of WIRE.md, round trips, the standard-bencode oracles, hostile input."""
import math
import os

import bencode as bencode_py         # bencode.py, a pure-Python standard bencode implementation
import fastbencode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splay import DecodeError, Node, benc

# ------------------------------------------------------------------------------------------
# Exact bytes of WIRE.md


@pytest.mark.parametrize("value, wire", [
    ("hello", b"5:hello"),
    ("", b"0:"),
    (b"\x00\xff", b"2:\x00\xff"),
    (-7, b"i-7e"),
    (0, b"i0e"),
    (9007199254740993, b"i9007199254740993e"),
    (2 ** 100, b"i1267650600228229401496703205376e"),
    (-(2 ** 64), b"i-18446744073709551616e"),
    (3.14, b"i3.14e"),
    (-0.5, b"i-0.5e"),
    (1e20, b"i100000000000000000000.0e"),
    (1e-7, b"i0.0000001e"),
    (2.0, b"i2.0e"),
    (True, b"t"),
    (False, b"f"),
    (None, b"n"),
    ([1, "a"], b"li1e1:ae"),
    ((1, "a"), b"li1e1:ae"),
    ([], b"le"),
    ({}, b"de"),
    ({"type": "ping"}, b"d4:type4:pinge"),
])
def test_wire_bytes(value, wire):
    assert benc.encode(value) == wire


def test_rpc_request_bytes_of_wire_md():
    request = {"type": "call", "call": ["concat", "one", "two"]}
    assert benc.encode(request) == b"d4:calll6:concat3:one3:twoe4:type4:calle"
    assert benc.encode_framed(request) == b"40\nd4:calll6:concat3:one3:twoe4:type4:calle"
    assert benc.encode_framed({"type": "ping"}) == b"14\nd4:type4:pinge"
    assert benc.encode(["onetwo"]) == b"l6:onetwoe"


def test_urpc_and_rpcq_bytes_of_wire_md():
    key = "a" * 40 + "1"
    assert (benc.encode({"call": ["concat", "one", "two"], "type": "call", "key": key})
            == b"d4:calll6:concat3:one3:twoe3:key41:" + key.encode() + b"4:type4:calle")
    assert benc.encode({"key": key, "free": True}) == b"d4:freet3:key41:" + key.encode() + b"e"
    assert benc.encode({"reply": ["ab"], "n": 7}) == b"d1:ni7e5:replyl2:abee"
    assert benc.decode(b"d5:replyl2:abe1:ni7ee") == {"reply": ["ab"], "n": 7}
    assert benc.decode(b"d5:replyt1:ni8ee") == {"reply": True, "n": 8}


def test_bool_is_not_int():
    assert benc.encode([True, 1, False, 0]) == b"lti1efi0ee"


def test_canonical_key_order_strings_by_raw_bytes_then_other_types():
    value = {"b": 1, b"a": 2, "\xe9": 3, 10: 4, 2: 5, 2.5: 6, True: 7, None: 8}
    assert benc.encode(value) == b"d1:ai2e1:bi1e2:\xc3\xa9i3ei2ei5ei2.5ei6ei10ei4eti7eni8ee"


def test_node_travels_as_a_table():
    assert benc.encode(Node("127.0.0.1", 20000)) == b"d2:ip9:127.0.0.14:porti20000ee"


def test_subclasses_and_buffers_encode_as_their_base_type():
    import enum
    import collections

    class Color(enum.IntEnum):
        RED = 3

    value = [Color.RED, bytearray(b"ab"), memoryview(b"cd"), collections.OrderedDict(b=1, a=2)]
    assert benc.encode(value) == b"li3e2:ab2:cdd1:ai2e1:bi1eee"


# ------------------------------------------------------------------------------------------
# Decoding: the Lua captures and the lenient number forms


def test_decode_lua_captures():
    # {1, nil, 3} from the Lua encoder: a dict with integer keys, in hash order
    assert benc.decode(b"di1ei1ei3ei3ee") == {1: 1, 3: 3}
    assert benc.decode(b"di3ei3ei1ei1ee") == {1: 1, 3: 3}
    # a Lua array with its keys written out, read as a list on request
    assert benc.decode(b"di2e1:bi1e1:ae", lists=True) == ["a", "b"]
    assert benc.decode(b"di2e1:bi1e1:ae") == {1: "a", 2: "b"}
    assert benc.decode(b"l6:onetwoe") == ["onetwo"]
    assert benc.decode(b"t") is True


@pytest.mark.parametrize("wire, value", [
    (b"i3.14e", 3.14), (b"i-0e", 0), (b"i1e", 1), (b"i4e", 4), (b"i-0.5e", -0.5),
    (b"i1e+20e", 1e20), (b"i1e-07e", 1e-7), (b"i2.5E3e", 2500.0), (b"i007e", 7),
    (b"i123456789012345678901234567890e", 123456789012345678901234567890),
])
def test_decode_numbers(wire, value):
    result = benc.decode(wire)
    assert result == value and type(result) is type(value)


def test_decode_str_or_bytes():
    assert benc.decode(b"l2:\xc3\xa91:\xffe") == ["\xe9", b"\xff"]
    assert benc.decode(b"l2:\xc3\xa91:\xffe", raw=True) == [b"\xc3\xa9", b"\xff"]
    assert benc.decode(b"d1:a1:b2:\xff\xfe0:e") == {"a": "b", b"\xff\xfe": ""}
    assert benc.decode(b"d1:a1:be", raw=True) == {b"a": b"b"}


def test_decode_accepts_buffers_and_str():
    assert benc.decode(bytearray(b"i5e")) == 5
    assert benc.decode(memoryview(b"xxi5e")[2:]) == 5
    assert benc.decode("5:hello") == "hello"


def test_decode_prefix_and_non_strict():
    data = b"i1e4:spami2e"
    assert benc.decode_prefix(data) == (1, 3)
    assert benc.decode_prefix(data, 3) == ("spam", 9)
    assert benc.decode(data, strict=False) == 1
    with pytest.raises(DecodeError, match="at offset 3"):     # offsets count from the data start
        benc.decode_prefix(b"i1e4:sp", 3)


# ------------------------------------------------------------------------------------------
# Round trips


def test_float_round_trip_extremes():
    for x in [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3, -0.0, 1e16,
              123456789.123456789, 1e22, 1e23]:
        wire = benc.encode(x)
        assert b"e+" not in wire and b"e-" not in wire and b"E" not in wire
        back = benc.decode(wire)
        assert back == x and math.copysign(1, back) == math.copysign(1, x)


scalars = (st.none() | st.booleans() | st.integers() | st.text()
           | st.binary().filter(lambda b: not _is_utf8(b))
           | st.floats(allow_nan=False, allow_infinity=False))
keys = st.text() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.binary()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40)


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _normalise(value):
    # what a round trip gives back: bytes keys that are UTF-8 come back as str
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, bytes) and _is_utf8(k):
                k = k.decode()
            out[k] = _normalise(v)
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _unique_wire_keys(value):
    if isinstance(value, dict):
        wire = [k.encode() if isinstance(k, str) else k for k in value if isinstance(k, (str, bytes))]
        return len(wire) == len(set(wire)) and all(_unique_wire_keys(v) for v in value.values())
    if isinstance(value, list):
        return all(_unique_wire_keys(v) for v in value)
    return True


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_round_trip_arbitrary_values(value):
    if not _unique_wire_keys(value):
        with pytest.raises(ValueError, match="encode to the same bytes"):
            benc.encode(value)
        return
    wire = benc.encode(value)
    assert benc.decode(wire) == _normalise(value)
    assert benc.encode(benc.decode(wire)) == wire         # canonical: stable through a round trip


# The standard subset: byte strings, integers, lists, dicts with byte keys
standard = st.recursive(
    st.integers() | st.binary(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.binary(), children,
                                                                      max_size=6),
    max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(standard)
def test_standard_subset_matches_independent_encoders(value):
    wire = benc.encode(value)
    assert wire == fastbencode.bencode(value)
    assert wire == bencode_py.encode(value)
    assert benc.decode(wire, raw=True) == value
    assert benc.decode(wire, raw=True) == fastbencode.bdecode(wire)


def _torrent():
    # A torrent-like document: announce list, info dict with binary piece hashes and a file list.
    pieces = os.urandom(20 * 500)
    return {
        b"announce": b"http://tracker.example.org:6969/announce",
        b"announce-list": [[b"http://tracker.example.org:6969/announce"], [b"udp://t2:80"]],
        b"creation date": 1700000000,
        b"info": {
            b"name": b"dataset",
            b"piece length": 262144,
            b"pieces": pieces,
            b"files": [{b"length": 1000 + i, b"path": [b"dir", b"file%d.bin" % i]}
                       for i in range(200)],
        },
    }


def test_torrent_round_trips_byte_identically():
    original = fastbencode.bencode(_torrent())
    decoded = benc.decode(original, raw=True)
    assert benc.encode(decoded) == original


def test_torrent_decodes_without_raw_to_text_and_bytes():
    original = fastbencode.bencode(_torrent())
    decoded = benc.decode(original)
    assert decoded["info"]["name"] == "dataset"
    assert decoded["info"]["files"][3]["path"] == ["dir", "file3.bin"]


def test_unsorted_input_is_accepted_and_reencoded_canonically():
    assert benc.encode(benc.decode(b"d1:bi1e1:ai2ee")) == b"d1:ai2e1:bi1ee"


# ------------------------------------------------------------------------------------------
# Unencodable values


@pytest.mark.parametrize("value, error, text", [
    ({1, 2}, TypeError, "cannot encode set at top level"),
    ([1, 2, {"peers": {3}}], TypeError, r"cannot encode set at \[2\]\['peers'\]"),
    ([object()], TypeError, r"cannot encode object at \[0\]"),
    ({"x": [float("nan")]}, ValueError, r"cannot encode float nan at \['x'\]\[0\]"),
    ([float("inf")], ValueError, r"cannot encode float inf at \[0\]"),
    ({"a": {(1, 2): 3}}, TypeError, r"cannot use tuple as a dict key.*the key \(1, 2\) of the dict at \['a'\]"),
    ({"a": 1, b"a": 2}, ValueError, "encode to the same bytes"),
    ("\ud800", ValueError, "cannot encode str at top level: .*surrogates not allowed"),
])
def test_unencodable_values_name_type_and_path(value, error, text):
    with pytest.raises(error, match=text):
        benc.encode(value)


def test_self_containing_structure_is_refused():
    a = []
    a.append(a)
    with pytest.raises(ValueError, match="nesting deeper than 1000"):
        benc.encode(a)
    with pytest.raises(ValueError, match="nesting deeper than 1000"):
        benc.encode_framed(a)


def test_encoder_state_is_clean_after_an_error():
    with pytest.raises(TypeError):
        benc.encode([1, {2}])
    assert benc.encode([1, 2]) == b"li1ei2ee"


# ------------------------------------------------------------------------------------------
# Hostile input


@pytest.mark.parametrize("data, offset, text", [
    (b"", 0, "empty input"),
    (b"i", 1, "truncated"),
    (b"i12", 3, "truncated: expected 'e'"),
    (b"ie", 1, "expected the digits of a number"),
    (b"i-e", 2, "expected the digits"),
    (b"i1x", 2, "expected 'e' to end the number"),
    (b"i1.2.3e", 4, "expected 'e'"),
    (b"x", 0, "expected a value"),
    (b"5:ab", 0, "claims 5 bytes but only 2 remain"),
    (b"99999999999999999999999:ab", 0, "string length too large"),
    (b"999999999:ab", 0, "claims 999999999 bytes"),
    (b"3ab", 1, "expected ':' after the string length"),
    (b"12", 2, "truncated: expected ':'"),
    (b"l", 1, "truncated: expected a list item"),
    (b"li1e", 4, "truncated"),
    (b"d", 1, "truncated: expected a dict key"),
    (b"d1:a", 4, "truncated: expected a value"),
    (b"dli1eei1ee", 1, "expected a dict key"),
    (b"d1:ai1e1:ai2ee", 7, "duplicate dict key 'a'"),
    (b"di1ei1ei1ei2ee", 7, "duplicate dict key 1"),
    (b"i1ei2e", 3, "trailing data"),
    (b"iinfe", 1, "expected the digits"),
    (b"l" * 1001 + b"e" * 1001, 1000, "nesting deeper than 1000"),
    (b"d1:a" * 1001, 4000, "nesting deeper than 1000"),
])
def test_hostile_input_raises_decode_error_with_offset(data, offset, text):
    with pytest.raises(DecodeError, match=text) as info:
        benc.decode(data)
    assert info.value.offset == offset
    assert f"at offset {offset}" in str(info.value)


def test_nesting_up_to_the_limit_is_fine():
    assert benc.decode(b"l" * 1000 + b"e" * 1000) is not None


def test_huge_claimed_length_allocates_nothing():
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            benc.decode(b"l" + b"9999999999999:" + b"x" * 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_oversized_integers_are_a_decode_error():
    with pytest.raises(DecodeError, match="integer not accepted"):
        benc.decode(b"i" + b"9" * 10000 + b"e")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_random_bytes_only_decode_error(data):
    try:
        benc.decode(data)
    except DecodeError:
        pass


_alphabet = st.sampled_from(list(b"ildefnt0123456789:-.eE+"))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_alphabet, max_size=80).map(bytes))
def test_fuzz_benc_alphabet_only_decode_error(data):
    for raw in (False, True):
        try:
            value = benc.decode(data, raw=raw, lists=True)
        except DecodeError:
            continue
        benc.encode(value)      # whatever decodes re-encodes


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.data())
def test_fuzz_mutated_valid_documents_only_decode_error(value, data):
    try:
        wire = bytearray(benc.encode(value))
    except ValueError:
        return
    if not wire:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        if not wire:
            break
        i = data.draw(st.integers(0, len(wire) - 1))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            wire[i] = data.draw(st.integers(0, 255))
        elif op == 1:
            del wire[i]
        else:
            wire = wire[:i]
    try:
        benc.decode(bytes(wire))
    except DecodeError:
        pass


def test_hooks_that_mutate_the_structure_do_not_crash():
    outer = []
    parent = {}

    class ClearsList(tuple):
        def to_dict(self):
            outer.clear()
            return {"x": 1}

    class ClearsDict(tuple):
        def to_dict(self):
            parent.clear()
            return {"x": 1}

    outer.extend([ClearsList(), "dropped", "dropped too"])
    assert benc.encode(outer) == b"ld1:xi1eee"         # the list shrank while being encoded
    parent.update(a=ClearsDict(), b="text")
    assert benc.encode(parent) == b"d1:ad1:xi1ee1:b4:texte"   # entries were taken before


def test_encode_called_from_a_hook_uses_its_own_buffer():
    class Nested(tuple):
        def to_dict(self):
            return {"inner": benc.encode([1, 2] * 3000)}
    inner = benc.encode([1, 2] * 3000)
    wire = benc.encode([Nested(), "after"])
    assert wire == b"ld5:inner" + str(len(inner)).encode() + b":" + inner + b"e5:aftere"

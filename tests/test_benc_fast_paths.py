"""splay.benc's fast paths (issue #17) give exactly what the general paths gave: integer digits
at every width, the str/bytes decision of the UTF-8 check, key order and collisions with non-ASCII
keys, the output buffer's growth, nesting limits."""
import random

import pytest

from splay import DecodeError, benc


@pytest.mark.parametrize("value", [
    0, 1, 9, 10, 99, 100, 101, 999, 1000, 2 ** 31, 2 ** 32 - 1, 10 ** 18 - 1, 10 ** 18,
    2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, 10 ** 19 - 1, 10 ** 19, 10 ** 20, 2 ** 200])
def test_integers_at_every_width(value):
    for v in (value, -value):
        assert benc.encode(v) == b"i%de" % v
        assert benc.decode(b"i%de" % v) == v
    assert benc.encode([value, {"k": value}]) == b"li%ded1:ki%deee" % (value, value)


def test_every_digit_count_against_repr():
    rng = random.Random(3)
    for digits in range(1, 41):
        v = rng.randrange(10 ** (digits - 1), 10 ** digits)
        assert benc.encode(v) == f"i{v}e".encode()
        assert benc.encode(-v) == f"i{-v}e".encode()


def test_negative_zero_float_and_int():
    assert benc.encode(-0.0) == b"i-0.0e"
    assert benc.encode(0.0) == b"i0.0e"
    assert benc.decode(b"i-0e") == 0 and type(benc.decode(b"i-0e")) is int


def _python_says_text(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _check_utf8_decision(data):
    value = benc.decode(b"%d:%s" % (len(data), data))
    assert type(value) is (str if _python_says_text(data) else bytes), data
    key = benc.decode(b"d%d:%si1ee" % (len(data), data))      # the dict key path (cached)
    assert type(next(iter(key))) is (str if _python_says_text(data) else bytes), data


def test_utf8_check_agrees_with_python_on_every_two_byte_sequence():
    for first in range(256):
        for second in range(256):
            data = bytes((first, second))
            value = benc.decode(b"2:" + data)
            assert type(value) is (str if _python_says_text(data) else bytes), data


def test_utf8_check_agrees_with_python_at_the_edges_of_longer_sequences():
    edges = [0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF]
    for first in range(0xC0, 0x100):
        for second in range(256):
            for third in edges:
                _check_utf8_decision(bytes((first, second, third)))
                if first >= 0xF0:
                    for fourth in (0x80, 0xBF, 0x7F, 0xC0):
                        _check_utf8_decision(bytes((first, second, third, fourth)))
    # long runs: ASCII then a non-ASCII tail, at every alignment of the 8-byte ASCII scan
    for k in range(20):
        for tail in ("é".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xed\xa0\x80", b"\xe2\x82"):
            _check_utf8_decision(b"a" * k + tail + b"z" * (k % 3))


def test_binary_value_decodes_to_bytes_and_text_to_str():
    blob = random.Random(1).randbytes(65536)
    assert benc.decode(benc.encode({"data": blob, "offset": 2 ** 64 - 1})) == {
        "data": blob, "offset": 2 ** 64 - 1}
    text = "node ☃ " * 10000
    assert benc.decode(benc.encode(text)) == text
    assert benc.decode(benc.encode("x" * 100000)) == "x" * 100000


def test_key_order_with_non_ascii_and_mixed_keys():
    value = {"é": 1, "e": 2, "z": 3, "ze": 4, "Z": 5, b"\xff": 6, "\U0001f600": 7, "": 8}
    wire = benc.encode(value)
    keys = sorted(k if isinstance(k, bytes) else k.encode() for k in value)
    expected = b"d" + b"".join(b"%d:%si%de" % (len(k), k, value[k if k == b"\xff" else k.decode()])
                               for k in keys) + b"e"
    assert wire == expected
    # a str subclass key and a non-compact str take the general path with the same bytes
    class Name(str):
        pass
    assert benc.encode({Name("b"): 1, "a": 2}) == b"d1:ai2e1:bi1ee"


def test_large_dicts_sort_like_small_ones():
    rng = random.Random(2)
    keys = [rng.choice(["", "é", "a", "ab", "b"]) + str(i) for i in range(300)]
    d = {k: i for i, k in enumerate(keys)}
    wire = benc.encode(d)
    assert list(benc.decode(wire)) == sorted(keys, key=lambda k: k.encode())


def test_str_and_bytes_keys_with_the_same_bytes_are_still_refused():
    with pytest.raises(ValueError, match="encode to the same bytes"):
        benc.encode({"é": 1, "é".encode(): 2})
    with pytest.raises(ValueError, match="encode to the same bytes"):
        benc.encode({"k%d" % i: i for i in range(40)} | {b"k7": 0})


def test_non_string_keys_are_unchanged():
    assert (benc.encode({2: "a", 1.5: "b", "s": "c", False: "d", None: "e"})
            == b"d1:s1:ci1.5e1:bi2e1:af1:dn1:ee")
    with pytest.raises(TypeError, match="cannot use tuple as a dict key"):
        benc.encode({(1,): 1})
    with pytest.raises(TypeError, match="cannot use frozenset as a dict key"):
        benc.encode({frozenset(): 1})


def test_output_buffer_grows_across_its_initial_size():
    for n in (400, 430, 440, 441, 460, 1000, 5000, 70000):
        s = "x" * n
        assert benc.encode(s) == b"%d:%s" % (n, s.encode())
        assert benc.encode_framed(s) == b"%d\n%d:%s" % (len(str(n)) + 1 + n, n, s.encode())
    many = list(range(5000))
    assert benc.decode(benc.encode(many)) == many


def test_nesting_limits_both_ways():
    deep = []
    for _ in range(999):
        deep = [deep]
    wire = benc.encode(deep)                     # 1000 levels: the limit itself
    assert wire == b"l" * 1000 + b"e" * 1000
    assert benc.encode(benc.decode(wire)) == wire
    with pytest.raises(ValueError, match="nesting deeper than 1000"):
        benc.encode([[deep]])
    with pytest.raises(DecodeError, match="nesting deeper than 1000"):
        benc.decode(b"d1:a" * 1001)


def test_large_results_through_the_scratch_buffer():
    big = [b"x" * 1000] * 600                      # 600 KB: beyond the in-place bytes range
    wire = benc.encode(big)
    assert wire == b"l" + b"1000:" + b"x" * 1000 + (b"1000:" + b"x" * 1000) * 599 + b"e"
    assert benc.encode(big) == wire                 # the kept scratch buffer is reused
    assert benc.encode_framed(big) == b"%d\n" % len(wire) + wire
    with pytest.raises(TypeError, match="cannot encode set"):
        benc.encode(big + [{1}])                    # a failure releases the scratch buffer
    assert benc.encode(big) == wire

    class Nested(tuple):                            # a hook encodes while the scratch is busy
        def to_dict(self):
            return {"inner": benc.encode(big)}
    nested = benc.encode([big, Nested(), big])
    assert nested == b"l" + wire + b"d5:inner%d:" % len(wire) + wire + b"e" + wire + b"e"


def test_decode_front_passes_every_other_call_on_unchanged():
    # benc.decode takes a single bytes argument itself and hands any other call to the full
    # function: keywords, other buffers, bytes subclasses and wrong calls behave as before.
    import inspect

    class Sub(bytes):
        pass
    wire = b"d1:al1:xee"
    expected = {"a": ["x"]}
    assert benc.decode(wire) == expected
    for data in (bytearray(wire), memoryview(wire), wire.decode(), Sub(wire)):
        assert benc.decode(data) == expected
    assert benc.decode(data=wire) == expected
    assert benc.decode(wire, raw=True) == {b"a": [b"x"]}
    assert benc.decode(wire + b"junk", strict=False) == expected
    with pytest.raises(DecodeError, match="trailing data"):
        benc.decode(wire + b"junk")
    with pytest.raises(TypeError, match=r"decode\(\)"):
        benc.decode()
    with pytest.raises(TypeError, match="unexpected keyword"):
        benc.decode(wire, rawr=True)
    with pytest.raises(TypeError, match="expects bytes"):
        benc.decode(7)
    assert str(inspect.signature(benc.decode)) == "(data, raw=False, lists=False, strict=True)"
    assert benc.decode.__doc__.startswith("Decode one benc value")

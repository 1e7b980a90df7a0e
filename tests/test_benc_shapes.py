"""splay.benc's third round of fast paths (issue #17) against a plain reference encoder: the cache
of dict shapes (sorted order and encoded keys found by the key objects' identity), dict entries read
straight from the table, leaf values written with their key, 32-bit and eight-digit-group integer
formatting, the output buffer's size hint, and on decode the eight-digits-at-a-time integers, short
strings and the key cache's hash and comparison."""
import random
import sys

import pytest

from splay import DecodeError, benc
from splayc import benc as benc_core


def reference(value):
    """WIRE.md's canonical encoding, written plainly (str keys only, as these tests use)."""
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if value is None:
        return b"n"
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(reference(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode())
        return b"d" + b"".join(reference(k) + reference(v) for k, v in items) + b"e"
    raise TypeError(type(value))


def test_keys_in_order_and_out_of_order_give_the_same_bytes():
    in_order = {"id": 7, "ip": "10.0.0.1", "port": 20001}
    shuffled = {"port": 20001, "ip": "10.0.0.1", "id": 7}
    reverse = {"port": 20001, "id": 7, "ip": "10.0.0.1"}
    wire = b"d2:idi7e2:ip8:10.0.0.14:porti20001ee"
    for _ in range(3):                               # the first call fills the cache, then hits
        assert benc.encode(in_order) == wire
        assert benc.encode(shuffled) == wire
        assert benc.encode(reverse) == wire


def test_cache_hits_and_misses_across_many_shapes():
    rng = random.Random(17)
    names = ["a", "b", "ip", "id", "port", "n", "type", "call", "reply", "é", "\U0001f600", "",
             "x" * 30, "y" * 9, "z" * 10]
    docs = []
    for _ in range(3000):                            # far more shapes than the cache's 256 slots
        k = rng.randrange(1, 9)
        keys = rng.sample(names, k)
        docs.append({key: rng.choice([rng.randrange(-10 ** 12, 10 ** 12), "v" * rng.randrange(20),
                                      None, True, [1, "x"], {"inner": 1}]) for key in keys})
    for _ in range(2):
        for doc in docs:
            assert benc.encode(doc) == reference(doc), doc
    assert benc.encode(docs) == reference(docs)


def test_dicts_of_eight_and_nine_keys_and_long_keys_take_the_right_path():
    eight = {f"key{i}": i for i in range(8)}
    nine = {f"key{i}": i for i in range(9)}
    long_keys = {"k" * 60: 1, "j" * 70: 2}          # too long for a cache entry: general path
    for doc in (eight, nine, long_keys, dict(reversed(list(eight.items())))):
        assert benc.encode(doc) == reference(doc)
        assert benc.encode(doc) == reference(doc)


def test_keys_that_are_not_exact_str_fall_back():
    class Name(str):
        pass
    assert benc.encode({Name("b"): 1, "a": 2}) == b"d1:ai2e1:bi1ee"
    assert benc.encode({"b": 1, b"a": 2}) == b"d1:ai2e1:bi1ee"
    assert benc.encode({"b": 1, 3: 2}) == b"d1:bi1ei3ei2ee"
    with pytest.raises(ValueError, match="encode to the same bytes"):
        benc.encode({"a": 1, b"a": 2})
    with pytest.raises(ValueError):
        benc.encode({"\ud800": 1})                  # a lone surrogate has no UTF-8 form


def test_dicts_with_deleted_entries_and_other_table_kinds():
    holes = {f"k{i}": i for i in range(12)}
    for i in range(0, 12, 2):
        del holes[f"k{i}"]
    assert benc.encode(holes) == reference(holes)
    small = {"a": 1, "b": 2, "c": 3}
    del small["b"]
    assert benc.encode(small) == b"d1:ai1e1:ci3ee"

    class Obj:
        pass
    obj = Obj()
    obj.port, obj.ip = 1, "x"                       # an instance's __dict__: a split table
    assert benc.encode(obj.__dict__) == b"d2:ip1:x4:porti1ee"
    assert benc.encode({1: "a", 2: "b"}) == b"di1e1:ai2e1:be"    # general entries


def test_direct_dict_reads_are_on_where_the_layout_is_known():
    assert benc_core.DICT_LAYOUT_DIRECT == ((3, 11) <= sys.version_info[:2] <= (3, 13))


def test_a_hook_that_changes_the_dict_being_encoded():
    # A value's to_dict hook empties the dict it sits in and encodes other dicts of the same shape
    # (the cache entry in use is busy): the snapshot taken before is encoded, nothing is freed early.
    outer = {}

    class Clearing(tuple):
        def to_dict(self):
            outer.clear()
            inner = benc.encode({"a": "x" * 5, "b": 2, "c": [1]})
            return {"seen": inner}
    outer.update({"a": "first", "b": Clearing(), "c": "last" * 3})
    expected_inner = b"d1:a5:xxxxx1:bi2e1:cli1eee"
    wire = benc.encode(outer)
    assert wire == (b"d1:a5:first1:bd4:seen%d:%se1:c12:lastlastlaste"
                    % (len(expected_inner), expected_inner))
    assert outer == {}


def test_bytes_and_big_int_values_around_a_hook_that_empties_the_dict():
    # Exact bytes and ints are written without holding the dict's values (they run no user code);
    # those after a value whose hook empties the dict are still the ones snapshotted before.
    outer = {}

    class Clearing(tuple):
        def to_dict(self):
            outer.clear()
            return {"k": b"\x00\xff"}
    blob, big = bytes(range(256)) * 40, 2 ** 64 - 12345
    outer.update({"a": blob, "b": big, "c": Clearing(), "d": bytes(3000), "e": -(2 ** 70)})
    wire = benc.encode(outer)
    assert wire == (b"d1:a10240:" + blob + b"1:bi%de1:cd1:k2:\x00\xffe1:d3000:" % big + bytes(3000)
                    + b"1:ei%dee" % -(2 ** 70))
    assert outer == {}
    for doc in ({"x": b"", "y": 0}, {"x": b"1:e", "y": 2 ** 63}, {"x": bytearray(b"ab"), "y": True}):
        assert benc.encode(doc) == reference({k: bytes(v) if isinstance(v, bytearray) else v
                                              for k, v in doc.items()})


def test_nested_dicts_of_the_same_shape():
    doc = {"a": 1, "b": {"a": 2, "b": {"a": 3, "b": None}}}
    assert benc.encode(doc) == b"d1:ai1e1:bd1:ai2e1:bd1:ai3e1:bneee"
    deep = None
    for i in range(900):
        deep = {"k": deep, "i": i}
    assert benc.encode(deep) == reference_deep(deep)


def reference_deep(value):
    out = []
    depth = 0
    while value is not None:
        out.append(b"d1:ii%de1:k" % value["i"])
        value = value["k"]
        depth += 1
    return b"".join(out) + b"n" + b"e" * depth


@pytest.mark.parametrize("value", [
    0, 9, 10, 99, 100, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 10 ** 8, 10 ** 8 + 1,
    10 ** 9 - 1, 10 ** 9, 4294967296 * 10, 10 ** 16, 10 ** 16 + 1, 100000000000000001,
    10 ** 17 + 10 ** 8, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 10 ** 19])
def test_integers_around_the_formatting_boundaries(value):
    for v in (value, -value):
        assert benc.encode(v) == b"i%de" % v
        assert benc.encode({"k": v}) == b"d1:ki%dee" % v
        assert benc.encode({"k": v, "s": "x"}) == b"d1:ki%de1:s1:xe" % v


@pytest.mark.parametrize("digits", range(1, 22))
def test_decoded_integers_at_every_width_far_from_and_near_the_end(digits):
    rng = random.Random(digits)
    for _ in range(20):
        v = rng.randrange(10 ** (digits - 1), 10 ** digits)
        for sign in (1, -1):
            text = b"i%de" % (sign * v)
            assert benc.decode(text) == sign * v                          # near the end
            assert benc.decode(b"l" + text + b"i0e" * 8 + b"e")[0] == sign * v    # 16+ bytes on
    assert benc.decode(b"li" + b"0" * 17 + b"7ei0ei0ei0ei0ei0ee")[0] == 7    # leading zeros


def test_decoded_integer_edge_cases_keep_their_meaning():
    tail = b"i0e" * 8 + b"e"
    assert benc.decode(b"li12345678e+20e" + tail)[0] == 12345678e20         # Lua's exponent
    assert benc.decode(b"li12345678e-07e" + tail)[0] == 12345678e-7
    assert benc.decode(b"li1234567812345678.5e" + tail)[0] == 1234567812345678.5
    assert benc.decode(b"li-0e" + tail)[0] == 0
    for bad in (b"lie" + tail, b"li-e" + tail, b"li12345678x" + tail, b"li1234567812345678"):
        with pytest.raises(DecodeError):
            benc.decode(bad)


def test_short_strings_and_keys_decode_exactly():
    rng = random.Random(4)
    for n in range(0, 40):
        base = bytes(rng.randrange(97, 123) for _ in range(n))
        assert benc.decode(b"%d:%s" % (n, base)) == base.decode()
        assert benc.decode(b"l%d:%se" % (n, base)) == [base.decode()]
    # keys alike in their first and last eight bytes (the cache's hash) but not in between
    keys = ["abcdefgh" + m + "stuvwxyz" for m in ("", "1", "2", "12", "21", "xxxxxxx", "xxxxxxy")]
    doc = {k: i for i, k in enumerate(keys)}
    for _ in range(2):
        assert benc.decode(benc.encode(doc)) == doc
    short = {k: i for i, k in enumerate(["", "a", "ab", "ba", "abc", "acb", "abcd", "abdc",
                                         "abcde", "abced", "abcdefg", "abcdfeg"])}
    for _ in range(2):
        assert benc.decode(benc.encode(short)) == short
    assert benc.decode(b"d3:\xff\xfe\xfdi1ee") == {b"\xff\xfe\xfd": 1}      # not UTF-8: bytes
    assert benc.decode(b"d3:abci1ee", raw=True) == {b"abc": 1}


def test_output_buffer_size_hint_across_sizes():
    rng = random.Random(9)
    sizes = [10, 600, 5000, 70000, 300000, 600, 20, 66000, 1000, 5000]
    docs = {n: ["n" * rng.randrange(1, 50) for _ in range(n // 25)] for n in sizes}
    for _ in range(2):
        for n in sizes:
            assert benc.encode(docs[n]) == reference(docs[n])
            assert benc.encode_framed(docs[n]) == b"%d\n" % len(reference(docs[n])) + reference(docs[n])


def test_results_with_room_left_over_are_ordinary_bytes():
    # A large single write sizes the buffer to it plus a little; the result keeps what is left.
    blob = random.Random(6).randbytes(65536)
    for extra in (0, 1, 100, 5000):
        doc = {"data": blob, "offset": 2 ** 64 - 12345, "pad": "p" * extra}
        wire = benc.encode(doc)
        assert wire == reference(doc)
        assert len(wire) == len(reference(doc)) and wire[-1:] == b"e"
        assert hash(wire) == hash(bytes(bytearray(wire))) and wire + b"x" == reference(doc) + b"x"
        assert benc.decode(wire) == doc


def test_eight_digit_words_write_every_digit_in_every_position():
    # Numbers are formatted eight digits at a time in the lanes of one word: every digit value at
    # every position, every length, and what follows a short number written over the word's rest.
    for digit in range(10):
        for width in range(1, 21):
            for position in range(width):
                v = int("1" * width) + (digit - 1) * 10 ** position if width > 1 else digit
                assert benc.encode([v, -v, "x"]) == b"li%dei%de1:xe" % (v, -v)
    for n in list(range(0, 130)) + [999, 1000, 10 ** 5, 10 ** 6 + 7]:
        assert benc.encode("a" * n) == b"%d:%s" % (n, b"a" * n)
        key = "k" * n
        assert benc.encode({key: 1, "z": [n]}) == b"d%d:%si1e1:zli%deee" % (n, key.encode(), n)

"""splay.bits: the manual's functions (0-based in Python) and the Bloom filter operations."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splay import bits
from splay.bits import BitTable


def test_manual_show_bits_example():
    # "00110000 11001111..." is the binary string b"0\xcf"
    assert bits.show_bits(b"0\xcf") == "00110000 11001111"
    assert bits.show_bits(bits.ascii_to_bits(b"0\xcf")) == "00110000 11001111"


def test_init_gives_all_false():
    t = bits.init(12)
    assert bits.size(t) == 12 and bits.count(t) == 0
    assert list(t) == [False] * 12


def test_ascii_to_bits_and_back():
    t = bits.ascii_to_bits(b"\x80\x01")
    assert bits.size(t) == 16 and bits.count(t) == 2
    assert bits.is_set(t, 0) and bits.is_set(t, 15) and not bits.is_set(t, 1)
    assert bits.bits_to_ascii(t) == b"\x80\x01"


def test_ascii_to_bits_max_length():
    t = bits.ascii_to_bits(b"\xff\xff", 3)
    assert bits.size(t) == 3 and bits.count(t) == 3
    assert bits.bits_to_ascii(t) == b"\xe0"      # padded with 0 bits
    with pytest.raises(ValueError):
        bits.ascii_to_bits(b"\xff", -1)


def test_functions_accept_binary_strings():
    assert bits.size(b"ab") == 16
    assert bits.count(b"\xff\x0f") == 12
    assert bits.is_set(b"0", 2) and not bits.is_set(b"0", 0)
    assert bits.show_bits(bytearray(b"\x01")) == "00000001"
    with pytest.raises(TypeError, match="not str"):
        bits.count("ab")
    with pytest.raises(TypeError, match="not int"):
        bits.count(5)


def test_set_unset_and_indices():
    t = bits.init(10)
    bits.set(t, 3)
    t.set(9)
    t[0] = True
    assert t.positions() == [0, 3, 9]
    bits.unset(t, 0)
    t[3] = False
    assert bits.positions(t) == [9]
    assert repr(t) == "BitTable(10, '00000000 01')"
    with pytest.raises(IndexError, match="0-based"):
        t.set(10)
    with pytest.raises(IndexError):
        bits.is_set(t, -1)
    ba = bytearray(2)
    bits.set(ba, 15)
    assert ba == bytearray(b"\x00\x01")
    with pytest.raises(TypeError, match="bytearray"):
        bits.set(b"\x00", 1)


def test_bloom_filter_operations():
    a = bits.from_positions([1, 5, 9], 12)
    b = bits.from_positions([5, 11], 12)
    assert (a | b).positions() == [1, 5, 9, 11]
    assert (a & b).positions() == [5]
    assert (a ^ b).positions() == [1, 9, 11]
    assert (~a).positions() == [0, 2, 3, 4, 6, 7, 8, 10, 11]
    assert bits.count(~a) == 9                           # padding bits stay 0
    assert bits.or_(a, b) == a | b and bits.and_(a, b) == a & b
    assert bits.xor(a, b) == a ^ b and bits.not_(a) == ~a
    assert bits.popcount(a) == 3
    assert bits.or_(b"\x01", b"\x80") == bits.ascii_to_bits(b"\x81")
    with pytest.raises(ValueError, match="differ in size"):
        a | bits.init(13)
    with pytest.raises(TypeError):
        a | b"\x00\x00"


def test_copy_equality_hash_bytes():
    a = bits.from_positions([2], 8)
    c = a.copy()
    c.set(3)
    assert a != c and a == bits.from_positions([2], 8)
    assert bytes(a) == b"\x20" and a.to_bytes() == b"\x20"
    assert hash(a) == hash(bits.from_positions([2], 8))
    assert len(a) == 8


@settings(deadline=None)
@given(st.binary(max_size=64), st.integers(0, 600))
def test_property_matches_a_python_model(data, limit):
    t = bits.ascii_to_bits(data, limit)
    n = min(len(data) * 8, limit)
    model = [(data[i // 8] >> (7 - i % 8)) & 1 == 1 for i in range(n)]
    assert list(t) == model
    assert bits.count(t) == sum(model)
    assert t.positions() == [i for i, v in enumerate(model) if v]
    assert bits.from_positions(t.positions(), n) == t
    assert list(~t) == [not v for v in model]


def test_negative_size_refused():
    with pytest.raises(ValueError):
        BitTable(-1)

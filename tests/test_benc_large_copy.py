"""Large byte strings through benc's copy of csrc/large_copy.h (a vector loop instead of memcpy on
AMD CPUs with ERMS, for 4 KiB .. 1 MiB copies whose ends are differently aligned): the bytes are
exactly those of the value at every size around the loop's limits and at every alignment."""
import os

import pytest

from splay import benc
from splayc import benc as cbenc

SIZES = [4095, 4096, 4097, 4096 + 31, 65536, 65536 + 13, 1024 * 1024 - 1, 1024 * 1024,
         1024 * 1024 + 1]


def test_loop_copies_exactly_at_every_alignment():
    data = os.urandom(9000)
    if cbenc._loop_copy(data, 0, 64, 0) is None:
        pytest.skip("this CPU has no AVX2: the loop is never used")
    for start in range(32):
        for length in (64, 65, 95, 96, 127, 128, 129, 255, 4096, 4097, 8191):
            for shift in range(32):
                assert cbenc._loop_copy(data, start, start + length, shift) == \
                    data[start:start + length], (start, length, shift)


def test_loop_copy_refuses_bad_ranges():
    data = bytes(200)
    if cbenc._loop_copy(data, 0, 64, 0) is None:
        pytest.skip("this CPU has no AVX2: the loop is never used")
    for args in ((data, 0, 63, 0), (data, -1, 100, 0), (data, 0, 201, 0), (data, 0, 100, 32)):
        with pytest.raises(ValueError, match="start"):
            cbenc._loop_copy(*args)


@pytest.mark.parametrize("size", SIZES)
def test_large_bytes_values_are_byte_exact_at_every_offset(size):
    payload = os.urandom(size)
    # keys of 1..32 letters move the payload's offset in the output through every residue mod 32
    for key_len in range(1, 33):
        key = "k" * key_len
        doc = {key: payload, "z": 2 ** 64 - 12345}
        wire = benc.encode(doc)
        assert wire == (b"d" + f"{key_len}:{key}{size}:".encode() + payload
                        + b"1:zi18446744073709539271ee")
        back = benc.decode(wire)
        assert back == doc and type(back[key]) is bytes
        assert benc.decode(memoryview(wire)) == doc
        assert benc.decode(wire, raw=True)[key.encode()] == payload


@pytest.mark.parametrize("size", [4096, 65536 + 5, 300 * 1024])
def test_large_text_and_framed_results(size):
    text = ("abcdefghij" * (size // 10 + 1))[:size]
    for prefix in range(0, 33, 7):
        doc = ["x" * prefix, text]
        wire = benc.encode(doc)
        assert wire == f"l{prefix}:{'x' * prefix}{size}:{text}e".encode()
        assert benc.decode(wire) == doc
        framed = benc.encode_framed(doc)
        assert framed == f"{len(wire)}\n".encode() + wire


def test_large_values_in_a_stream_and_a_truncated_one():
    payload = os.urandom(70000)
    one, two = benc.encode({"a": payload}), benc.encode([payload, 1])
    stream = one + two
    value, end = benc.decode_prefix(stream)
    assert value == {"a": payload} and end == len(one)
    assert benc.decode_prefix(stream, end) == ([payload, 1], len(stream))
    with pytest.raises(benc.DecodeError, match="claims 70000 bytes"):
        benc.decode(one[:-10])

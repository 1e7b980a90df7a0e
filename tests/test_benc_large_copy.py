"""Large byte strings through benc's copy of csrc/large_copy.h (vector loops instead of memcpy on
AMD CPUs with ERMS, for 4 KiB .. 1 MiB copies: forward when the ends are differently aligned,
backward when the destination is a little past the source modulo 4 KiB): the bytes are exactly
those of the value at every size around the loops' limits, at every alignment and at every
distance between source and destination, in both directions."""
import ctypes
import os
import sys

import pytest

from splay import benc
from splayc import benc as cbenc

SIZES = [4095, 4096, 4097, 4096 + 31, 65536, 65536 + 13, 1024 * 1024 - 1, 1024 * 1024,
         1024 * 1024 + 1]
LOOP_MIN, LOOP_MAX, WINDOW = cbenc.LARGE_COPY_LIMITS
#: distances (destination - source, modulo 4 KiB) at and around the edges of the backward window
EDGE_DISTANCES = sorted({0, 1, 2, 3, 7, 8, 31, 32, 33, 64, 100, WINDOW - 33, WINDOW - 32,
                         WINDOW - 31, WINDOW - 1, WINDOW, WINDOW + 1, WINDOW + 32, 2048, 4064,
                         4095})


def test_loop_copies_exactly_at_every_alignment():
    data = os.urandom(9000)
    if cbenc._loop_copy(data, 0, 64, 0) is None:
        pytest.skip("this CPU has no AVX2: the loop is never used")
    for start in range(32):
        for length in (64, 65, 95, 96, 127, 128, 129, 255, 4096, 4097, 8191):
            for shift in range(32):
                assert cbenc._loop_copy(data, start, start + length, shift) == \
                    data[start:start + length], (start, length, shift)


def test_backward_loop_copies_exactly_at_every_alignment():
    data = os.urandom(9000)
    if cbenc._loop_copy(data, 0, 64, 0, backward=True) is None:
        pytest.skip("this CPU has no AVX2: the loop is never used")
    for start in range(32):
        for length in (64, 65, 95, 96, 97, 127, 128, 129, 160, 161, 255, 4096, 4097, 8191):
            for shift in range(32):
                assert cbenc._loop_copy(data, start, start + length, shift, backward=True) == \
                    data[start:start + length], (start, length, shift)


def expected_path(n, distance):
    """The copy csrc/large_copy.h documents for n bytes at this distance (destination - source,
    modulo 4 KiB) on a machine where it uses its loops."""
    if not LOOP_MIN <= n < LOOP_MAX or distance % 32 == 0:
        return "memcpy"
    return "backward" if distance < WINDOW else "forward"


@pytest.mark.parametrize("size", SIZES)
def test_large_copy_is_exact_at_the_window_edges(size):
    data = os.urandom(size + 64)
    paths = set()
    for start in (0, 1, 13, 31, 32):
        for distance in EDGE_DISTANCES:
            copy, path = cbenc._large_copy(data, start, start + size, distance)
            assert copy == data[start:start + size], (start, distance, path)
            paths.add(path)
            if cbenc.LARGE_COPY_LOOP:
                assert path == expected_path(size, distance), (start, distance)
            else:
                assert path == "memcpy"
    if cbenc.LARGE_COPY_LOOP and LOOP_MIN <= size < LOOP_MAX:
        assert paths == {"memcpy", "forward", "backward"}


def test_large_copy_is_exact_at_every_distance():
    # 64 KiB (the benchmark's value) and a size that is not a multiple of 32, at every distance
    # modulo 4 KiB in steps of 8, from sources at odd and even alignments
    data = os.urandom(70000)
    for size in (65536, 65536 + 13):
        for start in (0, 13):
            for distance in range(0, 4096, 8) if start == 0 else range(3, 4096, 8):
                copy, path = cbenc._large_copy(data, start, start + size, distance)
                assert copy == data[start:start + size], (size, start, distance, path)


def test_large_copy_of_nothing_and_of_small_strings():
    data = os.urandom(100)
    for n in (0, 1, 63, 64, 100):
        assert cbenc._large_copy(data, 0, n, 5) == (data[:n], "memcpy")


def test_large_copy_refuses_bad_ranges():
    data = bytes(200)
    for args in ((data, 0, 201, 0), (data, -1, 100, 0), (data, 10, 5, 0), (data, 0, 100, 4096),
                 (data, 0, 100, -1)):
        with pytest.raises(ValueError, match="distance"):
            cbenc._large_copy(*args)


def test_decoded_values_are_exact_whatever_the_distance_to_their_bytes_object():
    # The input moves through every offset modulo 4 KiB (in steps of 8) inside one buffer, so the
    # new bytes object's payload lands at every distance from it, the backward window included.
    payload = os.urandom(65536)
    wire = benc.encode({"data": payload, "offset": 2 ** 64 - 12345})
    buf = bytearray(len(wire) + 4096)
    base = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    payload_at = wire.index(b"65536:") + 6
    bytes_header = sys.getsizeof(b"") - 1       # where a bytes object's payload starts (CPython)
    distances = set()
    for offset in range(0, 4096, 8):
        buf[offset:offset + len(wire)] = wire
        value = benc.decode(memoryview(buf)[offset:offset + len(wire)])
        assert value == {"data": payload, "offset": 2 ** 64 - 12345}, offset
        distances.add((id(value["data"]) + bytes_header - (base + offset + payload_at)) % 4096)
    assert any(0 < d < WINDOW for d in distances) and any(d >= WINDOW for d in distances)


def test_encoded_values_are_exact_at_every_offset_in_a_page():
    # Keys of 0 .. 4095 letters move the payload through every offset modulo 4 KiB of the output.
    payload = os.urandom(65536 + 13)
    for key_len in range(0, 4096, 7):
        key = "k" * key_len
        wire = benc.encode({key: payload})
        assert wire == b"d" + f"{key_len}:{key}{len(payload)}:".encode() + payload + b"e", key_len
        assert benc.decode(wire) == {key: payload}


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

"""splay.benc's decoded dicts made from templates (issue #17): a dict of up to eight keys whose key
objects were seen before in the same order is a copy of a cached {key: None} template with its
values stored in place. These tests check that such dicts are ordinary, independent dicts, equal to
the ones built key by key, and that duplicates, raw keys, lists=True, larger dicts, garbage
collector tracking and a decode re-entered from a garbage collection all still behave."""
import gc
import random
import sys

import pytest

from splay import DecodeError, benc
from splayc import benc as benc_core


def test_templates_are_on_where_the_dict_layout_is_known():
    assert benc_core.DICT_TEMPLATES == ((3, 11) <= sys.version_info[:2] <= (3, 13))


def test_repeated_shapes_give_equal_independent_dicts():
    wire = benc.encode({"ip": "10.0.0.1", "port": 20001, "id": 7})
    first, second, third = (benc.decode(wire) for _ in range(3))     # the third is a copy
    assert first == second == third == {"id": 7, "ip": "10.0.0.1", "port": 20001}
    assert list(third) == ["id", "ip", "port"]               # wire order
    third["port"] = 1
    third["extra"] = True
    del third["ip"]
    fourth = benc.decode(wire)
    assert fourth == {"id": 7, "ip": "10.0.0.1", "port": 20001}
    assert third == {"id": 7, "port": 1, "extra": True}
    assert fourth["ip"] == "10.0.0.1" and fourth.get("missing") is None
    assert hash(next(iter(fourth))) == hash("id")


def test_same_keys_with_other_values_each_time():
    rng = random.Random(3)
    for i in range(300):
        node = {"ip": f"10.0.{i % 256}.{i // 256}", "port": rng.randrange(1 << 16),
                "id": rng.getrandbits(rng.choice((3, 30, 62))), "seen": [i, {"k": i}] if i % 2 else None}
        assert benc.decode(benc.encode(node)) == node
    nodes = [{"ip": "h", "port": p, "id": -p} for p in range(200)]
    for _ in range(3):
        assert benc.decode(benc.encode(nodes)) == nodes


def test_many_shapes_colliding_in_the_cache():
    rng = random.Random(11)
    names = [f"k{i}" for i in range(40)]
    shapes = [rng.sample(names, rng.randrange(1, 9)) for _ in range(600)]
    docs = [{k: rng.choice([k, 1, None, [k], {"x": k}]) for k in shape} for shape in shapes]
    for _ in range(3):
        for doc in docs:
            assert benc.decode(benc.encode(doc)) == doc


def test_containers_in_values_are_tracked_by_the_garbage_collector():
    wire = benc.encode({"a": 1, "b": [2]})
    for _ in range(3):
        value = benc.decode(wire)
        assert gc.is_tracked(value)
        value["b"].append(value)                          # a cycle the collector must find
    del value
    assert gc.collect() >= 0
    flat = benc.encode({"a": 1, "b": "two"})
    for _ in range(3):
        assert benc.decode(flat) == {"a": 1, "b": "two"}


def test_duplicate_keys_fail_at_the_repeat_every_time():
    for _ in range(3):
        assert benc.decode(b"d1:ai1e1:bi2ee") == {"a": 1, "b": 2}
        with pytest.raises(DecodeError, match=r"duplicate dict key 'a' \(at offset 13\)"):
            benc.decode(b"d1:ai1e1:bi2e1:ai3ee")
        with pytest.raises(DecodeError, match="duplicate dict key 'a'"):
            benc.decode(b"d1:ai1e1:ai1ee")
    nine = b"d" + b"".join(b"2:k%di%de" % (i, i) for i in range(9))
    assert benc.decode(nine + b"e") == {f"k{i}": i for i in range(9)}
    with pytest.raises(DecodeError, match="duplicate dict key 'k0'"):
        benc.decode(nine + b"2:k0i0ee")
    with pytest.raises(DecodeError, match="duplicate dict key 'k3'"):
        benc.decode(b"d" + b"".join(b"2:k%di%de" % (i, i) for i in (0, 1, 2, 3, 4, 5, 6, 3)) + b"e")


def test_truncated_and_malformed_dicts_release_what_they_read():
    for bad in (b"d1:ai1e1:b", b"d1:ai1e1:bi2e", b"d1:a", b"d1:ali1e", b"d1:ai1e1:bx", b"d1:ai1e1:ai"):
        for _ in range(3):
            with pytest.raises(DecodeError):
                benc.decode(bad)
    # the key objects (shared through the key cache) and values read before the failure are let go
    wire = benc.encode({"alpha": "x", "beta": 1, "gamma": "y"})
    key = next(iter(benc.decode(wire)))
    before = sys.getrefcount(key)
    for _ in range(200):
        with pytest.raises(DecodeError):
            benc.decode(wire[:-1])
        with pytest.raises(DecodeError):
            benc.decode(wire[:-2] + b"x")
    assert sys.getrefcount(key) == before


def test_raw_keys_and_lists_option():
    wire = b"d2:ip3:abc4:porti5ee"
    for _ in range(3):
        assert benc.decode(wire, raw=True) == {b"ip": b"abc", b"port": 5}
        assert benc.decode(wire) == {"ip": "abc", "port": 5}
    for _ in range(3):
        assert benc.decode(b"di1e1:ai2e1:be", lists=True) == ["a", "b"]
        assert benc.decode(b"di1e1:ai2e1:be") == {1: "a", 2: "b"}
        assert benc.decode(b"di1e1:ai3e1:be", lists=True) == {1: "a", 3: "b"}


def test_decoding_again_from_inside_a_garbage_collection():
    # Every allocation may start a collection; its callback decodes dicts of other shapes (and of
    # the same ones), replacing templates while the outer decode is using the cache.
    shapes = [{"a": 1, "b": [1]}, {"b": "x", "c": 2}, {"ip": "h", "port": 1, "id": 2}]
    wires = [benc.encode(s) for s in shapes]

    def collecting(phase, info):
        if phase == "start":
            for wire, shape in zip(wires, shapes):
                assert benc.decode(wire) == shape

    doc = [dict(s, n=i) for i in range(50) for s in shapes]
    wire = benc.encode(doc)
    threshold = gc.get_threshold()
    gc.callbacks.append(collecting)
    gc.set_threshold(1)
    try:
        for _ in range(5):
            assert benc.decode(wire) == doc
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(collecting)


def test_guessed_keys_that_differ_from_the_last_dict_at_that_depth():
    # Each dict's keys are first compared with the wire form of the last dict's keys at its depth;
    # every way of differing from that guess must read the real keys.
    first = {"ip": "h", "port": 1, "id": 2}
    variants = [
        first,
        {"ip": "h", "port": 1},                         # fewer keys
        {"ip": "h", "port": 1, "id": 2, "zz": 3},       # more keys
        {"ip": "h", "pork": 1, "id": 2},                # same length, other bytes
        {"i": "h", "port": 1, "id": 2},                 # a prefix of the guessed key
        {"ipp": "h", "port": 1, "id": 2},               # the guessed key is a prefix of it
        {"id": 2, "ip": "h", "q": 1},
        {"é": 1, "ip": "h"},                            # non-ASCII key
        {1: "int key", "ip": "h"},
    ]
    for _ in range(3):
        for doc in variants:
            for wrapped in (doc, [doc, doc], {"x": doc, "y": [doc]}):
                assert benc.decode(benc.encode(wrapped)) == wrapped
                assert benc.decode(benc.encode(wrapped), raw=True) == _as_raw(wrapped)
    for _ in range(3):
        assert benc.decode(b"d2:ip1:h4:porti1e2:idi2ee") == first
        assert benc.decode(b"d02:ip1:h4:porti1e2:idi2ee") == first     # a leading zero in a length
        with pytest.raises(DecodeError, match="duplicate dict key 'ip'"):
            benc.decode(b"d2:ip1:h2:ipi1ee")
        with pytest.raises(DecodeError):
            benc.decode(b"d2:ip1:h4:por")                          # cut inside a guessed key
    assert benc.decode(b"d2:\xff\xfei1ee") == {b"\xff\xfe": 1}
    assert benc.decode(b"d2:\xff\xfei1ee") == {b"\xff\xfe": 1}
    assert benc.decode(b"d2:\xff\xfei1ee", raw=True) == {b"\xff\xfe": 1}


def _as_raw(value):
    if isinstance(value, dict):
        return {_as_raw(k): _as_raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_raw(v) for v in value]
    return value.encode() if isinstance(value, str) else value

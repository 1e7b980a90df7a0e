"""splay.misc: every function, with the manual's examples."""
import time

import pytest

from splay import SplayError, misc


def test_manual_dup_example():
    a = {"s": "hello"}
    b = a
    b["s"] = "world"
    assert a["s"] == "world"
    a = {"s": "hello"}
    b = misc.dup(a)
    b["s"] = "world"
    assert a["s"] == "hello"


def test_dup_is_deep_and_keeps_sharing_and_cycles():
    inner = [1, 2]
    a = {"x": inner, "y": inner, "t": (inner, 3), "s": {1, 2}}
    a["self"] = a
    b = misc.dup(a)
    assert b["x"] is b["y"] and b["x"] is not inner and b["self"] is b
    assert b["t"][0] is b["x"] and b["s"] == {1, 2} and b["s"] is not a["s"]
    obj = object()
    assert misc.dup(obj) is obj and misc.dup(5) == 5


def test_manual_size_isize_example():
    # a = {"a", "b", "c"}; a[2] = nil  ->  a Python list with a None hole
    a = ["a", "b", "c"]
    assert misc.isize(a) == 3 and misc.size(a) == 3
    a[1] = None
    assert misc.isize(a) == 3      # the biggest index
    assert misc.size(a) == 2       # nil is not an element
    # a = {1 = "a", 3 = "c", key = "val", key2 = "val2"}
    t = {1: "a", 3: "c", "key": "val", "key2": "val2"}
    assert misc.isize(t) == 3
    assert misc.size(t) == 4
    assert misc.isize([]) == 0 and misc.isize({"k": 1}) == 0 and misc.isize([None]) == 0


def test_equal():
    assert misc.equal({"a": [1, {"b": 2}]}, {"a": (1, {"b": 2})})
    assert not misc.equal({"a": 1}, {"a": 1, "b": 2})
    assert not misc.equal([1], {0: 1})
    assert not misc.equal([1, 2], [1])
    assert misc.equal(3, 3.0) and not misc.equal("a", b"a")
    assert misc.equals is misc.equal


def test_split():
    assert misc.split("a b  c") == ["a", "b", "c"]
    assert misc.split("1.2.3", ".") == ["1", "2", "3"]
    assert misc.split("a,b;c", ",;") == ["a", "b", "c"]
    assert misc.split(b"x:y", b":") == [b"x", b"y"]
    assert misc.split("", ",") == []
    with pytest.raises(ValueError):
        misc.split("abc", "")


def test_random_pick():
    assert misc.random_pick([]) is None
    assert misc.random_pick([], 3) == []
    assert misc.random_pick(["only"]) == "only"
    items = list(range(20))
    for _ in range(20):
        picked = misc.random_pick(items, 5)
        assert len(picked) == 5 and len(set(picked)) == 5 and set(picked) <= set(items)
    assert sorted(misc.random_pick(items, 50)) == items
    assert misc.random_pick({"a": 1}) == 1
    with pytest.raises(ValueError):
        misc.random_pick(items, -1)


def test_shuffle():
    a = list(range(50))
    s = misc.shuffle(a)
    assert sorted(s) == a and a == list(range(50)) and s is not a


def test_time():
    t = misc.time()
    assert isinstance(t, float) and abs(t - time.time()) < 5
    assert any(misc.time() % 1 for _ in range(3))       # sub-second resolution


def test_between_c():
    assert misc.between_c(5, 2, 8)
    assert not misc.between_c(2, 2, 8) and not misc.between_c(8, 2, 8)
    assert misc.between_c(9, 8, 2) and misc.between_c(1, 8, 2) and misc.between_c(0, 8, 2)
    assert not misc.between_c(5, 8, 2)
    assert not misc.between_c(3, 4, 4)      # SPLAY's (a, a) is empty


def test_gen_string():
    assert misc.gen_string(3) == "aaa"
    assert misc.gen_string(2, "ab") == "abab"
    assert misc.gen_string("ab", 2) == "abab"      # the old argument order
    assert misc.gen_string(0) == ""
    with pytest.raises(ValueError):
        misc.gen_string(-1)


def test_merge():
    assert misc.merge([1, 2], [3]) == [1, 2, 3]
    assert misc.merge([1], [2], [3, 4]) == [1, 2, 3, 4]
    assert misc.merge({"a": 1}, {"a": 2, "b": 3}) == {"a": 1, "b": 3}
    assert misc.merge(["x"], {"k": 1}) == {0: "x", "k": 1}
    assert misc.merge(None, [1]) == [1] and misc.merge({}, {"a": 1}) == {"a": 1}
    t = {"a": [1]}
    merged = misc.merge(t, None)
    assert merged == t and merged is not t


def test_hash_ascii_to_byte():
    assert misc.hash_ascii_to_byte("41ff") == b"A\xff"
    assert misc.hash_ascii_to_byte(b"00") == b"\x00"
    assert len(misc.hash_ascii_to_byte("ab" * 20)) == 20
    with pytest.raises(ValueError, match="even"):
        misc.hash_ascii_to_byte("abc")


def test_assert_function_and_object():
    def lookup(k):
        return {"a": 1}.get(k)

    def lua_style(ok):
        return (True, "fine") if ok else (None, "not found")
    assert misc.assert_function(lookup)("a") == 1
    with pytest.raises(AssertionError):
        misc.assert_function(lookup)("b")
    with pytest.raises(AssertionError, match="not found"):
        misc.assert_function(lua_style)(False)
    assert misc.assert_function(lua_style)(True) == (True, "fine")

    class Store:
        limit = 3

        def get(self, k):
            return {"a": 1}.get(k)
    s = misc.assert_object(Store())
    assert s.get("a") == 1 and s.limit == 3
    with pytest.raises(AssertionError):
        s.get("zzz")


def test_convert_base():
    assert misc.convert_base(255) == "FF"
    assert misc.convert_base("255") == "FF"
    assert misc.convert_base("ff", 16, 2) == "11111111"
    assert misc.convert_base("11111111", 2, 10) == "255"
    assert misc.convert_base(0) == "0"
    assert misc.convert_base("Z", 36, 10) == "35"
    assert misc.convert_base(-10, 10, 2) == "-1010"
    with pytest.raises(ValueError, match="2 to 36"):
        misc.convert_base(5, 10, 1)
    with pytest.raises(ValueError):
        misc.convert_base("12", 2, 10)


def test_table_keyset():
    assert misc.table_keyset({"a": 1, "b": None, 3: 0}) == ["a", 3]
    assert misc.table_keyset(["x", None, "z"]) == [0, 2]


def test_manual_try_throw_example(capsys):
    try_, throw = misc.try_, misc.throw
    assert getattr(misc, "try") is misc.try_

    def body():
        print("start of my function")
        throw("runtime", "division by 0")
        print("end of my function")
    try_(body, {
        "div_by_0": lambda value: print("Division by 0"),
        "runtime": lambda value: print("*runtime*", value),
        "another_exception": lambda: print("not used"),
    })
    assert capsys.readouterr().out == "start of my function\n*runtime* division by 0\n"


def test_try_semantics():
    calls = []
    assert misc.try_(lambda: 42, {}, lambda: calls.append("finally")) == 42
    with pytest.raises(misc.Thrown) as info:
        misc.try_(lambda: misc.throw("other", 1), {"runtime": print},
                  lambda: calls.append("finally"))
    assert info.value.name == "other" and info.value.value == 1
    assert isinstance(info.value, SplayError)
    with pytest.raises(ZeroDivisionError):
        misc.try_(lambda: 1 / 0, {"runtime": print})
    assert misc.try_(lambda: 1 / 0, {ZeroDivisionError: lambda e: "caught"}) == "caught"
    assert misc.try_(lambda: misc.throw("x", 5), lambda name, value: (name, value)) == ("x", 5)
    assert calls == ["finally", "finally"]

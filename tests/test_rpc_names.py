"""splay.rpc_core.names: call names parsed without eval, resolved in a closed namespace."""
import os
import os.path
import pathlib
import shutil
from os import system

import pytest

from splay.rpc_core.names import MISSING, NameError_, parse_path, resolve
from splay.rpc_core.dispatch import Dispatcher
from splay.rpc_core.namespace import ServedNamespace, for_server
from splay import log


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("name, steps", [
    ("f", (("name", "f"),)),
    ("a.b.c", (("name", "a"), ("name", "b"), ("name", "c"))),
    ("t['k']", (("name", "t"), ("key", "k"))),
    ('t["k"]', (("name", "t"), ("key", "k"))),
    ("lst[0]", (("name", "lst"), ("index", 0))),
    ("lst[-1]", (("name", "lst"), ("index", -1))),
    ("a.b[2].c", (("name", "a"), ("name", "b"), ("index", 2), ("name", "c"))),
    ("t[ 'a b' ]", (("name", "t"), ("key", "a b"))),
    (r"t['it\'s']", (("name", "t"), ("key", "it's"))),
    ("m[1][2]", (("name", "m"), ("index", 1), ("index", 2))),
])
def test_parse_path(name, steps):
    assert parse_path(name) == steps


@pytest.mark.parametrize("name", [
    "", ".a", "a.", "a..b", "[0]", "a[", "a[0", "a['k'", "a[k]", "a b", "a()", "a;b",
    "__import__('os')", "a[1+1]", "1a", "a.1", "a[0]b", "f(x)", "a-b", "lambda: 0",
])
def test_parse_path_refuses_anything_else(name):
    with pytest.raises(NameError_):
        parse_path(name)


@pytest.mark.parametrize("name", [None, 3, b"f", ["f"]])
def test_parse_path_needs_a_string(name):
    with pytest.raises(NameError_, match="non-empty string"):
        parse_path(name)


# ------------------------------------------------------------------ resolution

class Obj:
    value = 7

    def method(self):
        return "m"


def own_function():
    return "own"


NS = {
    "__name__": __name__,
    "f": own_function,
    "var": 5,
    "lst": [10, 20, [30, 40]],
    "tbl": {"key": "value", "nested": {"k": 1}, 3: "three", "fn": own_function},
    "obj": Obj(),
    "os": os,
    "system": system,
    "rmtree": shutil.rmtree,
    "path": pathlib.Path("."),
    "Obj": Obj,
    "_secret": 1,
    "upper": "abc".upper,
    "mods": [os],
    "str_join": str.join,
}


@pytest.mark.parametrize("name, expected", [
    ("var", 5),
    ("lst[0]", 10),
    ("lst[-1]", [30, 40]),
    ("lst[2][1]", 40),
    ("tbl.key", "value"),
    ("tbl['key']", "value"),
    ('tbl["nested"]["k"]', 1),
    ("tbl.nested.k", 1),
    ("tbl[3]", "three"),
    ("obj.value", 7),
])
def test_resolve_values(name, expected):
    assert resolve(NS, name, __name__) == expected


def test_resolve_functions_and_methods():
    assert resolve(NS, "f", __name__) is own_function
    assert resolve(NS, "tbl.fn", __name__) is own_function
    assert resolve(NS, "obj.method", __name__)() == "m"


@pytest.mark.parametrize("name", ["missing", "lst[9]", "tbl.nope", "tbl['nope']", "obj.nope",
                                  "var.x", "var[0]", "lst.x", "tbl.get"])
def test_missing_steps_read_as_missing(name):
    # a dot on a dict is a key lookup, so "tbl.get" is the missing key "get", not dict.get
    assert resolve(NS, name, __name__) is MISSING


@pytest.mark.parametrize("name", [
    "_secret", "__name__", "obj.__class__", "f.__globals__", "f.__code__", "tbl['__class__']",
    "os", "os.system", "os.path", "mods[0]", "mods[0].system", "system", "rmtree", "path.unlink",
    "Obj", "Obj.value", "upper", "str_join", "lst.append", "obj.__init__",
    "f.__globals__['os']",
])
def test_unreachable(name):
    with pytest.raises(NameError_, match="not reachable"):
        resolve(NS, name, __name__)


def test_explicit_namespace_object_serves_its_attributes():
    class Api:
        def hello(self, who):
            return "hello " + who
        _hidden = 1
    api = Api()
    assert resolve(api, "hello")("x") == "hello x"
    with pytest.raises(NameError_):
        resolve(api, "_hidden")


def test_explicit_namespace_serves_functions_from_other_modules():
    # the application chose them one by one (own_module None), but C functions stay refused
    ns = {"join": os.path.join, "system": os.system}
    assert resolve(ns, "join") is os.path.join
    with pytest.raises(NameError_):
        resolve(ns, "system")


# ------------------------------------------------------------------ the dispatcher

def dispatcher(ns, own=None):
    quiet = log.new(5)
    return Dispatcher(ServedNamespace(ns, own), quiet)


def test_dispatch_conventions():
    d = dispatcher({"pair": lambda: (1, 2), "none": lambda: None, "v": 3,
                    "boom": lambda: 1 / 0, "add": lambda a, b: a + b})
    assert d.run_call(["pair"]) == (True, [1, 2])
    assert d.run_call("none") == (True, [None])
    assert d.run_call("v") == (True, [3])
    assert d.run_call("missing") == (True, [None])
    assert d.run_call(["v", 1]) == (False, "calling a variable with parameters")
    assert d.run_call(["missing", 1]) == (False, "calling a variable with parameters")
    assert d.run_call(["boom"]) == (False, "ZeroDivisionError: division by zero")
    assert d.run_call({1: "add", 2: 1, 3: 2}) == (True, [3])           # Lua table form
    assert d.run_call({1: "add", 3: 2})[0] is False                    # a nil argument
    for bad in ([], {}, 3, None, [3], ["a b"], {"x": 1}):
        ok, msg = d.run_call(bad)
        assert ok is False and msg


def test_dispatch_replies_per_mode():
    d = dispatcher({"f": lambda: "x"})
    assert d.answer_rpc({"type": "call", "call": ["f"]}) == ["x"]
    assert d.answer_rpc({"type": "ping"}) is True
    failed = d.answer_rpc({"type": "call", "call": ["f", 1]})
    assert list(failed) == ["error"] and failed["error"].startswith("TypeError: ")
    assert "error" in d.answer_rpc({"type": "exec", "code": "1"})
    assert "error" in d.answer_rpc(["not", "a", "dict"])
    assert d.answer_rpcq({"type": "call", "call": ["f"], "n": 4}) == {"reply": ["x"], "n": 4}
    assert d.answer_rpcq({"type": "ping", "n": 5}) == {"reply": True, "n": 5}
    assert d.answer_rpcq({"type": "call", "call": ["g", 1], "n": 6}) == \
        {"n": 6, "error": "calling a variable with parameters"}
    assert d.answer_urpc({"type": "call", "call": ["f"], "key": "k"}) == \
        {"type": "call", "call": ["x"], "key": "k", "reply": True}
    assert d.answer_urpc({"type": "call", "call": ["g", 1], "key": "k"}) == \
        {"type": "call", "key": "k", "reply": True, "error": "calling a variable with parameters"}


def test_default_namespace_is_main_outside_nodes():
    import sys
    served = for_server()
    assert served.root is sys.modules["__main__"].__dict__
    explicit = for_server({"a": 1})
    assert explicit.own_module is None and isinstance(explicit.root, dict)

"""splayc.rpc_answer: the compiled dispatch gives exactly the Python dispatcher's reply."""
import os

import pytest

from splay import log
from splay.rpc_core.dispatch import Dispatcher
from splay.rpc_core.namespace import ServedNamespace, for_server
from splayc.rpc_answer import compiled_answer
from splayc.rpcstats import MeasuredAnswer, default_stats


def concat(a, b):
    return a + b


def pair():
    return 1, "two"


def nothing():
    return None


def boom(x):
    raise KeyError(x)


class Thing:
    def method(self):
        return "m"


NAMESPACE = {"concat": concat, "pair": pair, "nothing": nothing, "boom": boom, "var": 7,
             "_hidden": concat, "thing": Thing(), "table": {"f": concat}, "builtin": os.getpid}

REQUESTS = [
    {"type": "call", "call": ["concat", "one", "two"], "n": 1},
    {"type": "call", "call": ["pair"], "n": 2},
    {"type": "call", "call": ["nothing"], "n": 3},
    {"type": "call", "call": ["boom", "k"], "n": 4},
    {"type": "call", "call": ["concat", "too few"], "n": 5},
    {"type": "call", "call": ["var"], "n": 6},
    {"type": "call", "call": ["var", 1], "n": 7},
    {"type": "call", "call": ["missing"], "n": 8},
    {"type": "call", "call": ["_hidden", "a", "b"], "n": 9},
    {"type": "call", "call": ["thing.method"], "n": 10},
    {"type": "call", "call": ["table.f", "a", "b"], "n": 11},
    {"type": "call", "call": ["builtin"], "n": 12},
    {"type": "call", "call": [], "n": 13},
    {"type": "call", "call": [42], "n": 14},
    {"type": "call", "call": "concat", "n": 15},
    {"type": "call", "call": {1: "concat", 2: "a", 3: "b"}, "n": 16},
    {"type": "call", "call": ["ünïcode"], "n": 17},
    {"type": "ping", "n": 18},
    {"type": "other", "n": 19},
    {"type": b"call", "call": ["concat", "a", "b"], "n": 20},
    {"call": ["concat", "a", "b"], "n": 21},
]


def dispatcher(namespace=NAMESPACE, own_module=None):
    served = ServedNamespace(namespace, own_module) if own_module else for_server(namespace)
    return Dispatcher(served, log.module_logger("rpcq"))


@pytest.mark.parametrize("mode", ["rpc", "rpcq", "urpc"])
@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: repr(r.get("call", r.get("type"))))
def test_compiled_answer_equals_the_python_dispatcher(mode, request_):
    d = dispatcher()
    python = getattr(d, "answer_" + mode)(dict(request_))
    assert compiled_answer(mode, d)(dict(request_)) == python
    assert MeasuredAnswer(mode, getattr(d, "answer_" + mode), d)(dict(request_)) == python


def test_compiled_answer_rpc_request_without_number_is_the_dispatchers():
    d = dispatcher()
    request = {"type": "call", "call": ["concat", "a", "b"]}
    assert compiled_answer("rpc", d)(dict(request)) == ["ab"]
    assert compiled_answer("urpc", d)(dict(request)) == d.answer_urpc(dict(request))


@pytest.mark.parametrize("bad", [None, 5, "text", ["concat"], b"bytes"])
def test_compiled_answer_non_dict_request_is_the_dispatchers(bad):
    d = dispatcher()
    assert compiled_answer("rpc", d)(bad) == d.answer_rpc(bad)


def test_compiled_answer_serves_only_the_applications_own_functions():
    # the default namespace (an application module) serves only functions it defines
    foreign = dict(NAMESPACE, join=os.path.join)
    d = dispatcher(foreign, own_module=__name__)
    for request in ({"type": "call", "call": ["join", "a", "b"], "n": 1},
                    {"type": "call", "call": ["concat", "a", "b"], "n": 2}):
        assert compiled_answer("rpcq", d)(dict(request)) == d.answer_rpcq(dict(request))
    assert compiled_answer("rpcq", d)({"type": "call", "call": ["join", "a"], "n": 1}) \
        == d.answer_rpcq({"type": "call", "call": ["join", "a"], "n": 1})
    assert "error" in d.answer_rpcq({"type": "call", "call": ["join", "a", "b"], "n": 1})


def test_compiled_answer_sees_names_added_after_the_server_started():
    namespace = {}
    answer = compiled_answer("rpcq", dispatcher(namespace))
    request = {"type": "call", "call": ["concat", "a", "b"], "n": 1}
    assert answer(dict(request)) == {"n": 1, "error": "calling a variable with parameters"}
    namespace["concat"] = concat
    assert answer(dict(request)) == {"reply": ["ab"], "n": 1}


def test_measured_answer_counts_calls_through_the_compiled_path():
    d = dispatcher()
    before = default_stats().function("rpcq", "concat").served
    answer = MeasuredAnswer("rpcq", d.answer_rpcq, d)
    answer({"type": "call", "call": ["concat", "a", "b"], "n": 1})
    answer({"type": "call", "call": ["boom", "x"], "n": 2})
    assert default_stats().function("rpcq", "concat").served == before + 1
    assert default_stats().function("rpcq", "boom").errors >= 1

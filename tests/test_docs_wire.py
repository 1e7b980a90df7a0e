"""docs/wire.md: every documented byte example is what the project's encoders produce."""
import ast
import pathlib

import pytest

from support_wire_doc import examples, names

WIRE_MD = pathlib.Path(__file__).resolve().parent.parent / "docs" / "wire.md"
EXAMPLES = examples(WIRE_MD.read_text(encoding="utf-8"))


def test_every_format_has_examples():
    text = " ".join(expression for expression, _ in EXAMPLES)
    for needle in ("benc.encode", "llenc.frame", "answer_rpc(", "answer_rpcq(", "answer_urpc(",
                   "free_message"):
        assert needle in text
    assert all(documented is not None for _, documented in EXAMPLES), \
        "an example has no '→ bytes' line after it"


@pytest.mark.parametrize("expression,documented", EXAMPLES, ids=[e for e, _ in EXAMPLES])
def test_documented_bytes_are_what_the_code_produces(expression, documented):
    assert eval(expression, names()) == ast.literal_eval(documented)


def test_the_examples_match_the_bytes_recorded_from_lua_splay():
    """The byte strings that WIRE.md recorded from Lua nodes (same key order) appear verbatim."""
    text = WIRE_MD.read_text(encoding="utf-8")
    for recorded in (r"b'40\nd4:calll6:concat3:one3:twoe4:type4:calle'", r"b'10\nl6:onetwoe'",
                     r"b'14\nd4:type4:pinge'", r"b'1\nt'"):
        assert recorded in text

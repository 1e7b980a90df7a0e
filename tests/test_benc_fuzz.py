"""A coverage-guided fuzz run of the benc decoder and the llenc parser with atheris (when it is
installed): any exception other than DecodeError, or a crash, fails the run.

The hypothesis fuzz tests in test_benc.py / test_llenc.py always run; this one adds libFuzzer's
mutation engine, seeded with valid documents.
"""
import os
import subprocess
import sys
import textwrap

import pytest

atheris = pytest.importorskip("atheris")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

HARNESS = textwrap.dedent("""
    import sys
    import atheris
    with atheris.instrument_imports():
        from splay import benc, llenc
        from splay import DecodeError

    def one_input(data):
        for raw in (False, True):
            try:
                value = benc.decode(data, raw=raw, lists=raw)
            except DecodeError:
                continue
            benc.encode(value)           # whatever decodes must encode again
        parser = llenc.BlockParser(max_length=4096)
        try:
            parser.feed(data)
        except DecodeError:
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
""")

SEEDS = [b"d4:calll6:concat3:one3:twoe4:type4:calle", b"di1ei1ei3ei3ee", b"li-0ei3.14ei1e+20etfne",
         b"d5:replyl2:abe1:ni7ee", b"14\nd4:type4:pinge", b"l" * 50 + b"e" * 50, b"3:\xff\xfe\x00"]


def test_atheris_fuzz_run_finds_only_decode_errors(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(seed)
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    result = subprocess.run(
        [sys.executable, str(harness), "-runs=30000", "-max_len=256", "-timeout=10",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 30000 runs" in result.stderr

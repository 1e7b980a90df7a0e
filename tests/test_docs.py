"""Every ```python block of docs/*.md and README.md runs as it is (in its own process).

A block that must not run (it needs a deployment, or shows a fragment) is fenced as
```python no-run instead.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)


def blocks():
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    for f in files:
        text = f.read_text()
        for i, m in enumerate(FENCE.finditer(text)):
            line = text.count("\n", 0, m.start()) + 1
            yield pytest.param(m.group(1), id=f"{f.name}:{line}")


@pytest.mark.parametrize("code", list(blocks()))
def test_doc_example_runs(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"the example failed:\n{code}\n--- stderr:\n{p.stderr[-3000:]}"

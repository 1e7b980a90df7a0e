"""--seed: every node's random is seeded from the run seed and the node's position."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from splay.sim import seeding

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)
ENV.pop(seeding.SEED_ENV, None)
LIVENESS = 60   # seconds: generous, only a hung test ever waits this long

APP = """\
import random
from splay.base import *
print("draw", job.position, random.random(), misc.random_pick([1, 2, 3, 4, 5, 6, 7, 8]))
"""


def test_node_seed_depends_on_seed_and_position_only():
    assert seeding.node_seed(1, 0) == seeding.node_seed(1, 0)
    seeds = {seeding.node_seed(s, p) for s in (1, 2) for p in range(50)}
    assert len(seeds) == 100
    assert 0 <= seeding.node_seed(7, 3) < 2 ** 64


def test_a_seed_that_is_not_an_integer_is_refused():
    with pytest.raises(ValueError, match=r"a seed is an integer \(e\.g\. --seed 1\), got 'abc'"):
        seeding.parse_seed("abc")


def _draws(tmp_path, *extra):
    app = tmp_path / "draw.py"
    app.write_text(APP)
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", "3", *extra],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS)
    assert out.returncode == 0, out.stderr
    return sorted(re.findall(r"draw (\d) (\S+) (\d)", out.stdout))


def test_a_seeded_run_draws_the_same_numbers_every_time(tmp_path):
    first = _draws(tmp_path, "--seed", "42")
    assert len(first) == 3
    assert first == _draws(tmp_path, "--seed", "42")
    assert len({value for _, value, _ in first}) == 3       # each node its own stream
    assert first != _draws(tmp_path, "--seed", "43")


def test_a_bad_seed_on_the_command_line_is_an_error(tmp_path):
    app = tmp_path / "draw.py"
    app.write_text(APP)
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", "1", "--seed", "x"],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS)
    assert out.returncode == 2 and "--seed" in out.stderr and "invalid int value" in out.stderr


def test_seed_with_in_process_is_refused_with_the_reason(tmp_path):
    app = tmp_path / "draw.py"
    app.write_text(APP)
    out = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "-n", "2", "--seed", "1",
                          "--in-process"],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=LIVENESS)
    assert out.returncode == 2, out.stderr
    assert "--in-process nodes share one process's random" in out.stderr

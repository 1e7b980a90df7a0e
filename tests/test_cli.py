"""The `splay` command itself: with no arguments it lists its commands, --version says which
pysplay runs, an unknown command is refused."""
import os
import subprocess
import sys

from splay.cli import SUBCOMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))


def splay(*args):
    return subprocess.run([sys.executable, "-m", "splay.cli", *args], capture_output=True,
                          text=True, timeout=30, env=ENV)


def test_no_arguments_lists_every_command():
    result = splay()
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"  {name} " in result.stdout


def test_version_names_the_package_and_python():
    from importlib import metadata
    try:
        expected = f"pysplay {metadata.version('pysplay')} (Python "
    except metadata.PackageNotFoundError:         # a source checkout run without installing
        expected = "pysplay (not installed: run 'make setup' or 'pip install .') (Python "
    result = splay("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(expected)


def test_an_unknown_command_is_refused_with_the_list():
    result = splay("frobnicate")
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
    assert "submit" in result.stderr

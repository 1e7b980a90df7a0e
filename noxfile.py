"""Sessions per CPython version (the interpreters under pyenv here: 3.11, 3.12, 3.13).

    nox -s tests-3.11             the whole suite
    nox -s smoke-3.12 smoke-3.13  the smoke suite (what `make test` adds on the other versions)

Each session compiles the core in place for its interpreter (``splayc/*.cpython-3XX-*.so`` beside
the other versions' builds; the Cython-generated C is shared), once: later runs rebuild only what
changed. The tests import ``splay`` and ``splayc`` from the checkout, as on 3.11.
"""
import glob
import os

import nox

# pyenv's shims answer python3.12 only for the versions enabled in the shell: put the installed
# interpreters' own directories first, so that nox finds every version.
_PYENV = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[123].*/bin")))
os.environ["PATH"] = os.pathsep.join(_PYENV + [os.environ.get("PATH", "")])

VERSIONS = ["3.11", "3.12", "3.13"]
BUILD = ["setuptools>=64", "wheel", "Cython>=3.0", "greenlet>=3.0,<4"]
# What the smoke suite needs (the whole suite uses the test extra of pyproject.toml).
SMOKE_DEPS = ["pytest>=7", "pytest-timeout", "psutil", "hypothesis"]
# One test module per layer: scheduler, locks, sockets, codecs, RPC, the launcher with a
# multi-file application, and the pytest plugin (the codecs are exercised through RPC; the benc
# tests need oracle libraries the smoke venvs do not install); about a minute per version.
SMOKE = ["tests/test_events.py", "tests/test_events_locks.py", "tests/test_socket_tcp.py",
         "tests/test_socket_udp.py", "tests/test_llenc.py",
         "tests/test_rpc.py", "tests/test_app_files.py", "tests/test_pytest_plugin.py",
         "tests/test_cli.py"]

nox.options.reuse_existing_virtualenvs = True


def build_core(session):
    """Install the build requirements and compile the core in place (incrementally)."""
    session.install(*BUILD)
    session.run("python", "setup.py", "-q", "build_ext", "--inplace", "--parallel", str(os.cpu_count() or 1),
                silent=True)          # the extensions compile side by side: CI time


@nox.session(python=VERSIONS)
def tests(session):
    """The whole test suite on one version."""
    build_core(session)
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=VERSIONS)
def smoke(session):
    """The smoke suite on one version (see SMOKE)."""
    build_core(session)
    session.install(*SMOKE_DEPS)
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMOKE, *session.posargs)

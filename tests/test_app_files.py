"""Applications of several files (splay.app_files): what is shipped, bad inputs, and two-file
applications run by `splay run` in both modes (one process per node, --in-process)."""
import os
import subprocess
import sys
import zipfile

import pytest

from splay import app_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))

MAIN = '''
import sys
from splay.base import *
import greeting
def main():
    print(greeting.hello(job.position), *sys.argv[1:])
    events.exit()
events.run(main)
'''
GREETING = '''
def hello(position):
    return f"hello from node {position}"
'''


def two_file_app(directory, main_name="__main__.py"):
    """A directory with a main file that imports a module beside it; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    for name, text in ((main_name, MAIN), ("greeting.py", GREETING)):
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    return str(directory)


def splay_run(*args):
    return subprocess.run([sys.executable, "-m", "splay.cli", "run", *map(str, args)],
                          capture_output=True, text=True, timeout=60, env=ENV)


def test_a_file_ships_the_sibling_modules_it_imports_and_nothing_else(tmp_path):
    two_file_app(tmp_path, "app.py")
    (tmp_path / "unrelated.py").write_text("x = 1\n")
    app = app_files.load(str(tmp_path / "app.py"))
    assert app.main == "app.py" and sorted(app.files) == ["app.py", "greeting.py"]


def test_a_file_that_does_not_parse_is_shipped_for_the_node_to_report(tmp_path):
    (tmp_path / "app.py").write_text("def broken(:\n")
    assert list(app_files.load(str(tmp_path / "app.py")).files) == ["app.py"]


def test_the_chord_example_ships_its_demo_module():
    app = app_files.load(os.path.join(ROOT, "examples", "chord.py"))
    assert sorted(app.files) == ["chord.py", "chord_demo.py"]


def test_a_directory_and_a_zip_ship_every_file_and_round_trip(tmp_path):
    directory = two_file_app(tmp_path / "app")
    os.makedirs(tmp_path / "app" / "__pycache__")
    (tmp_path / "app" / "__pycache__" / "greeting.cpython-311.pyc").write_bytes(b"\0")
    app = app_files.load(directory)
    assert sorted(app.files) == ["__main__.py", "greeting.py"]
    archive = tmp_path / "app.zip"
    archive.write_bytes(app.archive())
    from_zip = app_files.load(str(archive))
    assert from_zip.files == app.files
    decoded = app_files.decode(app.encoded(), app.main)
    main = app_files.unpack(decoded, str(tmp_path / "out"))
    assert open(main).read() == MAIN


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("no_main_dir", "has no __main__.py"),
    ("no_main_zip", "has no __main__.py at its top"),
    ("too_big", "more than the"),
])
def test_bad_applications_say_what_is_wrong(tmp_path, case, message):
    if case == "missing":
        path = tmp_path / "nothere.py"
    elif case == "no_main_dir":
        path = tmp_path / "dir"
        path.mkdir()
        (path / "greeting.py").write_text(GREETING)
    elif case == "no_main_zip":
        path = tmp_path / "app.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("greeting.py", GREETING)
    elif case == "too_big":
        path = tmp_path / "dir"
        path.mkdir()
        (path / "__main__.py").write_text("print(1)\n")
        (path / "data.bin").write_bytes(b"\0" * (app_files.MAX_APP_BYTES + 1))
    with pytest.raises(app_files.AppError, match=message):
        app_files.load(str(path))
    result = splay_run(path, "-n", 1)      # `splay run` refuses it with the same message
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("encoded, main, message", [
    ("%%%", "__main__.py", "not valid base64"),
    ("aGVsbG8=", "__main__.py", "not a zip archive"),
    (None, "other.py", "is not a file of the bundle"),
])
def test_bad_bundles_are_refused(tmp_path, encoded, main, message):
    if encoded is None:
        encoded = app_files.load(two_file_app(tmp_path / "app")).encoded()
    with pytest.raises(app_files.AppError, match=message):
        app_files.decode(encoded, main)


@pytest.mark.parametrize("mode", [[], ["--in-process"]])
@pytest.mark.parametrize("form", ["directory", "zip", "file"])
def test_splay_run_runs_a_two_file_application(tmp_path, mode, form):
    directory = two_file_app(tmp_path / "app", "app.py" if form == "file" else "__main__.py")
    path = {"directory": directory, "file": os.path.join(directory, "app.py")}.get(form)
    if form == "zip":
        path = tmp_path / "app.zip"
        path.write_bytes(app_files.load(directory).archive())
    result = splay_run(path, "-n", 2, "--log", tmp_path / "run.log", *mode, "--", "ARG")
    assert result.returncode == 0, result.stderr
    for i in range(2):
        assert f"[node {i}] hello from node {i} ARG" in result.stdout


def test_a_sandboxed_node_imports_the_modules_shipped_with_its_file(tmp_path):
    directory = two_file_app(tmp_path / "app", "app.py")
    result = splay_run(os.path.join(directory, "app.py"), "-n", 2, "--sandbox",
                       "--node-dirs", tmp_path / "nodes", "--log", tmp_path / "run.log")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[node 1] hello from node 1" in result.stdout

"""The application ``splay submit --maelstrom`` ships: the adapter's launcher and the node's code.

A deployed Maelstrom job is an ordinary directory application (:mod:`splay.app_files`):

* ``__main__.py``, a launcher that runs :mod:`splay.maelstrom.adapter` (installed with pysplay
  on every daemon) with ``home=`` set to the unpacked directory;
* for ``--app FILE``: the file and the modules beside it that it imports;
* for ``--bin PROGRAM``: every word of the command line that names a file here (the program, a
  script given to an interpreter), under its base name; other words (``python3``, flags) are
  passed as they are and must make sense on the daemons' hosts.

The adapter resolves the shipped names against ``home=``.
"""
import os
import shlex

from splay import app_files

LAUNCHER = '''"""One node of a deployed Maelstrom job (written by splay submit --maelstrom): runs the
adapter of splay.maelstrom with this directory as the home of the shipped files."""
import os
import runpy
import sys

sys.argv.append("home=" + os.path.dirname(os.path.abspath(__file__)))
runpy.run_module("splay.maelstrom.adapter", run_name="__main__", alter_sys=True)
'''


#: The file, in a deployed node's directory, that tells its adapter where the program the daemon
#: started for it listens (``splayd --maelstrom-programs``, :mod:`splay.maelstrom.programs`).
BRIDGE_FILE = "maelstrom-program.json"


class BundleError(ValueError):
    """The node's code cannot be shipped; says what is wrong."""


def app_files_of(app_path):
    """``(files, name)``: the files of a ``--app`` application and the name of its main file."""
    try:
        app = app_files.load(os.path.abspath(app_path))
    except app_files.AppError as e:
        raise BundleError(str(e)) from None
    if os.path.isdir(app_path) or app.main == app_files.MAIN:
        raise BundleError(f"--app {app_path!r}: give the .py file that creates the "
                          "splay.maelstrom.Node (a directory or a __main__.py would clash with "
                          "the adapter's launcher)")
    return dict(app.files), app.main


def program_files_of(command):
    """``(files, command)``: the files a ``--bin`` command line names and the command line
    rewritten to their shipped names."""
    words = shlex.split(command)
    if not words:
        raise BundleError("--bin is empty: give the Maelstrom program (e.g. ./mynode)")
    files, shipped_words = {}, []
    for word in words:
        if os.path.isfile(word):
            name = os.path.basename(word)
            if name in files or name == app_files.MAIN:
                raise BundleError(f"--bin {command!r}: two files named {name!r} (or one named "
                                  f"{app_files.MAIN}); rename one")
            with open(word, "rb") as f:
                files[name] = f.read()
            shipped_words.append(name)
        else:
            shipped_words.append(word)
    if not files:
        raise BundleError(f"--bin {command!r} names no file to ship: give the program's path "
                          "(e.g. ./mynode or python3 mynode.py)")
    return files, shlex.join(shipped_words)


def write(directory, app=None, command=None):
    """Write the deployed application into ``directory``; returns the node argument naming the
    code (``app=NAME`` or ``bin=COMMAND``). BundleError when it cannot be shipped."""
    if app is not None:
        files, name = app_files_of(app)
        argument = f"app={name}"
    else:
        files, rewritten = program_files_of(command)
        argument = f"bin={rewritten}"
    files[app_files.MAIN] = LAUNCHER.encode()
    for name, data in files.items():
        path = os.path.join(directory, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return argument

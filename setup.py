"""Build the compiled core: every ``splayc/<name>.pyx`` becomes the extension ``splayc.<name>``.

``SPLAYC_ONLY=hub,benc python setup.py build_ext --inplace`` builds a subset (handy while working on
one module). Every module links libuv (Debian ``libuv1-dev``) and sees greenlet's header, which
greenlet ships inside its package directory (there is no ``greenlet.get_include()``).
"""
import glob
import os

import greenlet
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def extensions():
    only = {n for n in os.environ.get("SPLAYC_ONLY", "").split(",") if n}
    exts = []
    for path in sorted(glob.glob(os.path.join(HERE, "splayc", "*.pyx"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if only and name not in only:
            continue
        exts.append(Extension(
            f"splayc.{name}",
            [os.path.relpath(path, HERE)],
            include_dirs=[os.path.dirname(greenlet.__file__), os.path.join(HERE, "csrc")],
            libraries=["uv"],
            extra_compile_args=["-O2", "-Wno-unused-function", "-Wno-unreachable-code"],
        ))
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        include_path=[HERE],
        nthreads=int(os.environ.get("SPLAYC_JOBS", "0")) or None,
    ),
)

"""Builds the compiled core; everything else is declared in pyproject.toml.

FASTMW_NO_EXTENSIONS=1 builds a pure-Python package. FASTMW_CYTHON_TRACE=1
builds with line tracing (for coverage); FASTMW_ANNOTATE=1 writes the HTML
annotation next to the .pyx. FASTMW_CFLAGS adds compiler flags (sanitizers).
"""

import os
import platform
import shlex

from setuptools import Extension, setup

TRUTHY = {"1", "true", "yes", "on"}


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def extensions() -> list:
    if flag("FASTMW_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        return []
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "embedsignature": True,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
    }
    macros = []
    if flag("FASTMW_CYTHON_TRACE"):
        directives.update(linetrace=True, binding=True)
        macros.append(("CYTHON_TRACE", "1"))
    extra = shlex.split(os.environ.get("FASTMW_CFLAGS", ""))
    core = Extension(
        "fastmw._core",
        ["src/fastmw/_core.pyx"],
        define_macros=macros,
        extra_compile_args=extra,
        extra_link_args=extra,
    )
    return cythonize([core], compiler_directives=directives, annotate=flag("FASTMW_ANNOTATE"))


setup(ext_modules=extensions())

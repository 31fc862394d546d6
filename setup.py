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
# cythonize only compares timestamps, so after switching FASTMW_CYTHON_TRACE a stale
# _core.c would be reused: a plain build would ship traced (slow) C, a trace build
# untraced C (coverage sees no lines). The last mode is recorded here to force a
# regeneration on a switch. The C must stay next to the .pyx: Cython.Coverage looks there.
MODE_FILE = os.path.join("build", "fastmw-cython-mode")


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def mode_changed(mode: str) -> bool:
    """Record the Cython build mode; True when it differs from the previous build's."""
    try:
        with open(MODE_FILE) as f:
            previous = f.read().strip()
    except OSError:
        previous = ""
    if previous != mode:
        os.makedirs(os.path.dirname(MODE_FILE), exist_ok=True)
        with open(MODE_FILE, "w") as f:
            f.write(mode)
    return previous not in ("", mode)


def extensions() -> list:
    if flag("FASTMW_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        return []
    from Cython.Build import cythonize

    # The kernels index only inside loops bounded by the sequence length and never
    # with negative indices (audited), so bounds and wraparound checks are dead weight.
    directives = {
        "language_level": 3,
        "embedsignature": True,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "auto_pickle": False,
    }
    macros = []
    trace = flag("FASTMW_CYTHON_TRACE")
    if trace:
        directives.update(linetrace=True, binding=True)
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    extra = shlex.split(os.environ.get("FASTMW_CFLAGS", ""))
    core = Extension(
        "fastmw._core",
        ["src/fastmw/_core.pyx"],
        include_dirs=["src/fastmw/_cy"],
        define_macros=macros,
        extra_compile_args=extra,
        extra_link_args=extra,
    )
    return cythonize(
        [core],
        compiler_directives=directives,
        annotate=flag("FASTMW_ANNOTATE"),
        # The annotation is only written when Cython runs, so asking for it forces a run.
        force=mode_changed("trace" if trace else "plain") or flag("FASTMW_ANNOTATE"),
    )


setup(ext_modules=extensions())

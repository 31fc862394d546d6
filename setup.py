"""Builds the compiled core; everything else is declared in pyproject.toml.

FASTMW_NO_EXTENSIONS=1 builds a pure-Python package. Without a working C compiler (or the
Python headers) the build stops with a message saying so and naming that switch: it never
falls back to the pure package by itself. FASTMW_CYTHON_TRACE=1
builds with line tracing (for coverage); FASTMW_ANNOTATE=1 writes the HTML
annotation next to the .pyx. FASTMW_CFLAGS adds compiler flags (sanitizers).
"""

import os
import platform
import shlex
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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


NO_COMPILER_HELP = """
fastmw: cannot build the compiled core: {reason}
  pip is building fastmw from its source, which needs a C compiler and the Python headers.
  Either install them (e.g. `apt-get install gcc python3-dev`, `dnf install gcc python3-devel`,
  Xcode's command line tools) and install again, or build the pure-Python package, which
  behaves the same but is slower, by setting FASTMW_NO_EXTENSIONS=1 for the install:
      FASTMW_NO_EXTENSIONS=1 pip install --no-binary fastmw fastmw
"""

# Compiled first, alone: says whether the compiler or the Python headers are missing
# before Cython spends a minute generating C for nothing.
PROBE_C = "#include <Python.h>\nint fastmw_probe(void) { return PY_VERSION_HEX != 0; }\n"


class BuildExtOrExplain(build_ext):
    """build_ext that checks the compiler first, explains a failure, then cythonizes."""

    def build_extensions(self) -> None:
        self._probe_compiler()
        # cythonize gives new Extension objects; setuptools' build_ext wants its own back.
        for ext, generated in zip(self.extensions, cythonize_core(self.extensions), strict=True):
            ext.sources = generated.sources
        super().build_extensions()

    def _probe_compiler(self) -> None:
        from setuptools.errors import CCompilerError, CompileError, ExecError, PlatformError

        try:
            with tempfile.TemporaryDirectory(prefix="fastmw-probe-") as tmp:
                source = os.path.join(tmp, "probe.c")
                with open(source, "w") as f:
                    f.write(PROBE_C)
                self.compiler.compile([source], output_dir=tmp)
        except (CCompilerError, CompileError, ExecError, PlatformError, OSError) as exc:
            reason = f"a C file holding only `#include <Python.h>` does not compile ({exc})"
            sys.exit(NO_COMPILER_HELP.format(reason=reason))


def extensions() -> list:
    if flag("FASTMW_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        return []
    extra = shlex.split(os.environ.get("FASTMW_CFLAGS", ""))
    macros = [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")] if flag("FASTMW_CYTHON_TRACE") else []
    return [
        Extension(
            "fastmw._core",
            ["src/fastmw/_core.pyx"],
            include_dirs=["src/fastmw/_cy"],
            define_macros=macros,
            extra_compile_args=extra,
            extra_link_args=extra,
        )
    ]


def cythonize_core(modules: list) -> list:
    """The extensions with their .pyx turned into C (run by build_ext, after the probe)."""
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
    trace = flag("FASTMW_CYTHON_TRACE")
    if trace:
        directives.update(linetrace=True, binding=True)
    return cythonize(
        modules,
        compiler_directives=directives,
        annotate=flag("FASTMW_ANNOTATE"),
        # The annotation is only written when Cython runs, so asking for it forces a run.
        force=mode_changed("trace" if trace else "plain") or flag("FASTMW_ANNOTATE"),
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtOrExplain})

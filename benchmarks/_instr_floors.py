"""The floor sides of ``make bench-instructions``: ``_floors.pyx``, compiled on first use.

``build()`` cythonizes and compiles it with setuptools (so with the C flags fastmw's core gets)
into ``build/bench-instructions/floors-<hash>/``, named by the source and the Python and Cython
versions, so never stale. The parent builds it before starting the children, which only load
it, before their measured region.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

from benchmarks._driver import ASGIApp

MODULE = "benchmarks._floors"
SOURCE = Path(__file__).with_name("_floors.pyx")
BUILD_DIR = Path(__file__).parent.parent / "build" / "bench-instructions"
LIBRARY = f"_floors{sysconfig.get_config_var('EXT_SUFFIX')}"


def buildable() -> bool:
    """Whether Cython is installed (the runtime venvs of ``make wheels-test`` have none)."""
    return importlib.util.find_spec("Cython") is not None


def _library(directory: Path) -> Path:
    stamp = f"{sys.version} {metadata.version('Cython')}".encode()
    digest = hashlib.sha256(SOURCE.read_bytes() + stamp).hexdigest()[:12]
    return directory / f"floors-{digest}" / LIBRARY


def _compile(out: Path) -> Path:
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension  # type: ignore[import-untyped]  # no stubs, no py.typed

    extensions = cythonize(  # type: ignore[no-untyped-call]
        [Extension(MODULE, [str(SOURCE)])], build_dir=str(out / "c"), quiet=True
    )
    options = ["--build-lib", str(out / "lib"), "--build-temp", str(out / "temp")]
    dist = Distribution({"ext_modules": extensions, "script_args": ["-q", "build_ext", *options]})
    dist.parse_command_line()
    dist.run_commands()
    return out / "lib" / "benchmarks" / LIBRARY


def build(directory: Path = BUILD_DIR) -> Path:
    """The compiled ``_floors`` extension in ``directory``, built if missing."""
    library = _library(directory)
    if not library.exists():
        # Built aside, then moved in: a concurrent builder never loads a half-written file.
        scratch = library.parent.with_name(f"{library.parent.name}.{os.getpid()}.tmp")
        built = _compile(scratch)
        library.parent.mkdir(parents=True, exist_ok=True)
        built.replace(library)
        shutil.rmtree(scratch)
    return library


@functools.cache
def module() -> ModuleType:
    """``benchmarks._floors``, loaded from its build."""
    spec = importlib.util.spec_from_file_location(MODULE, build())
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def layer(name: str) -> Callable[[ASGIApp], ASGIApp]:
    """The builder of a side: the floor class ``name`` around the app."""

    def build_layer(app: ASGIApp) -> ASGIApp:
        return getattr(module(), name)(app)  # type: ignore[no-any-return]

    return build_layer

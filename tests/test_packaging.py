"""Packaging facts that must hold both in the work tree and in an installed wheel or sdist.

tools/test_dists.py runs this suite against each built artifact, so these checks are
what proves the release files, not just the editable install, are right.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

import fastmw

PACKAGE_DIR = Path(fastmw.__file__).parent
# In the work tree the package sits in src/; anywhere else it was installed from an artifact.
FROM_SOURCE_TREE = PACKAGE_DIR.parent.name == "src"


def test_version_has_one_source() -> None:
    # setuptools reads fastmw.__version__ (dynamic metadata): the two can only differ
    # if that wiring breaks, or the editable install is stale (`make clean build`).
    assert importlib.metadata.version("fastmw") == fastmw.__version__


@pytest.mark.parametrize("name", ["py.typed", "_core.pyi"])
def test_typing_files_ship_with_the_package(name: str) -> None:
    assert resources.files("fastmw").joinpath(name).is_file(), f"fastmw/{name} missing (PEP 561)"


def test_compiled_core_lives_beside_the_package(twins: tuple[ModuleType, ModuleType]) -> None:
    compiled, _ = twins
    assert compiled.__file__ is not None
    assert Path(compiled.__file__).parent == PACKAGE_DIR
    assert Path(compiled.__file__).name.startswith("_core.")


def test_compiled_core_embeds_signatures(twins: tuple[ModuleType, ModuleType]) -> None:
    # embedsignature=True: help() and IDEs show real signatures for the compiled twin.
    compiled, _ = twins
    doc = compiled.header_get.__doc__
    assert doc is not None and doc.startswith("header_get(headers, name, default=None)")


@pytest.mark.skipif(FROM_SOURCE_TREE, reason="the work tree holds sources by design")
def test_installed_package_ships_no_sources_or_tests() -> None:
    shipped = {p.name for p in PACKAGE_DIR.iterdir()}
    assert not {n for n in shipped if n.endswith((".pyx", ".c", ".html"))}
    assert not (PACKAGE_DIR.parent / "tests" / "test_packaging.py").exists()


@pytest.mark.skipif(not FROM_SOURCE_TREE, reason="reads pyproject.toml and tools/ of the work tree")
@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_classifiers_release_matrix_and_local_wheels_name_the_same_pythons() -> None:
    import tomllib

    root = PACKAGE_DIR.parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())
    classified = {
        c.rsplit(" :: ", 1)[1]
        for c in project["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    released = {f"3.{selector[3:].split('-')[0]}" for selector in project["tool"]["cibuildwheel"]["build"]}
    spec = importlib.util.spec_from_file_location("_distutil", root / "tools" / "_distutil.py")
    assert spec is not None and spec.loader is not None
    distutil = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(distutil)
    built_here = {*distutil.MINORS, *distutil.CHROOT_MINORS}
    assert classified == released == built_here
    floor = project["project"]["requires-python"].removeprefix(">=")
    assert min(classified, key=lambda version: int(version.split(".")[1])) == floor

"""The implementation chooser, the public COMPILED flag, and twin/stub parity."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastmw
from fastmw import _core_py, _impl

STUB = Path(_core_py.__file__).parent.with_name("_core.pyi")


@pytest.mark.parametrize(
    ("value", "pure"),
    [("1", True), ("true", True), ("YES", True), ("on", True), (" 1 ", True), ("", False), ("0", False), ("no", False)],
)
def test_switch_values(monkeypatch: pytest.MonkeyPatch, value: str, pure: bool) -> None:
    monkeypatch.setenv("FASTMW_NO_EXTENSIONS", value)
    assert _impl.extensions_disabled() is pure


def test_reimport_under_patched_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv("FASTMW_NO_EXTENSIONS", "1")
        reloaded = importlib.reload(_impl)
        assert reloaded.COMPILED is False and reloaded.core is _core_py
        monkeypatch.setenv("FASTMW_NO_EXTENSIONS", "0")
        reloaded = importlib.reload(_impl)
        try:
            from fastmw import _core
        except ImportError:
            assert reloaded.COMPILED is False
        else:
            assert reloaded.COMPILED is True and reloaded.core is _core
    finally:
        monkeypatch.undo()
        importlib.reload(_impl)


COMPILED_AVAILABLE = importlib.util.find_spec("fastmw._core") is not None


@pytest.mark.parametrize(("env", "expected"), [("1", "False"), ("", str(COMPILED_AVAILABLE))])
def test_fresh_interpreter_reports_the_switch(env: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import fastmw; print(fastmw.COMPILED)"],
        env={**os.environ, "FASTMW_NO_EXTENSIONS": env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == expected


def test_compiled_import_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTMW_NO_EXTENSIONS", raising=False)
    monkeypatch.setitem(sys.modules, "fastmw._core", None)  # makes the import raise ImportError
    monkeypatch.delattr(fastmw, "_core", raising=False)
    try:
        reloaded = importlib.reload(_impl)
        assert reloaded.COMPILED is False and reloaded.core is _core_py
    finally:
        monkeypatch.undo()
        importlib.reload(_impl)


def _stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    # The stub's own helpers (type aliases, protocols) are private and exist only there.
    return {name for name in names if not name.startswith("_") or name == "_Context"}


def test_twins_and_stub_expose_the_same_names() -> None:
    public = set(_core_py.__all__)
    assert _stub_names() == public
    try:
        from fastmw import _core
    except ImportError:
        pytest.skip("no compiled core")
    assert set(_core.__all__) == public
    for name in public:
        assert hasattr(_core, name) and hasattr(_core_py, name), name

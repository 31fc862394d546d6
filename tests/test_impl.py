"""The implementation chooser, the public COMPILED flag, and twin/stub parity."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _stub_all() -> list[str]:
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == ["__all__"]:
            return list(ast.literal_eval(node.value))
    raise AssertionError("the stub has no __all__")


def test_twins_and_stub_expose_the_same_names() -> None:
    # The export list is written three times, each where its tool needs a literal: the pure
    # twin's (the spec), the stub's (type checkers) and the compiled root's; they must agree.
    public = set(_core_py.__all__)
    assert _stub_names() == public
    assert _stub_all() == _core_py.__all__
    try:
        from fastmw import _core
    except ImportError:
        pytest.skip("no compiled core")
    assert list(_core.__all__) == _core_py.__all__
    for name in public:
        assert hasattr(_core, name) and hasattr(_core_py, name), name


def test_the_middleware_layer_takes_its_core_from_one_switch() -> None:
    # One package, both twins: a middleware built inside building_on(twin) runs on that twin,
    # and both read and write the same context variables (no second copy of fastmw).
    import asyncio

    import fastmw
    from fastmw import _core_py
    from fastmw._impl import building_on, layer_core

    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((fastmw.correlation_id.get(), fastmw.context.get("X-Request-ID")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request"}

    with building_on(_core_py):
        assert layer_core() is _core_py
        middleware = fastmw.RawContextMiddleware(fastmw.stack(app), plugins=[fastmw.plugins.RequestIdPlugin()])
    assert layer_core() is fastmw._impl.core
    assert isinstance(middleware, _core_py.Pipeline) and isinstance(middleware, fastmw.RawContextMiddleware)
    assert all(type(stage).__module__.startswith("fastmw._core_py") for stage in middleware.stages)
    rid = "0123456789abcdef0123456789abcdef"
    scope = {"type": "http", "path": "/", "headers": [(b"x-request-id", rid.encode())], "state": {}}
    asyncio.run(middleware(scope, receive, send))
    assert seen == [(rid, rid)]


def test_tests_do_not_import_benchmarks() -> None:
    # The twin tests get both cores through tests/conftest.py; the benchmark harness's own
    # checks live with it, in benchmarks/tests/ (pyproject's testpaths runs them too).
    root = Path(__file__).resolve().parent
    importing = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if any(
            line.strip().startswith(("from benchmarks", "import benchmarks")) for line in path.read_text().splitlines()
        )
    ]
    assert importing == []

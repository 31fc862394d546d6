"""The public types, checked the way users check them: ``mypy --strict`` on user code
(no project configuration: the user's own ``mypy --strict``).

One mypy run (module-scoped) checks:

* every ```python block of the README, each as a module of its own, as a user would
  paste it;
* ``SEAMS_TEMPLATE``: the ASGI types at the seams a middleware author touches (the stacked
  app, the core's stages, recorders and pipelines, for the compiled core's stub and the
  pure twin alike).

A type check gives the same answer on both passes of ``make test``: it runs in one (``once``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# mypy's own output line: "<file>:<line>: error: <message>  [code]".
README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
MYPY_ERROR = re.compile(r"^(?P<file>[^:\s]+\.py):(?P<line>\d+): error: (?P<message>.*)$")
MYPY_TIMEOUT = 600

pytestmark = pytest.mark.once

# What a middleware author's code may rely on, for either core (the stub and the twin
# must say the same). Each line fails to type-check if a seam falls back to Any or to a
# type narrower than ASGI's (assert_type tells Any apart from a real type).
SEAMS_TEMPLATE = """
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from typing_extensions import assert_type

import fastmw
from fastmw import {core} as core
from fastmw.stack import StackedApp
from fastmw.types import ASGIApp, Message, PathFilter, Receive, Scope, Send, Stage

api = FastAPI()
stacked = fastmw.stack(api, exclude_paths=["/health"])
assert_type(stacked, StackedApp[FastAPI])
served: FastAPI = stacked.wrapped
runs: ASGIApp = stacked
# Every middleware class is a factory Starlette's typed add_middleware() takes.
api.add_middleware(fastmw.CorrelationIdMiddleware, header_name="X-Request-ID")
api.add_middleware(fastmw.RequestIdMiddleware, header_name="X-Request-ID")
api.add_middleware(fastmw.TraceContextMiddleware)
api.add_middleware(fastmw.TimingMiddleware)
api.add_middleware(fastmw.AccessLogMiddleware)
api.add_middleware(fastmw.ErrorMiddleware)
api.add_middleware(fastmw.BodyCacheMiddleware)
api.add_middleware(fastmw.ContextMiddleware)
api.add_middleware(fastmw.RawContextMiddleware)


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({{"type": "http.response.start", "status": 204, "headers": []}})


plain: Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]] = fastmw.stack(endpoint).wrapped


def seams(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    stage: Stage = core.ErrorStage()
    assert_type(stage.paths, PathFilter | None)
    assert_type(stage.answer(scope, receive, send, exc), Awaitable[bool])
    pipeline = core.Pipeline(api, [core.TimingStage(), core.ErrorStage()])
    app: ASGIApp = pipeline
    assert_type(pipeline.terminal, ASGIApp)
    assert_type(pipeline.other, ASGIApp)
    assert_type(pipeline(scope, receive, send), Awaitable[None])
    recorder = core.SendRecorder(send)
    wrapped_send: Send = recorder
    assert_type(recorder.send, Send)
    body = core.ReceiveRecorder(receive, 1024)
    wrapped_receive: Receive = body
    assert_type(body.receive, Receive)
    assert_type(core.current_timing(), core.SendRecorder | None)
    assert_type(core.current_body(), core.ReceiveRecorder | None)
    assert_type(core.current_trace(), core.TraceContext | None)
    published = core.Published(recorder, body)
    assert_type(published.timing, core.SendRecorder | None)
    message: Message = {{"type": "http.response.start"}}
    assert_type(core.message_headers(message), list[tuple[bytes, bytes]])
"""


WRONG = "from fastapi import FastAPI\n\nimport fastmw\n\napp: FastAPI = fastmw.stack(FastAPI())\n"


def readme_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    return PYTHON_BLOCK.findall(README.read_text(encoding="utf-8"))


def run_mypy(directory: Path, files: list[str]) -> list[tuple[str, int, str]]:
    """``mypy --strict`` over ``files`` in ``directory`` (no project configuration there):
    its errors as (file, line, message)."""
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes", *files]
    result = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=MYPY_TIMEOUT, check=False)
    if result.returncode not in (0, 1) or result.stderr.strip():
        pytest.fail(f"mypy did not run (exit {result.returncode}):\n{result.stderr}{result.stdout}")
    errors = []
    for line in result.stdout.splitlines():
        found = MYPY_ERROR.match(line)
        if found:
            errors.append((found["file"], int(found["line"]), found["message"]))
    if result.returncode == 1 and not errors:
        pytest.fail(f"mypy failed without an error line:\n{result.stdout}")
    return errors


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[tuple[int, str]]]]:
    """The mypy errors per checked file, from one run over the README blocks and the seams."""
    directory = tmp_path_factory.mktemp("typecheck")
    files = []
    for index, block in enumerate(readme_blocks()):
        name = f"readme_block_{index}.py"
        (directory / name).write_text(block, encoding="utf-8")
        files.append(name)
    # A negative control: the run must report this one (a stacked FastAPI app is no FastAPI).
    (directory / "wrong.py").write_text(WRONG, encoding="utf-8")
    files.append("wrong.py")
    for core in ("_core", "_core_py"):
        name = f"seams{core}.py"
        (directory / name).write_text(SEAMS_TEMPLATE.format(core=core), encoding="utf-8")
        files.append(name)
    errors: dict[str, list[tuple[int, str]]] = {name: [] for name in files}
    for file, line, message in run_mypy(directory, files):
        errors.setdefault(file, []).append((line, message))
    yield errors


def test_readme_has_python_examples() -> None:
    assert readme_blocks(), "README.md has no ```python block: the check below would check nothing"


def test_readme_examples_pass_mypy_strict(checked: dict[str, list[tuple[int, str]]]) -> None:
    failures = []
    for index, block in enumerate(readme_blocks()):
        lines = block.splitlines()
        for line, message in checked[f"readme_block_{index}.py"]:
            failures.append(f"README python block {index + 1}, line {line} ({lines[line - 1].strip()!r}): {message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("core", ["_core", "_core_py"])
def test_seams_are_typed(checked: dict[str, list[tuple[int, str]]], core: str) -> None:
    errors = checked[f"seams{core}.py"]
    assert not errors, "\n".join(f"line {line}: {message}" for line, message in errors)


def test_the_check_sees_type_errors(checked: dict[str, list[tuple[int, str]]]) -> None:
    errors = checked["wrong.py"]
    assert [line for line, _ in errors] == [5]
    assert '"StackedApp[FastAPI]", variable has type "FastAPI"' in errors[0][1]

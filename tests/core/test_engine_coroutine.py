"""The request engine's coroutine: driven by hand (send, throw, close), awaited in other
tasks, concurrent requests, and whatever awaitable the app returns, against both core twins."""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Callable, Generator
from types import ModuleType
from typing import Any

import pytest

from fastmw._storage import CORRELATION_ID
from tests.helpers import Recorder, call_app, feeder, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
BODY = {"type": "http.response.body", "body": b"ok"}


@types.coroutine
def suspend(value: Any = None) -> Generator[Any, Any, Any]:
    """Yield ``value`` to whoever drives the coroutine, return what is sent back."""
    return (yield value)


def serve(pipeline: Any, scope: dict[str, Any] | None = None) -> Recorder:
    return run(call_app(pipeline, scope if scope is not None else http_scope()))


def in_fresh_context(func: Callable[[], Any]) -> Any:
    """Run ``func`` in a copy of the context: a request left half-done cannot leak its ids."""
    return contextvars.copy_context().run(func)


def _stepped(core: ModuleType, app: Any) -> Any:
    """The pipeline's coroutine for ``app``, stepped to its first suspension ("paused")."""
    stages = [core.RequestIdStage("x-request-id", "id"), core.ErrorStage()]
    coro = core.Pipeline(app, stages)(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), Recorder())
    assert coro.send(None) == "paused"
    assert CORRELATION_ID.get() == RID
    return coro


def test_values_sent_in_reach_the_app(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert await suspend("paused") == "one"
        assert await suspend("again") == "two"

    def check() -> None:
        coro = _stepped(core, app)
        assert coro.send("one") == "again"
        with pytest.raises(StopIteration):
            coro.send("two")
        assert CORRELATION_ID.get() is None

    in_fresh_context(check)


def test_an_exception_thrown_in_is_the_apps_to_handle_or_the_stages(core: ModuleType) -> None:
    async def recovering(scope: Any, receive: Any, send: Any) -> None:
        try:
            await suspend("paused")
        except KeyError:
            await send({**START, "headers": []})
            await send(dict(BODY))

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await suspend("paused")

    def check() -> None:
        with pytest.raises(StopIteration):
            _stepped(core, recovering).throw(KeyError("k"))
        assert CORRELATION_ID.get() is None
        # Not handled by the app: the error stage answers and re-raises, the stages are left.
        with pytest.raises(KeyError, match="thrown"):
            _stepped(core, failing).throw(KeyError("thrown"))
        assert CORRELATION_ID.get() is None

    in_fresh_context(check)


def test_close_runs_the_apps_cleanup(core: ModuleType) -> None:
    cleaned: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await suspend("paused")
        finally:
            cleaned.append(CORRELATION_ID.get())

    def check() -> None:
        coro = _stepped(core, app)
        coro.close()
        assert cleaned == [RID] and CORRELATION_ID.get() is None
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coro.send(None)

    in_fresh_context(check)


def test_nothing_runs_until_the_first_step(core: ModuleType) -> None:
    calls: list[str] = []

    def reader(headers: Any) -> str:
        calls.append("reader")
        return "value"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append("app")

    def check() -> None:
        coro = core.Pipeline(app, [core.ContextStage([("a", reader)])])(http_scope(), None, None)
        assert calls == []
        with pytest.raises(StopIteration):
            coro.send(None)
        assert calls == ["reader", "app"]

    in_fresh_context(check)


@pytest.mark.parametrize("how", ["throw", "close"])
def test_throw_or_close_before_the_first_step_runs_nothing(core: ModuleType, how: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    def check() -> None:
        coro = core.Pipeline(app, [core.RequestIdStage("x-request-id", "id")])(http_scope(), None, None)
        if how == "throw":
            with pytest.raises(KeyError, match="early"):
                coro.throw(KeyError("early"))
        else:
            coro.close()
        assert CORRELATION_ID.get() is None
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coro.send(None)

    in_fresh_context(check)


def test_awaited_in_another_task_the_stages_run_there(core: ModuleType) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(CORRELATION_ID.get())
        await asyncio.sleep(0)

    pipeline = core.Pipeline(app, [core.RequestIdStage("x-request-id", "id")])

    async def scenario() -> None:
        scope = http_scope(headers=[(b"x-request-id", b"abc")])
        # The coroutine is made here and run by another task: its context is the task's.
        await asyncio.create_task(pipeline(dict(scope), None, Recorder()))
        await asyncio.wait_for(pipeline(dict(scope), None, Recorder()), timeout=60)
        assert CORRELATION_ID.get() is None

    run(scenario())
    assert seen == ["abc", "abc"]


class _BadAwait:
    def __init__(self, result: Any) -> None:
        self.result = result

    def __await__(self) -> Any:
        return self.result


@pytest.mark.parametrize(("result", "name"), [(5, "int"), (None, "NoneType")])
def test_an_await_method_returning_a_non_iterator_is_the_await_error(core: ModuleType, result: Any, name: str) -> None:
    pipeline = core.Pipeline(lambda scope, receive, send: _BadAwait(result), [core.TimingStage()])
    with pytest.raises(TypeError) as info:
        serve(pipeline)
    assert str(info.value) == interpreter_await_error(_BadAwait(result))
    assert name in str(info.value)


class _Awaitable:
    """A generic awaitable (not a coroutine): ``__await__`` is a plain generator."""

    def __await__(self) -> Generator[Any, Any, None]:
        yield  # asyncio runs the next step on the next loop iteration


@types.coroutine
def _generator_app() -> Generator[Any, Any, None]:
    yield


@pytest.mark.parametrize("kind", ["awaitable", "generator-coroutine", "future"])
def test_any_awaitable_the_app_returns_works(core: ModuleType, kind: str) -> None:
    seen: list[Any] = []

    def app(scope: Any, receive: Any, send: Any) -> Any:
        seen.append(CORRELATION_ID.get())
        if kind == "awaitable":
            return _Awaitable()
        if kind == "generator-coroutine":
            return _generator_app()
        future = asyncio.get_running_loop().create_future()
        future.get_loop().call_soon(future.set_result, None)
        return future

    serve(
        core.Pipeline(app, [core.RequestIdStage("x-request-id", "id")]), http_scope(headers=[(b"x-request-id", b"a")])
    )
    assert seen == ["a"]


@pytest.mark.parametrize(("returned", "name"), [(5, "int"), (None, "NoneType")])
def test_an_app_returning_a_non_awaitable_is_a_type_error(core: ModuleType, returned: Any, name: str) -> None:
    pipeline = core.Pipeline(lambda scope, receive, send: returned, [core.TimingStage()])
    with pytest.raises(TypeError) as info:
        serve(pipeline)
    assert str(info.value) == interpreter_await_error(returned)
    assert name in str(info.value)


def interpreter_await_error(value: Any) -> str:
    """What this interpreter's own ``await`` says of ``value`` (reworded in CPython 3.14)."""

    async def waits() -> None:
        await value

    with pytest.raises(TypeError) as info:
        asyncio.run(waits())
    return str(info.value)


def test_concurrent_requests_see_their_own_ids(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        mine = CORRELATION_ID.get()
        for _ in range(3):
            await asyncio.sleep(0)
            assert CORRELATION_ID.get() == mine
        await send({**START, "headers": []})
        await send(dict(BODY))

    pipeline = core.Pipeline(app, [core.RequestIdStage("x-request-id", "id"), core.TimingStage()])
    ids = [f"{index:032x}" for index in range(50)]

    async def one(request_id: str) -> Any:
        downstream = Recorder()
        await pipeline(http_scope(headers=[(b"x-request-id", request_id.encode())]), feeder([]), downstream)
        assert CORRELATION_ID.get() is None
        return downstream.header(b"x-request-id")

    async def main() -> list[Any]:
        return await asyncio.gather(*(one(request_id) for request_id in ids))

    assert run(main()) == [request_id.encode() for request_id in ids]

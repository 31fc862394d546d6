"""ContextMiddleware specifics: Response-style plugins, set semantics, request objects."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from fastmw import context
from fastmw.errors import ConfigurationError
from fastmw.middleware import ContextMiddleware, RawContextMiddleware
from fastmw.middleware.context_middleware import ContextMiddleware as ByModulePath
from fastmw.middleware.raw_middleware import RawContextMiddleware as RawByModulePath
from fastmw.plugins import Plugin, RequestIdPlugin
from fastmw.types import Scope
from tests.helpers import Recorder, asyncio_sees_a_coroutine_function, call_app, feeder, http_scope, plain_app, run

HEX = "4d4b7a3e2f7c4e0b9a1c2b3d4e5f6a7b"


def test_module_paths() -> None:
    import fastmw

    assert ByModulePath is ContextMiddleware is fastmw.ContextMiddleware
    assert RawByModulePath is fastmw.RawContextMiddleware


def test_echo_replaces_the_app_header() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-request-id", b"a"), (b"x-request-id", b"b")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    rec = run(
        call_app(
            ContextMiddleware(app, plugins=(RequestIdPlugin(),)), http_scope(headers=[(b"x-request-id", HEX.encode())])
        )
    )
    assert [v for k, v in rec.headers if k == b"x-request-id"] == [HEX.encode()]


def test_enrich_receives_a_response_and_can_change_status() -> None:
    got: list[Any] = []

    class Inspect(Plugin):
        key = "inspect"

        async def enrich_response(self, arg: Any) -> None:
            got.append((isinstance(arg, Response), arg["type"], arg.status_code))
            arg.status_code = 203
            arg.set_cookie("session", "abc")

    rec = run(call_app(ContextMiddleware(plain_app, plugins=(Inspect(),)), http_scope()))
    assert got == [(True, "http.response.start", 200)]
    assert rec.status == 203 and rec.header(
        b"set-cookie",
    ).startswith(b"session=abc")  # type: ignore[union-attr]


def test_plugins_get_a_request_and_a_read_body_is_replayed() -> None:
    class Body(Plugin):
        key = "body"

        async def process_request(self, request: Any) -> Any:
            assert isinstance(request, Request)
            return (await request.body()).decode()

    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append((await receive())["body"])
        received.append(context["body"])
        await plain_app(scope, receive, send)

    chunks = [
        {"type": "http.request", "body": b"he", "more_body": True},
        {"type": "http.request", "body": b"llo", "more_body": False},
    ]
    run(call_app(ContextMiddleware(app, plugins=(Body(),)), http_scope(method="POST"), chunks))
    assert received == [b"hello", "hello"]


def test_websocket_plugins_get_a_connection() -> None:
    got: list[Any] = []

    class Conn(Plugin):
        key = "conn"

        async def process_request(self, request: Any) -> Any:
            got.append(type(request))
            return request.url.path

    scope = http_scope("/ws", scope_type="websocket")
    run(
        call_app(
            ContextMiddleware(plain_app, plugins=(Conn(),)),
            scope,
            [{"type": "websocket.connect"}],
            then={"type": "websocket.disconnect"},
        )
    )
    assert got == [HTTPConnection]


def test_set_context_result_is_copied() -> None:
    stored: dict[str, Any] = {}

    class Mine(ContextMiddleware):
        async def set_context(self, request: Any) -> dict[Any, Any]:
            return stored

    async def app(scope: Any, receive: Any, send: Any) -> None:
        context["x"] = 1
        await plain_app(scope, receive, send)

    run(call_app(Mine(app), http_scope()))
    assert stored == {}


# --------------------------------------------------------------------------- the solo entry point


def _both_styles() -> list[Any]:
    import fastmw

    return [fastmw.RawContextMiddleware(plain_app, plugins=(RequestIdPlugin(),)), ContextMiddleware(plain_app)]


def test_servers_detect_asgi3() -> None:
    # uvicorn (asyncio.iscoroutinefunction), hypercorn and asgiref (inspect) look at __call__.
    import inspect

    for middleware in _both_styles():
        assert middleware._stage is not None  # the core stage serves it
        assert inspect.iscoroutinefunction(middleware.__call__)
        assert inspect.iscoroutinefunction(type(middleware).__call__)
        assert asyncio_sees_a_coroutine_function(middleware.__call__)
        assert list(inspect.signature(middleware).parameters) == ["scope", "receive", "send"]


def test_a_call_is_a_coroutine_that_runs_in_the_task_awaiting_it() -> None:
    import asyncio

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(context.data.copy())
        await plain_app(scope, receive, send)

    async def main() -> None:
        middleware = RawContextMiddleware(app, plugins=(RequestIdPlugin(),))
        call = middleware(http_scope(headers=[(b"x-request-id", HEX.encode())]), feeder([]), Recorder())
        # Nothing ran yet: no context in the caller, the app not called.
        assert asyncio.iscoroutine(call) and seen == [] and not context.exists()
        await asyncio.create_task(call)  # asyncio takes it as a coroutine
        assert seen == [{"X-Request-ID": HEX}]
        assert not context.exists()  # set and reset inside the task only

    run(main())


def test_a_call_never_awaited_closes_without_side_effects() -> None:
    calls: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope)

    call = RawContextMiddleware(app, plugins=(RequestIdPlugin(),))(http_scope(), feeder([]), Recorder())
    call.close()
    assert calls == [] and not context.exists()


def test_cancellation_propagates_and_the_next_request_is_clean() -> None:
    import asyncio

    async def main() -> None:
        entered = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            entered.set()
            await asyncio.Event().wait()

        middleware = RawContextMiddleware(app, plugins=(RequestIdPlugin(),))
        task = asyncio.create_task(middleware(http_scope(), feeder([]), Recorder()))
        await entered.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:  # pragma: no cover - the assertion below reports it
            raise AssertionError("the cancellation was swallowed")
        assert not context.exists()
        rec = await call_app(RawContextMiddleware(plain_app, plugins=(RequestIdPlugin(),)), http_scope())
        assert rec.status == 200 and rec.header(b"x-request-id") is not None

    run(main())


def test_setting_app_rebuilds_the_awaited_hooks_layer_too() -> None:
    """A context middleware on the Python-layer path (overridden hook) follows ``.app``."""
    from fastmw.plugins import RequestIdPlugin

    class Custom(RequestIdPlugin):
        async def process_request(self, request: Any) -> Any:
            return "custom"

    calls: list[str] = []

    async def second(scope: Scope, receive: Any, send: Any) -> None:
        calls.append("second")
        await plain_app(scope, receive, send)

    middleware = RawContextMiddleware(plain_app, plugins=(Custom(),))
    assert middleware.route.awaits and middleware.stages == ()  # the stage runs behind the layer
    middleware.app = second
    response = run(call_app(middleware, http_scope()))
    assert response.status == 200 and response.header(b"x-request-id") == b"custom"
    assert calls == ["second"]


@pytest.mark.parametrize("cls", [ContextMiddleware, RawContextMiddleware])
@pytest.mark.parametrize("bad", ["x", 400, None, b"refused"])
def test_default_error_response_must_be_a_response_at_startup(cls: Any, bad: Any) -> None:
    # Once an error: a bad id answered with a 500 at the first request.
    with pytest.raises(ConfigurationError, match=r"default_error_response must be a starlette Response"):
        cls(plain_app, default_error_response=bad)

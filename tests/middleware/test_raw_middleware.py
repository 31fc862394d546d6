"""Both context middlewares at the ASGI level (RawContextMiddleware-specific tests at the end)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, Response

from fastmw import context
from fastmw.errors import ConfigurationError
from fastmw.middleware import ContextMiddleware, RawContextMiddleware, raw_middleware
from fastmw.plugins import CorrelationIdPlugin, Plugin, RequestIdPlugin, UserAgentPlugin
from fastmw.types import Scope
from tests.helpers import Message, Recorder, call_app, feeder, http_scope, plain_app, run

HEX = "4d4b7a3e2f7c4e0b9a1c2b3d4e5f6a7b"
RID = [(b"x-request-id", HEX.encode())]


@pytest.fixture(params=[ContextMiddleware, RawContextMiddleware])
def cls(request: pytest.FixtureRequest) -> type[RawContextMiddleware]:
    return request.param  # type: ignore[no-any-return]


def ws_scope(**extra: Any) -> dict[str, Any]:
    return http_scope("/ws", scope_type="websocket", headers=RID, **extra)


def ws_call(app: Any, scope: Scope) -> Recorder:
    return run(call_app(app, scope, [{"type": "websocket.connect"}], then={"type": "websocket.disconnect"}))


class Spy:
    """An app that records the context it sees at each step."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls += 1
        self.seen.append(context.copy())
        await plain_app(scope, receive, send)


@pytest.mark.parametrize("kind", ["lifespan", "custom.protocol"])
def test_other_scopes_pass_through_untouched(cls: type[RawContextMiddleware], kind: str) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append((scope, receive, send, context.exists()))

    # Markers, not callables: the middleware must hand them on without using them.
    scope, receive, send = {"type": kind}, object(), object()
    run(cls(app, plugins=(RequestIdPlugin(),))(scope, receive, send))  # type: ignore[arg-type]
    assert got == [(scope, receive, send, False)]
    assert scope == {"type": kind}


def test_http_and_websocket_get_a_context(cls: type[RawContextMiddleware]) -> None:
    spy = Spy()
    mw = cls(spy, plugins=(RequestIdPlugin(),))
    http = run(call_app(mw, http_scope(headers=RID)))
    ws = ws_call(mw, ws_scope())
    assert spy.seen == [{"X-Request-ID": HEX}, {"X-Request-ID": HEX}]
    assert http.header(b"x-request-id") == HEX.encode()
    accept = next(m for m in ws.messages if m["type"] == "websocket.accept")
    assert (b"x-request-id", HEX.encode()) in accept["headers"]


def test_context_reset_after_the_request_on_the_same_task(cls: type[RawContextMiddleware]) -> None:
    async def scenario() -> list[bool]:
        mw = cls(Spy(), plugins=(RequestIdPlugin(),))
        await call_app(mw, http_scope())
        first = context.exists()
        await call_app(mw, http_scope())
        return [first, context.exists()]

    assert run(scenario()) == [False, False]


def test_streaming_is_not_buffered_and_context_lives_to_the_last_byte(cls: type[RawContextMiddleware]) -> None:
    rec = Recorder()
    observed: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        observed.append(len(rec.messages))
        await send({"type": "http.response.body", "body": b"b", "more_body": False})
        observed.append(context.get("X-Request-ID"))

    async def spying_send(message: Message) -> None:
        observed.append((message["type"], context.get("X-Request-ID")))
        await rec(message)

    run(cls(app, plugins=(RequestIdPlugin(),))(http_scope(headers=RID), feeder([]), spying_send))
    assert observed == [("http.response.start", HEX), ("http.response.body", HEX), 2, ("http.response.body", HEX), HEX]
    assert rec.body == b"ab"


class Counting(Plugin):
    key = "counting"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def enrich_response(self, arg: Any) -> None:
        self.calls.append(arg["type"])


def test_enrich_response_runs_once_per_response(cls: type[RawContextMiddleware]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        for last in (False, False, True):
            await send({"type": "http.response.body", "body": b"x", "more_body": not last})

    plugin = Counting()
    mw = cls(app, plugins=(plugin,))
    run(call_app(mw, http_scope()))
    ws_call(cls(plain_app, plugins=(plugin,)), ws_scope())
    assert plugin.calls == ["http.response.start", "websocket.accept"]


def test_validation_failure_sends_only_the_error_response(cls: type[RawContextMiddleware]) -> None:
    spy = Spy()
    rec = run(
        call_app(
            cls(spy, plugins=(UserAgentPlugin(), RequestIdPlugin())), http_scope(headers=[(b"x-request-id", b"x")])
        )
    )
    assert spy.calls == 0
    assert [m["type"] for m in rec.messages] == ["http.response.start", "http.response.body"]
    assert rec.status == 400 and rec.header(b"x-request-id") is None
    assert not context.exists()


def test_websocket_refusal_closes_with_1008(cls: type[RawContextMiddleware]) -> None:
    spy = Spy()
    scope = ws_scope()
    scope["headers"] = [(b"x-request-id", b"bad")]
    rec = ws_call(cls(spy, plugins=(RequestIdPlugin(),)), scope)
    assert spy.calls == 0
    assert rec.messages == [{"type": "websocket.close", "code": 1008}]


def test_websocket_refusal_uses_the_denial_extension(cls: type[RawContextMiddleware]) -> None:
    scope = ws_scope(extensions={"websocket.http.response": {}})
    scope["headers"] = [(b"x-request-id", b"bad")]
    teapot = Response("no", status_code=418)
    rec = ws_call(cls(Spy(), plugins=(RequestIdPlugin(error_response=teapot),)), scope)
    assert [m["type"] for m in rec.messages] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert rec.messages[0]["status"] == 418 and rec.messages[1]["body"] == b"no"


@pytest.mark.parametrize("value", [b"\n" + HEX[1:].encode(), b"x" * 9000, b"{" + HEX.encode() + b"}\x00"])
def test_bad_uuid_input_is_refused_never_echoed(cls: type[RawContextMiddleware], value: bytes) -> None:
    for plugin in (RequestIdPlugin(), RequestIdPlugin(validate=False)):
        rec = run(call_app(cls(Spy(), plugins=(plugin,)), http_scope(headers=[(b"x-request-id", value)])))
        if value.startswith(b"x") and not plugin.validate:
            assert rec.status == 400  # oversized even without validation
        assert rec.status == 400 and rec.header(b"x-request-id") is None


def test_plugin_error_propagates_and_no_context_is_left(cls: type[RawContextMiddleware]) -> None:
    class Broken(Plugin):
        key = "broken"

        async def process_request(self, request: Any) -> Any:
            raise KeyError("plugin bug")

    spy = Spy()

    async def scenario() -> bool:
        with pytest.raises(KeyError, match="plugin bug"):
            await call_app(cls(spy, plugins=(Broken(),)), http_scope())
        return context.exists()

    assert run(scenario()) is False and spy.calls == 0


def test_app_error_keeps_context_for_outer_handlers(cls: type[RawContextMiddleware]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("app bug")

    async def scenario() -> Any:
        with pytest.raises(ValueError, match="app bug"):
            await call_app(cls(app, plugins=(RequestIdPlugin(),)), http_scope(headers=RID))
        return context.get("X-Request-ID")

    assert run(scenario()) == HEX


def test_configuration_errors_at_construction(cls: type[RawContextMiddleware]) -> None:
    with pytest.raises(ConfigurationError, match="Plugin 1 is not a valid instance"):
        cls(plain_app, plugins=[1])  # type: ignore[list-item]

    class NoKey(Plugin):
        pass

    with pytest.raises(ConfigurationError, match=r"Plugin NoKey is missing a valid key\."):
        cls(plain_app, plugins=[NoKey()])
    mw = cls(plain_app)
    assert mw.plugins == () and mw.error_response.status_code == 400


def noting(built: list[str], name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, noting its name in ``built`` on each call."""

    def build(*args: Any) -> Any:
        built.append(name)
        return original(*args)

    return build


def test_fast_path_builds_no_request_object(cls: type[RawContextMiddleware], monkeypatch: pytest.MonkeyPatch) -> None:
    from fastmw.middleware import context_middleware

    built: list[str] = []
    for module in (raw_middleware, context_middleware):
        for name in ("HTTPConnection", "Request"):
            if hasattr(module, name):
                original = getattr(module, name)
                monkeypatch.setattr(module, name, noting(built, name, original))

    class Custom(UserAgentPlugin):
        async def extract_value_from_header_by_key(self, request: Any) -> Any:
            return "custom:" + str(request.headers.get(self.key))

    spy = Spy()
    run(call_app(cls(spy, plugins=(RequestIdPlugin(), UserAgentPlugin())), http_scope()))
    assert built == []
    run(
        call_app(cls(spy, plugins=(RequestIdPlugin(), Custom(), Custom())), http_scope(headers=[(b"user-agent", b"u")]))
    )
    assert len(built) == 1
    assert spy.seen[-1]["User-Agent"] == "custom:u"


@pytest.mark.parametrize("style", ["message", "response"])
def test_custom_enrich_response_edits_reach_the_sent_message(cls: type[RawContextMiddleware], style: str) -> None:
    class Enricher(Plugin):
        key = "enricher"

        async def enrich_response(self, arg: Any) -> None:
            if style == "message":
                if arg["type"] == "http.response.start":
                    MutableHeaders(scope=arg).append("x-style", "message")
            else:
                arg.headers["x-style"] = f"response {arg.status_code}"
                arg.raw_headers.append((b"x-raw", b"1"))

    rec = run(call_app(cls(plain_app, plugins=(Enricher(), RequestIdPlugin())), http_scope(headers=RID)))
    expected = b"message" if style == "message" else b"response 200"
    assert rec.header(b"x-style") == expected and rec.header(b"x-request-id") == HEX.encode()
    assert rec.header(b"x-raw") == (None if style == "message" else b"1")


def test_error_response_background_and_streaming(cls: type[RawContextMiddleware]) -> None:
    from starlette.background import BackgroundTask
    from starlette.responses import StreamingResponse

    ran: list[bool] = []
    refusal = PlainTextResponse("nope", status_code=403, background=BackgroundTask(lambda: ran.append(True)))
    rec = run(
        call_app(
            cls(Spy(), plugins=(RequestIdPlugin(error_response=refusal),)),
            http_scope(headers=[(b"x-request-id", b"x")]),
        )
    )
    assert (rec.status, rec.body, ran) == (403, b"nope", [True])

    async def chunks() -> Any:
        yield b"st"
        yield b"ream"

    streaming = StreamingResponse(chunks(), status_code=401)
    rec = run(
        call_app(
            cls(Spy(), plugins=(RequestIdPlugin(error_response=streaming),)),
            http_scope(headers=[(b"x-request-id", b"x")]),
        )
    )
    assert (rec.status, rec.body) == (401, b"stream")


def test_whole_app_placement_500_carries_request_id(cls: type[RawContextMiddleware]) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    seen: list[Any] = []

    async def boom(request: Any) -> Response:
        raise RuntimeError("boom")

    async def handler(request: Any, exc: Exception) -> Response:
        seen.append(context.get("X-Request-ID"))
        return PlainTextResponse("oops", status_code=500)

    app = cls(app=Starlette(routes=[Route("/", boom)], exception_handlers={500: handler}), plugins=(RequestIdPlugin(),))
    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        run(call_app(app, http_scope(), send=rec))
    rid = rec.header(b"x-request-id")
    assert rec.status == 500 and rid is not None and uuid.UUID(rid.decode()).version == 4
    assert seen == [rid.decode()]


# --------------------------------------------------------------------------- Raw only


def test_raw_appends_echo_headers() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]})
        await send({"type": "http.response.body", "body": b""})

    rec = run(call_app(RawContextMiddleware(app, plugins=(RequestIdPlugin(),)), http_scope(headers=RID)))
    assert [v for k, v in rec.headers if k == b"x-request-id"] == [b"app", HEX.encode()]


def test_raw_overrides_get_request_object_and_send_response() -> None:
    class Mine(RawContextMiddleware):
        sent: ClassVar[list[int]] = []

        @staticmethod
        def get_request_object(scope: Any, receive: Any, send: Any) -> Any:
            connection = HTTPConnection(scope)
            connection.state.marker = "mine"
            return connection

        async def set_context(self, request: Any) -> dict[Any, Any]:
            return {"marker": request.state.marker, **await super().set_context(request)}

        async def send_response(self, error_response: Response, send: Any) -> None:
            self.sent.append(error_response.status_code)
            await super().send_response(error_response, send)

    spy = Spy()
    run(call_app(Mine(spy, plugins=(RequestIdPlugin(),)), http_scope(headers=RID)))
    assert spy.seen == [{"marker": "mine", "X-Request-ID": HEX}]
    rec = run(call_app(Mine(spy, plugins=(RequestIdPlugin(),)), http_scope(headers=[(b"x-request-id", b"bad")])))
    assert rec.status == 400 and Mine.sent == [400]


def test_messages_other_than_start_pass_through() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"x-t", b"1")], "more_trailers": False})

    rec = run(call_app(RawContextMiddleware(app, plugins=(RequestIdPlugin(),)), http_scope()))
    assert rec.messages[-1] == {"type": "http.response.trailers", "headers": [(b"x-t", b"1")], "more_trailers": False}


# --------------------------------------------------------------------------- one context path


APP_CORRELATION_ID = "set-by-the-app"
INCOMING_CID = [(b"x-correlation-id", b"fedcba9876543210fedcba9876543210")]


def setting_app(ctx: Any) -> Any:
    """An app that stores its own correlation id in the request context, then responds."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        ctx["X-Correlation-ID"] = APP_CORRELATION_ID
        await plain_app(scope, receive, send)

    return app


def starlette_context_echo(style: str) -> bytes | None:
    """What starlette-context itself echoes for the app above."""
    import starlette_context
    from starlette_context import middleware as sc_middleware
    from starlette_context import plugins as sc_plugins

    cls = sc_middleware.RawContextMiddleware if style == "raw" else sc_middleware.ContextMiddleware
    plugins = [sc_plugins.CorrelationIdPlugin(), sc_plugins.RequestIdPlugin()]
    app = cls(setting_app(starlette_context.context), plugins=plugins)
    return run(call_app(app, http_scope(headers=INCOMING_CID))).header(b"x-correlation-id")


@pytest.mark.parametrize("style", ["raw", "response"])
@pytest.mark.parametrize("override", ["none", "set_context", "get_request_object"])
def test_echoed_values_are_read_when_the_response_starts(layer: Any, style: str, override: str) -> None:
    # starlette-context reads the context when the response starts, so the value the app
    # stored is echoed; fastmw does the same whichever hooks are overridden.
    base = RawContextMiddleware if style == "raw" else ContextMiddleware

    class NoOpSetContext(base):  # type: ignore[valid-type, misc]
        async def set_context(self, request: Any) -> dict[Any, Any]:
            return await super().set_context(request)  # type: ignore[no-any-return]

    class NoOpRequestObject(RawContextMiddleware):
        @staticmethod
        def get_request_object(scope: Any, receive: Any, send: Any) -> HTTPConnection:
            return HTTPConnection(scope)

    if override == "get_request_object" and style != "raw":
        pytest.skip("only RawContextMiddleware has get_request_object")
    cls = {"none": base, "set_context": NoOpSetContext, "get_request_object": NoOpRequestObject}[override]
    middleware = cls(setting_app(context), plugins=[CorrelationIdPlugin(), RequestIdPlugin()])
    assert middleware.route.path == ("engine" if override == "none" else "awaited")
    echoed = run(call_app(middleware, http_scope(headers=INCOMING_CID))).header(b"x-correlation-id")
    assert echoed == starlette_context_echo(style) == APP_CORRELATION_ID.encode()


@pytest.mark.parametrize("override", [False, True])
def test_a_context_value_that_cannot_be_a_header_is_not_echoed_on_either_path(layer: Any, override: bool) -> None:
    class NoOp(RawContextMiddleware):
        async def set_context(self, request: Any) -> dict[Any, Any]:
            return await super().set_context(request)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        context["X-Correlation-ID"] = "abc\r\nSet-Cookie: x=1"
        await plain_app(scope, receive, send)

    cls = NoOp if override else RawContextMiddleware
    rec = run(call_app(cls(app, plugins=[CorrelationIdPlugin()]), http_scope(headers=INCOMING_CID)))
    assert rec.header(b"x-correlation-id") is None and rec.header(b"set-cookie") is None

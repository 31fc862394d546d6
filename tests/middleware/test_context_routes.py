"""The context middlewares' two routes ("engine": the stage's readers; "awaited": a Python
layer awaits overridden hooks, then the same stage runs) answer identically: the same
context, the same echoed headers (each name's values in the same order), the same context
lifetime."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fastmw import context
from fastmw.middleware import ContextMiddleware, RawContextMiddleware
from fastmw.plugins import CorrelationIdPlugin, RequestIdPlugin, UserAgentPlugin
from fastmw.types import Receive, Scope, Send
from tests.helpers import Recorder, call_app, http_scope, run

CID = "fedcba9876543210fedcba9876543210"
RID = "0123456789abcdef0123456789abcdef"
HEADERS = [(b"x-correlation-id", CID.encode()), (b"x-request-id", RID.encode()), (b"user-agent", b"probe/1")]
# What the app leaves in the context under the correlation id's key before the response starts.
KEEP = object()
DELETE = object()
STORED = [
    KEEP,
    DELETE,
    None,
    "set-by-the-app",
    42,
    uuid.UUID(int=7),
    "é latin-1",
    "€ not latin-1",
    "abc\r\nSet-Cookie: x=1",
    "",
]


class NoOpSetContext(RawContextMiddleware):
    async def set_context(self, request: Any) -> dict[Any, Any]:
        return await super().set_context(request)


class NoOpSetContextResponse(ContextMiddleware):
    async def set_context(self, request: Any) -> dict[Any, Any]:
        return await super().set_context(request)


class AwaitedCorrelationId(CorrelationIdPlugin):
    async def process_request(self, request: Any) -> Any:
        return await super().process_request(request)


class EnrichingCorrelationId(CorrelationIdPlugin):
    async def enrich_response(self, arg: Any) -> None:
        await super().enrich_response(arg)


# (middleware class per style, correlation id plugin class): the engine route first.
ROUTES = {
    "engine": ((RawContextMiddleware, ContextMiddleware), CorrelationIdPlugin),
    "set_context": ((NoOpSetContext, NoOpSetContextResponse), CorrelationIdPlugin),
    "process_request": ((RawContextMiddleware, ContextMiddleware), AwaitedCorrelationId),
    "enrich_response": ((RawContextMiddleware, ContextMiddleware), EnrichingCorrelationId),
}


def storing_app(stored: object, seen: list[dict[Any, Any]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context.copy())
        if stored is DELETE:
            del context["X-Correlation-ID"]
        elif stored is not KEEP:
            context["X-Correlation-ID"] = stored
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "headers": [(b"x-correlation-id", b"app")]})
            await send({"type": "websocket.close", "code": 1000})
            return
        headers = [(b"content-type", b"text/plain"), (b"x-correlation-id", b"app")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def by_name(messages: list[Any]) -> list[Any]:
    """The messages with each start's headers grouped by name, each name's values in order (the
    awaited enrich_response hooks add theirs after the stage's echoes, whatever the plugin order)."""
    return [
        {**message, "headers": sorted(message["headers"], key=lambda header: header[0])}
        if "headers" in message
        else message
        for message in messages
    ]


def serve(route: str, style: int, stored: object, kind: str) -> tuple[list[Any], list[dict[Any, Any]], bool]:
    """The messages sent, the context the app saw, and whether a context is set afterwards."""
    classes, correlation = ROUTES[route]
    seen: list[dict[Any, Any]] = []
    plugins = [correlation(), RequestIdPlugin(), UserAgentPlugin()]
    middleware = classes[style](storing_app(stored, seen), plugins=plugins)
    assert middleware.route.path == ("engine" if route == "engine" else "awaited")

    async def once() -> tuple[Recorder, bool]:
        if kind == "websocket":
            scope = http_scope("/ws", scope_type="websocket", headers=HEADERS)
            connect = [{"type": "websocket.connect"}]
            rec = await call_app(middleware, scope, connect, then={"type": "websocket.disconnect"})
        else:
            rec = await call_app(middleware, http_scope(headers=HEADERS))
        return rec, context.exists()

    rec, after = run(once())
    return by_name(rec.messages), seen, after


@pytest.mark.parametrize("kind", ["http", "websocket"])
@pytest.mark.parametrize("style", [0, 1], ids=["raw", "response"])
@pytest.mark.parametrize("route", [route for route in ROUTES if route != "engine"])
def test_both_routes_echo_and_set_the_same_context(layer: Any, route: str, style: int, kind: str) -> None:
    for stored in STORED:
        engine = serve("engine", style, stored, kind)
        assert serve(route, style, stored, kind) == engine, stored
        _, seen, after = engine
        assert seen == [{"X-Correlation-ID": CID, "X-Request-ID": RID, "User-Agent": "probe/1"}]
        assert after is False


def test_the_echo_follows_starlette_contexts_rules(layer: Any) -> None:
    # A sample of the table above, spelled out: what each style echoes for a stored value.
    def echoed(style: int, stored: object) -> list[tuple[bytes, bytes]]:
        messages, _, _ = serve("engine", style, stored, "http")
        return [header for header in messages[0]["headers"] if header[0] == b"x-correlation-id"]

    assert echoed(0, KEEP) == [(b"x-correlation-id", b"app"), (b"x-correlation-id", CID.encode())]
    assert echoed(1, KEEP) == [(b"x-correlation-id", CID.encode())]
    assert echoed(1, 42) == [(b"x-correlation-id", b"42")]
    assert echoed(1, "é latin-1") == [(b"x-correlation-id", "é latin-1".encode("latin-1"))]
    for unsendable in (None, DELETE, "€ not latin-1", "abc\r\nSet-Cookie: x=1"):
        assert echoed(0, unsendable) == [(b"x-correlation-id", b"app")]
        assert echoed(1, unsendable) == [(b"x-correlation-id", b"app")]


def test_a_set_context_returning_something_else_than_a_dict_is_refused(layer: Any) -> None:
    class Listing(RawContextMiddleware):
        async def set_context(self, request: Any) -> Any:
            return [("a", 1)]

    middleware = Listing(storing_app(KEEP, []), plugins=[])
    with pytest.raises(TypeError, match="set_context must return a dict, not list"):
        run(call_app(middleware, http_scope()))

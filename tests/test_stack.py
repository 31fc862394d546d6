"""stack(): the recommended order, wrapping the whole app."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import fastmw
from fastmw import AccessLogMiddleware, ErrorMiddleware, RequestIdMiddleware, TimingMiddleware, stack
from fastmw.errors import ConfigurationError
from fastmw.middleware.body_cache import BodyCacheMiddleware
from tests.helpers import plain_app, run


def get(app: Any, *paths: str) -> list[httpx.Response]:
    """GET each path through httpx's in-process ASGI transport (app exceptions not re-raised)."""

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return run(main())  # type: ignore[no-any-return]


def layers(app: Any) -> list[type]:
    found = []
    while hasattr(app, "app"):
        found.append(type(app))
        app = app.app
    return found


def test_default_order() -> None:
    assert layers(stack(plain_app)) == [RequestIdMiddleware, TimingMiddleware, AccessLogMiddleware, ErrorMiddleware]
    assert layers(stack(plain_app, body_cache=True, timing=False, errors=None)) == [
        RequestIdMiddleware,
        BodyCacheMiddleware,
        AccessLogMiddleware,
    ]


def test_options_and_shared_paths() -> None:
    app = stack(plain_app, timing={"header_name": None}, exclude_paths=["/health"], access_log={"exclude_paths": []})
    assert app._stage.paths.applies({"path": "/health"}) is False  # type: ignore[attr-defined]
    access = app.app.app  # type: ignore[attr-defined]
    assert isinstance(access, AccessLogMiddleware) and access._stage.paths is None
    with pytest.raises(ConfigurationError):
        stack(plain_app, timing="yes")  # type: ignore[arg-type]


def boom(request: Any) -> Any:
    raise RuntimeError("boom")


def test_starlettes_own_500_carries_headers(caplog: pytest.LogCaptureFixture) -> None:
    starlette_app = Starlette(routes=[Route("/ok", lambda r: PlainTextResponse("ok")), Route("/boom", boom)])
    app = stack(starlette_app)
    caplog.set_level(logging.INFO, logger="fastmw.access")
    ok, failed = get(app, "/ok", "/boom")
    assert ok.status_code == 200 and ok.headers["x-request-id"] and "app;dur=" in ok.headers["server-timing"]
    assert failed.status_code == 500 and failed.headers["x-request-id"] and failed.headers["x-process-time"]
    statuses = [r.status for r in caplog.records if r.name == "fastmw.access"]  # type: ignore[attr-defined]
    assert statuses == [200, 500]


def test_error_middleware_body_when_app_is_raw() -> None:
    async def raw_boom(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        raise RuntimeError("raw boom")

    (response,) = get(stack(raw_boom), "/")
    assert response.status_code == 500
    assert json.loads(response.content) == {"error": "internal_error", "request_id": response.headers["x-request-id"]}


def test_middleware_list_order_is_outermost_first() -> None:
    """Starlette's ``middleware=[...]`` list runs first-listed outermost; each
    ``add_middleware`` call wraps outside the previous ones (documented in docs/middleware.md)."""
    order: list[str] = []

    def tag(name: str) -> Any:
        class Tag:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    order.append(name)
                await self.app(scope, receive, send)

        return Tag

    app = Starlette(
        routes=[Route("/", lambda r: PlainTextResponse("ok"))], middleware=[Middleware(tag("a")), Middleware(tag("b"))]
    )
    app.add_middleware(tag("c"))
    get(app, "/")
    assert order == ["c", "a", "b"]
    assert fastmw.stack is stack

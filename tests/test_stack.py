"""stack(): the recommended order, wrapping the whole app."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import fastmw
from fastmw import (
    AccessLogMiddleware,
    ContextMiddleware,
    ErrorMiddleware,
    RawContextMiddleware,
    RequestIdMiddleware,
    TimingMiddleware,
    stack,
)
from fastmw._impl import core
from fastmw.errors import ConfigurationError
from fastmw.middleware._fusion import FUSE, FusableMiddleware, fused_stages
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.plugins import RequestIdPlugin
from fastmw.stack import StackedApp
from tests._stack_apps import fastapi_app, get_user, served
from tests.helpers import plain_app, run


def get(app: Any, *paths: str) -> list[httpx.Response]:
    """GET each path through httpx's in-process ASGI transport (app exceptions not re-raised)."""

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return run(main())


def layers(app: Any) -> list[type]:
    """The middleware classes from ``app`` in (each instance's class is its class bound to a core)."""
    found = []
    while hasattr(app, "app"):
        found.append(next(cls for cls in type(app).__mro__ if "_core" not in vars(cls)))
        app = app.app
    return found


def test_default_order() -> None:
    stacked = stack(plain_app)
    assert layers(stacked.app) == [RequestIdMiddleware, TimingMiddleware, AccessLogMiddleware, ErrorMiddleware]
    assert layers(stack(plain_app, body_cache=True, timing=False, errors=None).app) == [
        RequestIdMiddleware,
        BodyCacheMiddleware,
        AccessLogMiddleware,
    ]


def test_options_and_shared_paths() -> None:
    app = stack(plain_app, timing={"header_name": None}, exclude_paths=["/health"], access_log={"exclude_paths": []})
    assert app.app._stage.paths.applies({"path": "/health"}) is False  # type: ignore[attr-defined]
    access = app.app.app.app  # type: ignore[attr-defined]
    assert isinstance(access, AccessLogMiddleware) and access._stage is not None and access._stage.paths is None
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


# --------------------------------------------------------------------------- the stacked app


def test_fastapi_stays_usable_through_the_stack() -> None:
    events: list[str] = []
    api = fastapi_app(events)
    app = fastmw.stack(api)
    assert app.wrapped is api and isinstance(app.app, RequestIdMiddleware)
    # Startup code and tests reach the app through the stacked object.
    app.state.db = "sqlite"
    app.dependency_overrides[get_user] = lambda: "fake"

    @app.get("/late")  # type: ignore[untyped-decorator]  # forwarded: typed on app.wrapped
    async def late() -> dict[str, str]:
        return {"late": "yes"}

    router = APIRouter()
    router.get("/routed")(lambda: {"routed": True})
    app.include_router(router)
    assert app.url_path_for("item", item_id=3) == "/items/3"
    assert {"/items/{item_id}", "/late", "/routed"} <= set(app.openapi()["paths"])
    assert "dependency_overrides" in dir(app) and api.state.db == "sqlite"

    async def main() -> None:
        async with served(app) as client:
            assert events == ["startup"]  # lifespan through the wrapper
            item = await client.get("/items/3")
            assert item.json() == {"id": 3, "user": "fake", "db": "sqlite"}
            assert item.headers["x-request-id"] and "app;dur=" in item.headers["server-timing"]
            assert (await client.get("/late")).json() == {"late": "yes"}
            assert (await client.get("/routed")).json() == {"routed": True}
            app.dependency_overrides = {}  # set, not only mutated
            assert (await client.get("/items/4")).json()["user"] == "real"
        assert events == ["startup", "shutdown"]

    run(main())
    assert repr(app) == (
        "<StackedApp RequestIdMiddleware -> TimingMiddleware -> AccessLogMiddleware -> ErrorMiddleware -> FastAPI>"
    )


def test_add_middleware_after_stacking_runs_inside_the_stack() -> None:
    seen: list[str] = []

    class Inner:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(fastmw.correlation_id.get() or "no id")
            await self.app(scope, receive, send)

    app = stack(Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))]))
    app.add_middleware(Inner)
    (response,) = get(app, "/")
    assert seen == [response.headers["x-request-id"]]


def test_own_attributes_are_read_only_and_misses_are_the_apps() -> None:
    app = stack(Starlette())
    for name in ("app", "wrapped"):
        with pytest.raises(AttributeError, match="own attribute"):
            setattr(app, name, None)
    with pytest.raises(AttributeError):
        app.no_such_attribute  # noqa: B018
    app.custom = 1
    assert app.wrapped.custom == 1  # type: ignore[attr-defined]
    del app.custom
    assert not hasattr(app.wrapped, "custom")


def test_servers_see_asgi3_and_calls_reach_the_outermost_layer_directly() -> None:
    import uvicorn
    from starlette._utils import is_async_callable

    for app in (stack(Starlette()), stack(plain_app, request_id=False, timing=False, access_log=False, errors=False)):
        config = uvicorn.Config(app)
        config.load()
        assert config.interface == "asgi3"
        assert is_async_callable(app) and inspect.iscoroutinefunction(app.__call__)
    app = stack(plain_app)
    # The engine itself, no wrapper coroutine per request.
    assert type(app).__call__ is type(app.app).__call__ is core.run_pipeline
    assert isinstance(app.app, FusableMiddleware) and app.stages == app.app.stages
    (response,) = get(stack(plain_app, request_id=False, timing=False, access_log=False, errors=False), "/")
    assert response.status_code == 200


@pytest.mark.parametrize("context", [RawContextMiddleware, ContextMiddleware])
def test_an_outer_fastmw_middleware_still_fuses_with_the_stack(context: Any) -> None:
    app = stack(plain_app)
    assert fused_stages(app) == fused_stages(app.app) and len(fused_stages(app)) == (4 if FUSE else 1)
    wrapped = context(app, plugins=[RequestIdPlugin()])
    assert len(fused_stages(wrapped)) == (5 if FUSE else 1)
    assert all(type(s) is not StackedApp for s in fused_stages(wrapped))
    (response,) = get(wrapped, "/")
    assert response.status_code == 200 and response.headers["x-request-id"]


class SyncCall:
    def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class AsyncCall:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await plain_app(scope, receive, send)


def sync_app(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "got None"),
        (Starlette, "got the class Starlette: pass Starlette"),
        (42, "got int 42"),
        ("main:app", "got str"),
        (sync_app, "sync callable"),
        (lambda scope, receive, send: None, "sync callable"),
        (SyncCall(), "sync callable"),
        (functools.partial(sync_app, {}), "sync callable"),
    ],
)
def test_refuses_what_is_not_an_asgi_app(bad: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        stack(bad)


def test_accepts_asgi_apps_of_every_shape() -> None:
    async def app(scope: Any, receive: Any, send: Any, extra: Any = None) -> None:
        await plain_app(scope, receive, send)

    for good in (app, functools.partial(app, extra=1), AsyncCall(), ErrorMiddleware(plain_app), stack(plain_app)):
        (response,) = get(stack(good), "/")
        assert response.status_code == 200


def test_access_log_level_by_name(caplog: pytest.LogCaptureFixture) -> None:
    app = stack(plain_app, access_log={"level": "DEBUG"})
    access = app.app.app.app  # type: ignore[attr-defined]
    assert isinstance(access, AccessLogMiddleware) and access.level == logging.DEBUG
    assert stack(plain_app, access_log={"level": "INFO"}).app.app.app.level == logging.INFO  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG, logger="fastmw.access")
    get(app, "/")
    assert [r.levelname for r in caplog.records if r.name == "fastmw.access"] == ["DEBUG"]


def test_an_app_without_send_fails_at_startup_naming_the_fix() -> None:
    async def two(scope: Any, receive: Any) -> None:
        pass

    class TwoCall:
        async def __call__(self, scope: Any, receive: Any) -> None:
            pass

    for app in (two, TwoCall()):
        with pytest.raises(ConfigurationError, match=r"add the send parameter.*async def app\(scope, receive, send\)"):
            stack(app)  # type: ignore[type-var]
    stack(TwoCall().__call__.__func__)  # type: ignore[attr-defined]  # (self, scope, receive): three parameters

"""fastmw.extensions.sentry with a real sentry-sdk (events kept by an in-memory transport)."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

import fastmw
from fastmw import CorrelationIdMiddleware, RequestIdMiddleware
from fastmw.extensions.sentry import get_sentry_extension, set_transaction_id
from fastmw.types import ASGIApp, Scope
from tests.extensions.conftest import run_python, tag
from tests.helpers import call_app, http_scope, plain_app, run

MIDDLEWARES = {
    "CorrelationIdMiddleware": CorrelationIdMiddleware,
    "RequestIdMiddleware": RequestIdMiddleware,
    "stack": fastmw.stack,  # the fused engine runs RequestIdMiddleware's stage
}


def rid() -> str:
    return uuid.uuid4().hex


async def reporting_app(scope: Scope, receive: Any, send: Any) -> None:
    """Captures a message naming the id the request came with, then answers."""
    await asyncio.sleep(0)
    sentry_sdk.capture_message(fastmw.correlation_id.get() or "none")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def failing_app(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError("boom")


def test_get_sentry_extension_is_set_transaction_id() -> None:
    assert get_sentry_extension() is set_transaction_id


def test_set_transaction_id_tags_the_isolation_scope(sentry_events: list[dict[str, Any]]) -> None:
    first, second, other = contextvars.copy_context(), contextvars.copy_context(), contextvars.copy_context()
    first.run(set_transaction_id, "abc")
    assert sentry_sdk.get_isolation_scope()._tags["transaction_id"] == "abc"
    second.run(set_transaction_id, "xyz")
    for context in (first, second, other):
        context.run(sentry_sdk.capture_message, "event")
    # Each context keeps its own id even on one shared isolation scope; a context that set
    # none gets the scope's tag, as with asgi-correlation-id.
    assert [tag(e) for e in sentry_events] == ["abc", "xyz", "xyz"]


@pytest.mark.parametrize("make", MIDDLEWARES.values(), ids=MIDDLEWARES.keys())
def test_the_middlewares_load_sentrys_event_processor_and_add_no_per_request_call(
    make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make(plain_app)
    middleware = app
    while not isinstance(middleware, RequestIdMiddleware):  # the stack's outermost layer
        middleware = middleware.app
    assert middleware.sentry is True
    tagged: list[Any] = []
    monkeypatch.setattr(sentry_sdk.Scope, "set_tag", lambda scope, *args: tagged.append(args))
    for _ in range(3):
        assert run(call_app(app, http_scope())).status == 200
    assert tagged == []  # nothing runs per request: events are tagged when built


@pytest.mark.parametrize("make", MIDDLEWARES.values(), ids=MIDDLEWARES.keys())
def test_event_inside_a_request_carries_its_id(make: Any, sentry_events: list[dict[str, Any]]) -> None:
    app = make(reporting_app)
    given = rid()
    run(call_app(app, http_scope(headers=[(b"x-request-id", given.encode())])))
    made = (run(call_app(app, http_scope())).header(b"x-request-id") or b"").decode()
    assert [(e["message"], tag(e)) for e in sentry_events] == [(given, given), (made, made)]


@pytest.mark.parametrize("make", MIDDLEWARES.values(), ids=MIDDLEWARES.keys())
def test_concurrent_requests_never_see_each_others_tag(make: Any, sentry_events: list[dict[str, Any]]) -> None:
    count = 8
    entered = 0
    all_in = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal entered
        entered += 1
        if entered == count:
            all_in.set()
        await all_in.wait()  # every request has set its tag before any event is captured
        await reporting_app(scope, receive, send)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=make(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ids = [rid() for _ in range(count)]
            return await asyncio.gather(*(client.get("/", headers={"X-Request-ID": i}) for i in ids))

    responses = run(main())
    assert len({r.headers["x-request-id"] for r in responses}) == count
    assert len(sentry_events) == count
    for event in sentry_events:
        assert tag(event) == event["message"]


@pytest.mark.parametrize("outside", [True, False], ids=["sentry-outside", "sentry-inside"])
def test_unhandled_exception_event_carries_the_request_id(outside: bool, sentry_events: list[dict[str, Any]]) -> None:
    app: ASGIApp = SentryAsgiMiddleware(CorrelationIdMiddleware(failing_app))
    if not outside:
        app = CorrelationIdMiddleware(SentryAsgiMiddleware(failing_app))
    given = rid()
    with pytest.raises(RuntimeError, match="boom"):
        run(call_app(app, http_scope(headers=[(b"x-request-id", given.encode())])))
    (event,) = sentry_events
    # Captured after the request ended (Sentry outside): the id comes from the exception's mark;
    # the traceback note it also carries is not in the value, so Sentry groups events as before.
    assert event["exception"]["values"][0]["value"] == "boom"
    assert tag(event) == given


def test_without_sentry_sdk_no_hook_and_a_clear_import_error() -> None:
    done = run_python(
        """
        import sys
        sys.modules["sentry_sdk"] = None  # as if sentry-sdk were not installed
        import fastmw
        assert fastmw.CorrelationIdMiddleware(None).sentry is False
        assert fastmw.RequestIdMiddleware(None).sentry is False
        try:
            import fastmw.extensions.sentry
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install fastmw[sentry]" in done.stdout


def test_fastapi_with_sentrys_own_integrations() -> None:
    """The usual deployment: sentry-sdk's auto-enabled Starlette/FastAPI integrations around the app."""
    done = run_python(
        """
        import asyncio, httpx, sentry_sdk
        from fastapi import FastAPI
        from fastmw import CorrelationIdMiddleware
        from tests.extensions.conftest import DSN, MemoryTransport, tag

        transport = MemoryTransport()
        sentry_sdk.init(dsn=DSN, transport=transport)
        app = FastAPI()
        app.add_middleware(CorrelationIdMiddleware)

        @app.get("/fail")
        async def fail() -> None:
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")

        async def main() -> None:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                       base_url="http://t")
            ids = [f"{i:032x}" for i in range(1, 5)]
            await asyncio.gather(*(client.get("/fail", headers={"X-Request-ID": i}) for i in ids))
            got = sorted(tag(e) for e in transport.events)
            assert got == ids, got

        asyncio.run(main())
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

"""RequestIdMiddleware and the asgi-correlation-id compatible CorrelationIdMiddleware."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

import fastmw
from fastmw import CorrelationIdMiddleware, RequestIdMiddleware, correlation_id
from fastmw._impl import core
from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import ConfigurationError
from fastmw.types import Scope
from tests.helpers import Recorder, call_app, http_scope, plain_app, run
from tests.middleware.apps import (
    CHUNK,
    CHUNKS,
    WS_IN,
    Boom,
    LifespanApp,
    cancel_after_start,
    disconnecting_app,
    hanging_app,
    raise_after_start,
    raise_before_start,
    run_lifespan,
    streaming_app,
    websocket_app,
    ws_scope,
)

VALID = str(uuid.uuid4())
HOSTILE = [
    b"abc\r\nSet-Cookie: x=1",
    b"abc\x00def",
    b"a" * 10 * 1024,
    "\u00e9t\u00e9".encode("latin-1"),
    b"tab\there",
    b"space here",
    b"\x7f",
]


def seen_ids_app() -> tuple[list[Any], Any]:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((correlation_id.get(), core.header_get(scope["headers"], b"x-request-id")))
        await plain_app(scope, receive, send)

    return seen, app


def test_generates_and_echoes_uuid4() -> None:
    seen, app = seen_ids_app()
    sent = run(call_app(RequestIdMiddleware(app), http_scope()))
    value = sent.header(b"x-request-id")
    assert value is not None and core.is_uuid4(value.decode())
    assert seen == [(value.decode(), value)]
    assert correlation_id.get() is None  # reset after the response


def test_keeps_valid_incoming_id_and_uses_it() -> None:
    seen, app = seen_ids_app()
    sent = run(call_app(RequestIdMiddleware(app), http_scope(headers=[(b"X-Request-Id", VALID.encode())])))
    assert sent.header(b"x-request-id") == VALID.encode()
    assert seen[0][0] == VALID


def test_replaces_the_apps_own_header_once() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]})
        await send({"type": "http.response.body", "body": b""})

    sent = run(call_app(RequestIdMiddleware(app), http_scope(headers=[(b"x-request-id", VALID.encode())])))
    assert [v for k, v in sent.headers if k == b"x-request-id"] == [VALID.encode()]


@pytest.mark.parametrize("hostile", HOSTILE, ids=["crlf", "nul", "10k", "non-ascii", "tab", "space", "del"])
def test_hostile_ids_are_never_echoed_or_logged(hostile: bytes, caplog: pytest.LogCaptureFixture) -> None:
    seen, app = seen_ids_app()
    middleware = RequestIdMiddleware(app, validator=None)
    with caplog.at_level(logging.WARNING, logger="fastmw.request_id"):
        sent = run(call_app(middleware, http_scope(headers=[(b"x-request-id", hostile)])))
    echoed = sent.header(b"x-request-id")
    assert echoed is not None and echoed != hostile and core.is_uuid4(echoed.decode())
    assert seen[0] == (echoed.decode(), echoed)  # the app sees the replacement too
    text = caplog.text
    assert hostile.decode("latin-1") not in text and "\r" not in text and "\x00" not in text
    assert echoed.decode() in text


def test_validator_none_accepts_any_visible_ascii() -> None:
    sent = run(
        call_app(RequestIdMiddleware(plain_app, validator=None), http_scope(headers=[(b"x-request-id", b"req-1")]))
    )
    assert sent.header(b"x-request-id") == b"req-1"


def test_max_length() -> None:
    middleware = RequestIdMiddleware(plain_app, validator=None, max_length=5)
    assert (
        run(call_app(middleware, http_scope(headers=[(b"x-request-id", b"12345")]))).header(b"x-request-id") == b"12345"
    )
    assert (
        run(call_app(middleware, http_scope(headers=[(b"x-request-id", b"123456")]))).header(b"x-request-id")
        != b"123456"
    )


def test_reject_sends_configured_400_http_and_closes_websocket() -> None:
    called = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        called.append(scope)

    middleware = RequestIdMiddleware(app, on_invalid="reject", reject_status=422, reject_body=b"nope")
    sent = run(call_app(middleware, http_scope(headers=[(b"x-request-id", b"bad\r\n")])))
    assert sent.status == 422 and sent.body == b"nope" and sent.header(b"content-length") == b"4"
    assert core.is_uuid4(sent.header(b"x-request-id").decode())  # type: ignore[union-attr]
    ws = run(call_app(middleware, ws_scope(headers=[(b"x-request-id", b"bad id")]), WS_IN))
    assert ws.messages == [{"type": "websocket.close", "code": 1008}]
    assert called == []
    # A missing header is not invalid: a fresh id is made.
    assert run(call_app(RequestIdMiddleware(plain_app, on_invalid="reject"), http_scope())).status == 200


def test_generator_transformer_and_request_header_update() -> None:
    seen, app = seen_ids_app()
    middleware = RequestIdMiddleware(app, generator=lambda: "gen", transformer=str.upper, update_request_header=False)
    sent = run(call_app(middleware, http_scope()))
    assert sent.header(b"x-request-id") == b"GEN"
    assert seen == [("GEN", None)]  # request headers left alone


def test_misbehaving_generator_falls_back_to_a_random_id() -> None:
    sent = run(call_app(RequestIdMiddleware(plain_app, generator=lambda: "bad id\n"), http_scope()))
    assert core.is_uuid4(sent.header(b"x-request-id").decode())  # type: ignore[union-attr]


def test_stores_in_request_context_when_present() -> None:
    data: dict[str, Any] = {}
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(dict(REQUEST_CONTEXT.get()))
        await plain_app(scope, receive, send)

    async def main() -> Recorder:
        token = REQUEST_CONTEXT.set(data)
        try:
            return await call_app(RequestIdMiddleware(app, header_name="X-Correlation-ID"), http_scope())
        finally:
            REQUEST_CONTEXT.reset(token)

    sent = run(main())
    assert seen == [{"X-Correlation-ID": sent.header(b"x-correlation-id").decode()}]  # type: ignore[union-attr]


def test_websocket_accept_carries_the_id() -> None:
    sent = run(
        call_app(RequestIdMiddleware(websocket_app), ws_scope(headers=[(b"x-request-id", VALID.encode())]), WS_IN)
    )
    accept = sent.messages[0]
    assert accept["type"] == "websocket.accept"
    assert (b"x-request-id", VALID.encode()) in accept["headers"] and (b"x-ws", b"1") in accept["headers"]


def test_lifespan_passes_through_untouched() -> None:
    inner = LifespanApp()
    sent = run(run_lifespan(RequestIdMiddleware(inner)))
    assert [m["type"] for m in sent.messages] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "headers" not in inner.seen[0]


def test_streaming_is_not_buffered() -> None:
    sent = run(call_app(RequestIdMiddleware(streaming_app), http_scope()))
    bodies = [m for m in sent.messages if m["type"] == "http.response.body"]
    assert len(bodies) == CHUNKS and sent.body == CHUNK * CHUNKS


def test_errors_propagate_and_id_is_reset() -> None:
    with pytest.raises(Boom):
        run(call_app(RequestIdMiddleware(raise_before_start), http_scope()))
    sent = Recorder()
    with pytest.raises(Boom):
        run(call_app(RequestIdMiddleware(raise_after_start), http_scope(), send=sent))
    assert sent.header(b"x-request-id") is not None
    assert correlation_id.get() is None


def test_disconnect_and_cancellation() -> None:
    sent = run(call_app(RequestIdMiddleware(disconnecting_app), http_scope()))
    assert sent.header(b"x-request-id") is not None

    async def cancelled() -> Recorder:
        result = await cancel_after_start(RequestIdMiddleware(hanging_app), http_scope())
        assert correlation_id.get() is None
        return result

    assert run(cancelled()).header(b"x-request-id") is not None


def test_exclude_paths() -> None:
    middleware = RequestIdMiddleware(plain_app, exclude_paths=["/health", "/metrics"])
    assert run(call_app(middleware, http_scope("/health"))).header(b"x-request-id") is None
    assert run(call_app(middleware, http_scope("/metrics/x"))).header(b"x-request-id") is None
    assert run(call_app(middleware, http_scope("/healthz"))).header(b"x-request-id") is not None


@pytest.mark.parametrize(
    "options",
    [
        {"header_name": "bad header"},
        {"generator": None},
        {"validator": "x"},
        {"on_invalid": "ignore"},
        {"max_length": 0},
        {"reject_status": 200},
        {"exclude_paths": "/health"},
    ],
)
def test_validates_options_eagerly(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RequestIdMiddleware(plain_app, **options)


# --------------------------------------------------------------------------- asgi-correlation-id compatibility


def test_compat_defaults_match_asgi_correlation_id() -> None:
    asgi_correlation_id = pytest.importorskip("asgi_correlation_id")
    hex_non_v4 = uuid.uuid1().hex
    for header in [None, VALID.encode(), hex_non_v4.encode(), b"not-a-uuid", b""]:
        headers = [] if header is None else [(b"x-request-id", header)]
        ours = run(call_app(CorrelationIdMiddleware(plain_app), http_scope(headers=headers)))
        theirs = run(call_app(asgi_correlation_id.CorrelationIdMiddleware(plain_app), http_scope(headers=headers)))
        ours_value, theirs_value = ours.header(b"x-request-id"), theirs.header(b"x-request-id")
        assert [k for k, _ in ours.headers] == [k for k, _ in theirs.headers]
        if header:
            assert (ours_value == header) == (theirs_value == header)
        assert len(ours_value) == 32 or ours_value == header  # type: ignore[arg-type]


def test_compat_appends_on_http_and_leaves_websocket_alone() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]})
        await send({"type": "http.response.body", "body": b""})

    sent = run(call_app(CorrelationIdMiddleware(app), http_scope(headers=[(b"x-request-id", VALID.encode())])))
    assert [v for k, v in sent.headers if k == b"x-request-id"] == [b"app", VALID.encode()]
    ws = run(call_app(CorrelationIdMiddleware(websocket_app), ws_scope(), WS_IN))
    assert all(k != b"x-request-id" for k, _ in ws.messages[0]["headers"])


def test_compat_positional_and_validator_none_still_sanitises() -> None:
    middleware = CorrelationIdMiddleware(plain_app, "X-Correlation-ID", True, lambda: "generated", None, None)
    assert (
        run(call_app(middleware, http_scope(headers=[(b"x-correlation-id", b"free-form")]))).header(b"x-correlation-id")
        == b"free-form"
    )
    assert (
        run(call_app(middleware, http_scope(headers=[(b"x-correlation-id", b"a\r\nb")]))).header(b"x-correlation-id")
        == b"generated"
    )


def test_correlation_id_filter_like_asgi_correlation_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert fastmw.CorrelationIdFilter(default_value="-").filter(record) and vars(record)["correlation_id"] == "-"

    async def inside() -> None:
        token = correlation_id.set("0123456789abcdef")
        try:
            fastmw.CorrelationIdFilter(uuid_length=8).filter(record)
        finally:
            correlation_id.reset(token)

    asyncio.run(inside())
    assert vars(record)["correlation_id"] == "01234567"


def test_a_subclass_resolve_can_call_the_built_in_policy() -> None:
    """Overriding resolve() switches every id to it; super().resolve() is the built-in policy."""
    seen: list[Any] = []

    class Prefixed(RequestIdMiddleware):
        def resolve(self, raw: bytes | None) -> str | None:
            value = super().resolve(raw)
            seen.append(raw)
            return None if raw == b"refuse-me" else f"p-{value}"

    app = Prefixed(plain_app)
    assert run(call_app(app, http_scope(headers=[(b"x-request-id", b"abc")]))).header(b"x-request-id") == b"p-abc"
    refused = run(call_app(app, http_scope(headers=[(b"x-request-id", b"refuse-me")])))
    assert refused.status == 400 and seen == [b"abc", b"refuse-me"]

"""TimingMiddleware: headers on the response start, durations for callbacks and others."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from fastmw import TimingMiddleware
from fastmw.errors import ConfigurationError
from fastmw.middleware.timing import current_timing
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


async def slow_app(scope: Scope, receive: Any, send: Any) -> None:
    await asyncio.sleep(0.02)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"server-timing", b"db;dur=3")]})
    await asyncio.sleep(0.02)
    await send({"type": "http.response.body", "body": b"done"})


def test_headers_measure_time_to_response_start() -> None:
    calls: list[Any] = []
    middleware = TimingMiddleware(slow_app, callback=lambda scope, ttfb, total: calls.append((ttfb, total)))
    started = time.monotonic()
    sent = run(call_app(middleware, http_scope()))
    # The upper bound is the request's own wall time (a busy machine can stretch it), plus
    # the header's rounding: seconds in the header, milliseconds in Server-Timing.
    wall = time.monotonic() - started
    seconds = float(sent.header(b"x-process-time"))  # type: ignore[arg-type]
    assert 0.015 <= seconds <= wall + 0.0001
    assert len(sent.header(b"x-process-time").split(b".")[1]) == 4  # type: ignore[union-attr]
    server_timing = sent.header(b"server-timing")
    assert server_timing is not None and server_timing.startswith(b"db;dur=3, app;dur=")
    assert 15 <= float(server_timing.split(b"app;dur=")[1]) <= wall * 1000 + 0.1
    ((ttfb, total),) = calls
    assert 0.015 <= ttfb < total and total >= ttfb + 0.015


def test_header_switches_and_precision() -> None:
    only_server = run(call_app(TimingMiddleware(plain_app, header_name=None), http_scope()))
    assert only_server.header(b"x-process-time") is None and only_server.header(b"server-timing") is not None
    only_header = run(
        call_app(TimingMiddleware(plain_app, server_timing=False, header_name="X-Time", precision=7), http_scope())
    )
    assert only_header.header(b"server-timing") is None
    assert len(only_header.header(b"x-time").split(b".")[1]) == 7  # type: ignore[union-attr]
    neither = run(call_app(TimingMiddleware(plain_app, server_timing=False, header_name=None), http_scope()))
    assert neither.headers == [(b"content-type", b"text/plain")]


def test_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def callback(scope: Any, ttfb: Any, total: Any) -> None:
        raise ValueError("bad callback")

    with caplog.at_level(logging.ERROR, logger="fastmw.timing"):
        sent = run(call_app(TimingMiddleware(plain_app, callback=callback), http_scope()))
    assert sent.status == 200 and "bad callback" in caplog.text


def test_exposes_recorder_to_inner_middleware() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(current_timing())
        await plain_app(scope, receive, send)

    run(call_app(TimingMiddleware(app), http_scope()))
    assert seen[0] is not None and seen[0].complete and seen[0].t_last_byte >= seen[0].t_first_byte > 0
    assert current_timing() is None


def test_websocket_and_lifespan() -> None:
    sent = run(call_app(TimingMiddleware(websocket_app), ws_scope(), WS_IN))
    assert any(k == b"x-process-time" for k, _ in sent.messages[0]["headers"])
    lifespan = run(run_lifespan(TimingMiddleware(LifespanApp())))
    assert [m["type"] for m in lifespan.messages] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_streaming_errors_disconnect_cancel() -> None:
    calls: list[Any] = []
    middleware = TimingMiddleware(streaming_app, callback=lambda *args: calls.append(args))
    sent = run(call_app(middleware, http_scope()))
    assert sent.body == CHUNK * CHUNKS and len(sent.messages) == CHUNKS + 1
    for app in (raise_before_start, raise_after_start):
        with pytest.raises(Boom):
            run(call_app(TimingMiddleware(app, callback=lambda *args: calls.append(args)), http_scope()))
    assert calls[1][1] is None  # no response start: no ttfb, still a total
    run(call_app(TimingMiddleware(disconnecting_app, callback=lambda *args: calls.append(args)), http_scope()))
    run(cancel_after_start(TimingMiddleware(hanging_app, callback=lambda *args: calls.append(args)), http_scope()))
    assert len(calls) == 5 and all(total >= 0 for _, _, total in calls)


def test_exclude_paths_and_validation() -> None:
    middleware = TimingMiddleware(plain_app, include_paths=["/api"], exclude_paths=["/api/health"])
    assert run(call_app(middleware, http_scope("/api/x"))).header(b"x-process-time") is not None
    assert run(call_app(middleware, http_scope("/api/health"))).header(b"x-process-time") is None
    assert run(call_app(middleware, http_scope("/other"))).header(b"x-process-time") is None
    for options in ({"precision": 10}, {"header_name": "a b"}, {"callback": 3}):
        with pytest.raises(ConfigurationError):
            TimingMiddleware(plain_app, **options)


def test_recorder_is_send() -> None:
    sent = Recorder()
    run(call_app(TimingMiddleware(plain_app), http_scope(), send=sent))
    assert sent.body == b"ok"

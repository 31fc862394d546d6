"""ErrorMiddleware: a 500 through the outer middleware, never a second start."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from starlette.responses import PlainTextResponse

from fastmw import ErrorMiddleware, RequestIdMiddleware, TimingMiddleware
from fastmw.errors import ConfigurationError
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
    websocket_raises,
    ws_scope,
)


def test_500_carries_outer_headers_and_is_reraised() -> None:
    app = RequestIdMiddleware(TimingMiddleware(ErrorMiddleware(raise_before_start)))
    sent = Recorder()
    with pytest.raises(Boom):
        run(call_app(app, http_scope(), send=sent))
    assert sent.status == 500 and sent.header(b"content-type") == b"application/json"
    request_id = sent.header(b"x-request-id")
    assert request_id is not None and sent.header(b"x-process-time") is not None
    assert json.loads(sent.body) == {"error": "internal_error", "request_id": request_id.decode()}
    assert sent.header(b"content-length") == str(len(sent.body)).encode()


def test_no_reraise_logs_instead(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        sent = run(call_app(ErrorMiddleware(raise_before_start, reraise=False), http_scope()))
    assert sent.status == 500 and json.loads(sent.body)["request_id"] is None
    assert "before start" in caplog.text


def test_custom_handler_sync_async_and_failing(caplog: pytest.LogCaptureFixture) -> None:
    def handler(scope: Any, exc: BaseException) -> Any:
        return PlainTextResponse(f"oops: {exc}", status_code=503)

    async def async_handler(scope: Any, exc: BaseException) -> Any:
        return PlainTextResponse("async", status_code=502)

    def broken(scope: Any, exc: BaseException) -> Any:
        raise ValueError("handler broke")

    sent = run(call_app(ErrorMiddleware(raise_before_start, handler=handler, reraise=False), http_scope()))
    assert (sent.status, sent.body) == (503, b"oops: before start")
    sent = run(call_app(ErrorMiddleware(raise_before_start, handler=async_handler, reraise=False), http_scope()))
    assert (sent.status, sent.body) == (502, b"async")
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        sent = run(call_app(ErrorMiddleware(raise_before_start, handler=broken, reraise=False), http_scope()))
    assert sent.status == 500 and "handler broke" in caplog.text


def test_after_start_never_sends_a_second_start(caplog: pytest.LogCaptureFixture) -> None:
    sent = Recorder()
    with caplog.at_level(logging.ERROR, logger="fastmw.error"), pytest.raises(Boom):
        run(call_app(ErrorMiddleware(raise_after_start, reraise=False), http_scope(), send=sent))
    assert sent.status == 200 and sent.body == b"partial"
    assert "response was cut short" in caplog.text


def test_websocket_close_1011_before_accept_only() -> None:
    sent = Recorder()
    with pytest.raises(Boom):
        run(call_app(ErrorMiddleware(websocket_raises), ws_scope(), WS_IN, send=sent))
    assert sent.messages == [{"type": "websocket.close", "code": 1011}]
    ok = run(call_app(ErrorMiddleware(websocket_app), ws_scope(), WS_IN))
    assert [m["type"] for m in ok.messages] == ["websocket.accept", "websocket.send", "websocket.close"]


def test_passthroughs_streaming_disconnect_cancel() -> None:
    lifespan = run(run_lifespan(ErrorMiddleware(LifespanApp())))
    assert len(lifespan.messages) == 2
    sent = run(call_app(ErrorMiddleware(streaming_app), http_scope()))
    assert sent.body == CHUNK * CHUNKS and len(sent.messages) == CHUNKS + 1
    assert run(call_app(ErrorMiddleware(disconnecting_app), http_scope())).status == 200
    cancelled = run(cancel_after_start(ErrorMiddleware(hanging_app), http_scope()))
    assert [m["type"] for m in cancelled.messages] == ["http.response.start"]


def test_exclude_paths_and_validation() -> None:
    middleware = ErrorMiddleware(raise_before_start, exclude_paths=["/raw"])
    sent = Recorder()
    with pytest.raises(Boom):
        run(call_app(middleware, http_scope("/raw"), send=sent))
    assert sent.messages == []
    with pytest.raises(ConfigurationError):
        ErrorMiddleware(plain_app, handler="x")  # type: ignore[arg-type]


def test_one_accurate_line_when_starlette_sends_the_500(caplog: pytest.LogCaptureFixture) -> None:
    """Starlette's ServerErrorMiddleware answers (text/plain 500) and re-raises: fastmw
    logs the exception once, with the request id, says who answered, and leaves the traceback
    to the server the exception goes on to (the exception carries the request id)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    import fastmw

    def fail(request: Any) -> Any:
        raise Boom("in the endpoint")

    app = fastmw.stack(Starlette(routes=[Route("/", fail)]))
    given = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    with caplog.at_level(logging.ERROR, logger="fastmw.error"), pytest.raises(Boom) as info:
        sent = Recorder()
        run(call_app(app, http_scope(headers=[(b"x-request-id", given.encode())]), send=sent))
    assert info.value.fastmw_request_id == given  # type: ignore[attr-defined]
    assert sent.status == 500 and sent.body == b"Internal Server Error"
    # Sent while Starlette handled the exception it re-raises next: the server will close.
    assert (b"connection", b"close") in sent.headers
    lines = [record for record in caplog.records if record.name == "fastmw.error"]
    assert len(lines) == 1
    (line,) = lines
    assert given in line.getMessage() and "complete 500 response" in line.getMessage()
    assert line.exc_info is None and "re-raised" in line.getMessage()

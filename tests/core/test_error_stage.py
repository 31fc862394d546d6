"""The error stage (``error_stage``): the 500 / close 1011 answer, handlers and the one log
line per unhandled exception, run by the engine, against both core twins."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import Recorder, call_app, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"


def failing(*messages: dict[str, Any], error: Exception | None = None) -> Any:
    """An app that sends ``messages`` and then raises ``error`` (ValueError("boom") by default)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(dict(message))
        raise error if error is not None else ValueError("boom")

    return app


def serve(core: ModuleType, app: Any, stage: Any, scope: dict[str, Any] | None = None) -> tuple[Recorder, Any]:
    """One request through [RequestIdStage, stage]: (what was sent, the exception or None)."""
    downstream = Recorder()
    pipeline = core.Pipeline(app, [core.RequestIdStage("x-request-id", "id"), stage])
    scope = scope if scope is not None else http_scope(headers=[(b"x-request-id", RID.encode())])
    try:
        run(call_app(pipeline, scope, send=downstream))
    except Exception as exc:
        return downstream, exc
    return downstream, None


def unhandled(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, Any]]:
    return [
        (record.levelname, record.getMessage(), type(record.exc_info[1]) if record.exc_info else None)
        for record in caplog.records
        if record.name == "fastmw.error"
    ]


START = {"type": "http.response.start", "status": 201, "headers": []}
RERAISED = "; re-raised (the server logs the traceback)"


def test_configuration_and_errors(core: ModuleType) -> None:
    stage = core.ErrorStage()
    assert stage.handler is None and stage.reraise is True and stage.catches and stage.starts
    assert core.ErrorStage(reraise=0).reraise is False
    with pytest.raises(TypeError) as info:
        core.ErrorStage(handler=1)
    assert str(info.value) == "handler must be callable or None, not int"


@pytest.mark.parametrize("request_id", [RID, None, 5, "é\n"])
def test_error_body(core: ModuleType, request_id: Any) -> None:
    body = core.error_body(request_id)
    assert body == json.dumps({"error": "internal_error", "request_id": request_id}).encode()


@pytest.mark.parametrize("reraise", [True, False])
def test_an_exception_before_the_response_is_a_json_500(
    core: ModuleType, reraise: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        downstream, exc = serve(core, failing(), core.ErrorStage(reraise=reraise))
    assert (type(exc), str(exc)) == ((ValueError, "boom") if reraise else (type(None), "None"))
    body = core.error_body(RID)
    assert downstream.status == 500 and downstream.body == body
    # Re-raised: the server will close the connection, so the 500 says so.
    closing = [(b"connection", b"close")] if reraise else []
    assert downstream.headers == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *closing,
        (b"x-request-id", RID.encode()),
    ]
    # One traceback: the server logs it when the exception goes on to it, fastmw otherwise.
    if reraise:
        assert unhandled(caplog) == [
            ("ERROR", f"unhandled ValueError in GET / (request id {RID}); sent 500{RERAISED}", None)
        ]
        assert exc.fastmw_request_id == RID
        if hasattr(exc, "add_note"):
            assert exc.__notes__ == [f"request id: {RID}"]
    else:
        assert unhandled(caplog) == [
            ("ERROR", f"unhandled ValueError in GET / (request id {RID}); sent 500", ValueError)
        ]


def test_no_connection_header_over_http2(core: ModuleType) -> None:
    scope = http_scope(headers=[(b"x-request-id", RID.encode())])
    scope["http_version"] = "2"
    downstream, exc = serve(core, failing(), core.ErrorStage(), scope)
    assert type(exc) is ValueError and downstream.status == 500
    assert b"connection" not in [name for name, _ in downstream.headers]


def test_a_handlers_response_says_connection_close_when_re_raised(core: ModuleType) -> None:
    async def response(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": [(b"x-h", b"1")]})
        await send({"type": "http.response.body", "body": b"sorry"})

    downstream, exc = serve(core, failing(), core.ErrorStage(handler=lambda scope, exc: response))
    assert type(exc) is ValueError and downstream.status == 503
    assert downstream.headers == [(b"x-h", b"1"), (b"connection", b"close"), (b"x-request-id", RID.encode())]


@pytest.mark.parametrize(
    ("method", "path", "shown"),
    [("GET\r\nX", "/a\u2028b", "GET\\r\\nX /a\\u2028b"), ("G\x1bT", "/\x85", "G\\x1bT /\\x85")],
)
def test_the_error_line_escapes_what_the_client_sent(
    core: ModuleType, method: str, path: str, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    scope = http_scope(method=method, path=path, headers=[(b"x-request-id", RID.encode())])
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        serve(core, failing(), core.ErrorStage(reraise=False), scope)
    ((_, message, _),) = unhandled(caplog)
    assert message == f"unhandled ValueError in {shown} (request id {RID}); sent 500"
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("sent", "outcome"),
    [
        ([START, {"type": "http.response.body", "body": b"x"}], "the app had sent a complete 201 response"),
        ([START, {"type": "http.response.body", "body": b"x", "more_body": True}], "the 201 response was cut short"),
    ],
)
def test_after_the_response_started_nothing_more_is_sent(
    core: ModuleType, sent: list[Any], outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        downstream, exc = serve(core, failing(*sent), core.ErrorStage(reraise=False))
    # Never a second start: the exception propagates (even with reraise=False) and the server closes.
    assert type(exc) is ValueError
    assert [m["type"] for m in downstream.messages] == ["http.response.start", "http.response.body"]
    assert unhandled(caplog) == [
        ("ERROR", f"unhandled ValueError in GET / (request id {RID}); {outcome}{RERAISED}", None)
    ]


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ([], [{"type": "websocket.close", "code": 1011}]),
        ([{"type": "websocket.accept"}], [{"type": "websocket.accept", "headers": [(b"x-request-id", b"w")]}]),
        ([{"type": "websocket.close", "code": 1003}], [{"type": "websocket.close", "code": 1003}]),
    ],
)
def test_a_websocket_is_closed_with_1011_unless_it_was_answered(
    core: ModuleType, sent: list[Any], expected: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    scope = http_scope(scope_type="websocket", headers=[(b"x-request-id", b"w")])
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        downstream, exc = serve(core, failing(*sent), core.ErrorStage(), scope)
    assert type(exc) is ValueError and downstream.messages == expected
    message = f"unhandled ValueError in WEBSOCKET / (request id w); closed the websocket (1011){RERAISED}"
    assert unhandled(caplog) == [("ERROR", message, None)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handler_answers_instead(core: ModuleType, kind: str) -> None:
    got: list[Any] = []

    async def response(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": [(b"x-h", b"1")]})
        await send({"type": "http.response.body", "body": b"sorry"})

    def handler(scope: Any, exc: BaseException) -> Any:
        got.append((scope["path"], type(exc)))
        return response

    async def async_handler(scope: Any, exc: BaseException) -> Any:
        return handler(scope, exc)

    stage = core.ErrorStage(handler=handler if kind == "sync" else async_handler, reraise=False)
    downstream, exc = serve(core, failing(), stage)
    assert exc is None and got == [("/", ValueError)]
    assert downstream.status == 503 and downstream.body == b"sorry"
    assert downstream.headers == [(b"x-h", b"1"), (b"x-request-id", RID.encode())]


@pytest.mark.parametrize("started", [False, True])
def test_a_failing_handler_is_logged_and_the_default_answer_sent(
    core: ModuleType, started: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if started:
            await send({"type": "http.response.start", "status": 502, "headers": []})
        raise RuntimeError("handler response broke")

    stage = core.ErrorStage(handler=lambda scope, exc: broken)
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        downstream, exc = serve(core, failing(), stage)
    assert type(exc) is ValueError
    # The default 500 unless the handler's response had started (no second start).
    assert downstream.status == (502 if started else 500)
    assert downstream.body == (b"" if started else core.error_body(RID))
    messages = [message for _, message, _ in unhandled(caplog)]
    assert messages[0].startswith("error handler ") and messages[0].endswith(" failed")
    sent = 502 if started else 500
    assert messages[1] == f"unhandled ValueError in GET / (request id {RID}); sent {sent}{RERAISED}"


def test_answer_needs_the_engines_send_recorder(core: ModuleType) -> None:
    with pytest.raises(TypeError) as info:
        run(core.ErrorStage().answer(http_scope(), None, Recorder(), ValueError("x")))
    assert str(info.value) == "send must be the engine's SendRecorder, not Recorder"


def test_a_path_filter_leaves_the_exception_alone(core: ModuleType) -> None:
    class Nowhere:
        everything = False

        def applies(self, scope: Any) -> bool:
            return False

    downstream, exc = serve(core, failing(), core.ErrorStage(paths=Nowhere(), reraise=False))
    assert type(exc) is ValueError and downstream.messages == []


def test_a_5xx_sent_while_handling_an_exception_says_connection_close(core: ModuleType) -> None:
    async def answers_in_except(scope: Any, receive: Any, send: Any) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            # As Starlette's ServerErrorMiddleware does, before re-raising.
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})
        await send_more(send)

    async def send_more(send: Any) -> None:
        pass

    async def plain_500(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    downstream, exc = serve(core, answers_in_except, core.ErrorStage())
    assert exc is None and (b"connection", b"close") in downstream.headers
    downstream, exc = serve(core, plain_500, core.ErrorStage())
    assert exc is None and b"connection" not in [name for name, _ in downstream.headers]


def test_the_error_stage_edits_only_a_5xx_start(core: ModuleType) -> None:
    """Below 500 (or a status that is not exactly an int) the stage has nothing to add: with no
    other stage editing, the app's own header list goes out as it is, not a checked copy."""
    assert core.Stage().start_status == 0 and core.ErrorStage().start_status == 500
    sent: list[Any] = []

    def app_sending(status: Any, *, in_except: bool) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            headers = [(b"x-h", b"1")]
            sent.append(headers)
            message = {"type": "http.response.start", "status": status, "headers": headers}
            if in_except:
                try:
                    raise ValueError("boom")
                except ValueError:
                    await send(message)
            else:
                await send(message)
            await send({"type": "http.response.body", "body": b"x"})

        return app

    def alone(app: Any) -> Recorder:
        return run(call_app(core.Pipeline(app, [core.ErrorStage()]), http_scope()))

    for status in (200, 404, 499, -1, -(2**70), HTTPStatus.INTERNAL_SERVER_ERROR):
        downstream = alone(app_sending(status, in_except=True))
        assert downstream.start["headers"] is sent[-1] and downstream.headers == [(b"x-h", b"1")]
    for status in (500, 503, 2**70):
        downstream = alone(app_sending(status, in_except=True))
        assert downstream.headers == [(b"x-h", b"1"), (b"connection", b"close")]
        assert sent[-1] == [(b"x-h", b"1")]  # edited on a copy, never the app's list
        downstream = alone(app_sending(status, in_except=False))
        assert downstream.headers == [(b"x-h", b"1")]

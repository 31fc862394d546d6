"""AccessLogMiddleware: one record per request, to logging or the JSON-lines sink."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from fastmw import AccessLogMiddleware, ErrorMiddleware, RequestIdMiddleware, TimingMiddleware
from fastmw.errors import ConfigurationError
from fastmw.sink import JsonLinesSink
from fastmw.types import Message, Scope
from tests.helpers import call_app, http_scope, plain_app, run
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

UA = (b"user-agent", b"curl/8")


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fastmw.access"]


def collected(logger: logging.Logger) -> list[logging.LogRecord]:
    """The records ``logger`` handles from now on, enabled at INFO."""
    logger.setLevel(logging.INFO)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign, assignment]
    logger.addHandler(handler)
    return seen


@pytest.fixture
def caplog_info(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="fastmw.access")
    return caplog


def test_one_record_with_fields_and_uvicorn_style_line(caplog_info: pytest.LogCaptureFixture) -> None:
    app = RequestIdMiddleware(AccessLogMiddleware(streaming_app))
    body: list[Message] = [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"de"},
    ]
    sent = run(call_app(app, http_scope("/items/1", method="POST", query_string=b"q=1", headers=[UA]), body))
    (record,) = records(caplog_info)
    assert record.getMessage().startswith('127.0.0.1:50000 - "POST /items/1?q=1 HTTP/1.1" 200 ')
    assert record.getMessage().endswith("ms")
    fields: Any = record
    assert (fields.method, fields.path, fields.query, fields.http_version, fields.status) == (
        "POST",
        "/items/1",
        "q=1",
        "1.1",
        200,
    )
    assert fields.response_bytes == len(CHUNK) * CHUNKS and fields.request_bytes == 5
    assert fields.client_addr == "127.0.0.1:50000" and fields.user_agent == "curl/8"
    assert fields.request_id == sent.header(b"x-request-id").decode()  # type: ignore[union-attr]
    assert 0 <= fields.ttfb_ms <= fields.duration_ms
    assert len(sent.messages) == CHUNKS + 1  # streamed, not buffered


def test_optional_fields_and_hostile_text(caplog_info: pytest.LogCaptureFixture) -> None:
    app = AccessLogMiddleware(plain_app, include_query=False, include_user_agent=False)
    run(call_app(app, http_scope("/a\r\nb", query_string=b"x=\r\n", headers=[UA], client=None)))
    (record,) = records(caplog_info)
    fields: Any = record
    assert fields.query is None and fields.user_agent is None and fields.client_addr is None
    assert "\r" not in record.getMessage() and "\n" not in record.getMessage()
    caplog_info.clear()
    run(call_app(AccessLogMiddleware(plain_app), http_scope("/p", headers=[(b"user-agent", b"evil\r\nline\xff")])))
    assert "\n" not in records(caplog_info)[0].user_agent  # type: ignore[attr-defined]


def test_statuses_for_errors_disconnects_and_cancellation(caplog_info: pytest.LogCaptureFixture) -> None:
    with pytest.raises(Boom):
        run(call_app(AccessLogMiddleware(raise_before_start), http_scope()))
    with pytest.raises(Boom):
        run(call_app(AccessLogMiddleware(raise_after_start), http_scope()))
    with pytest.raises(Boom):
        run(call_app(AccessLogMiddleware(ErrorMiddleware(raise_before_start)), http_scope()))
    run(call_app(AccessLogMiddleware(disconnecting_app), http_scope()))
    run(cancel_after_start(AccessLogMiddleware(hanging_app), http_scope()))
    assert [r.status for r in records(caplog_info)] == [500, 200, 500, 499, 499]  # type: ignore[attr-defined]


def test_uses_timing_start_when_present(caplog_info: pytest.LogCaptureFixture) -> None:
    sent = run(call_app(TimingMiddleware(AccessLogMiddleware(plain_app)), http_scope()))
    fields: Any = records(caplog_info)[0]
    header_ms = float(sent.header(b"server-timing").split(b"=")[1])  # type: ignore[union-attr]
    # The header's milliseconds are rounded half up to 0.1 ms; ttfb is taken after it.
    assert fields.ttfb_ms >= header_ms - 0.05 - 1e-9


def test_websocket(caplog_info: pytest.LogCaptureFixture) -> None:
    run(call_app(AccessLogMiddleware(websocket_app), ws_scope(), WS_IN))
    with pytest.raises(Boom):
        run(call_app(AccessLogMiddleware(websocket_raises), ws_scope(), WS_IN))
    assert [(r.method, r.status) for r in records(caplog_info)] == [("WEBSOCKET", 101), ("WEBSOCKET", 403)]  # type: ignore[attr-defined]


def test_disabled_logger_skips_work(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fastmw.access")
    middleware = AccessLogMiddleware(plain_app)
    assert run(call_app(middleware, http_scope())).status == 200
    assert records(caplog) == []


def test_logger_changes_between_requests_are_seen() -> None:
    # The compiled stage reads a stdlib logger's enabled-state from its cache: every way of
    # changing it (level, logging.disable, .disabled) takes effect on the next request.
    logger = logging.getLogger("fastmw.test.changes")
    logger.setLevel(logging.WARNING)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    middleware = AccessLogMiddleware(plain_app, logger=logger)
    seen = []
    steps: tuple[Callable[[], object], ...] = (
        lambda: None,  # WARNING: off
        lambda: logger.setLevel(logging.INFO),  # on
        lambda: logging.disable(logging.INFO),  # off
        lambda: logging.disable(logging.NOTSET),  # on
        lambda: setattr(logger, "disabled", True),  # off
        lambda: setattr(logger, "disabled", False),  # on
        lambda: logger.setLevel(logging.ERROR),  # off
    )
    try:
        for step in steps:
            step()
            before = len(lines)
            run(call_app(middleware, http_scope()))
            seen.append(len(lines) - before)
    finally:
        logging.disable(logging.NOTSET)
        logger.removeHandler(handler)
    assert seen == [0, 1, 0, 1, 0, 1, 0]


def test_logger_subclass_is_asked() -> None:
    class Switched(logging.Logger):
        enabled = False
        asked = 0

        def isEnabledFor(self, level: int) -> bool:
            Switched.asked += 1
            return self.enabled

    logger = Switched("fastmw.test.switched")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    middleware = AccessLogMiddleware(plain_app, logger=logger)
    for enabled in (False, True, False, True):
        logger.enabled = enabled
        run(call_app(middleware, http_scope()))
    assert Switched.asked >= 4 and len(lines) == 2


def test_records_name_no_caller_in_either_core(caplog_info: pytest.LogCaptureFixture) -> None:
    # A record is made after the response, by the stage: there is no caller to report, so the
    # stage does not walk the stack for one (as with logging._srcfile = None), in both cores.
    run(call_app(AccessLogMiddleware(plain_app), http_scope()))
    (record,) = records(caplog_info)
    assert (record.pathname, record.filename, record.module) == ("(unknown file)",) * 3
    assert (record.lineno, record.funcName, record.stack_info) == (0, "(unknown function)", None)
    assert record.getMessage().startswith('127.0.0.1:50000 - "GET / HTTP/1.1" 200 ')
    assert record.levelno == logging.INFO and record.name == "fastmw.access"


def test_records_come_from_the_record_factory_and_reach_the_handlers_once(
    caplog_info: pytest.LogCaptureFixture,
) -> None:
    # logging.setLogRecordFactory is honoured; a factory's attribute named like an access
    # field is replaced by the request's value (logger.log would refuse the record).
    default = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = default(*args, **kwargs)
        record.from_factory = True
        record.status = "factory"
        return record

    logging.setLogRecordFactory(factory)
    try:
        run(call_app(AccessLogMiddleware(plain_app), http_scope()))
    finally:
        logging.setLogRecordFactory(default)
    (record,) = records(caplog_info)
    assert record.from_factory is True and record.status == 200  # type: ignore[attr-defined]


def test_logger_subclass_making_its_records_is_called_and_filters_apply() -> None:
    # A Logger overriding makeRecord gets logger.log() calls (so its makeRecord runs); filters
    # added to it apply to access records as to any other.
    class Own(logging.Logger):
        def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
            record = super().makeRecord(*args, **kwargs)
            record.made_by = "Own"
            return record

    logger = Own("fastmw.test.own")
    seen = collected(logger)
    logger.addFilter(lambda record: record.status != 500)  # type: ignore[attr-defined]
    middleware = AccessLogMiddleware(plain_app, logger=logger)
    run(call_app(middleware, http_scope()))
    with pytest.raises(Boom):
        run(call_app(AccessLogMiddleware(raise_before_start, logger=logger), http_scope()))
    assert [(r.made_by, r.status) for r in seen] == [("Own", 200)]  # type: ignore[attr-defined]


def test_logger_subclass_finding_its_caller_is_called_as_logging_calls_it() -> None:
    # A Logger that overrides how a call becomes a record (here findCaller) gets logger.log():
    # its override runs and decides what the record says.
    class Located(logging.Logger):
        def findCaller(self, stack_info: bool = False, stacklevel: int = 1) -> tuple[str, int, str, str | None]:
            return ("located.py", 7, "where", None)

    logger = Located("fastmw.test.located")
    seen = collected(logger)
    run(call_app(AccessLogMiddleware(plain_app, logger=logger), http_scope()))
    assert [(r.pathname, r.lineno, r.funcName, r.status) for r in seen] == [  # type: ignore[attr-defined]
        ("located.py", 7, "where", 200)
    ]


def test_exclude_paths_and_validation(caplog_info: pytest.LogCaptureFixture) -> None:
    middleware = AccessLogMiddleware(plain_app, exclude_paths=["/health", "/metrics"])
    for path in ("/health", "/metrics", "/x"):
        run(call_app(middleware, http_scope(path)))
    assert [r.path for r in records(caplog_info)] == ["/x"]  # type: ignore[attr-defined]
    bad_levels = ({"level": "LOUD"}, {"level": "info"}, {"level": True}, {"level": 20.0})
    for options in ({"logger": 3}, *bad_levels, {"sink": object()}):
        with pytest.raises(ConfigurationError):
            AccessLogMiddleware(plain_app, **options)


def test_level_names_resolve_as_logging_resolves_them() -> None:
    logging.addLevelName(25, "NOTICE")
    for name, number in (("INFO", logging.INFO), ("WARN", logging.WARNING), ("NOTICE", 25), (5, 5)):
        assert AccessLogMiddleware(plain_app, level=name).level == number


def test_lifespan_passthrough_without_sink() -> None:
    inner = LifespanApp()
    sent = run(run_lifespan(AccessLogMiddleware(inner)))
    assert [m["type"] for m in sent.messages] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --------------------------------------------------------------------------- JSON-lines sink


def test_json_sink_writes_valid_lines_for_hostile_bytes_and_flushes_on_shutdown() -> None:
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=100, flush_interval=3600)
    app = AccessLogMiddleware(LifespanRouter(), sink=sink)
    hostile = bytes(range(256))
    run(call_app(app, http_scope("/é", query_string=b'"\\\x00', headers=[(b"user-agent", hostile)])))
    run(call_app(app, http_scope("/2")))
    assert stream.getvalue() == b""  # batched
    run(run_lifespan(app))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    # Text fields are the same printable str as in the logging record's extra.
    assert first["user_agent"] == hostile.decode("latin-1").encode("unicode_escape").decode("ascii")
    assert first["query"] == '"\\\\\\x00' and json.loads(lines[1])["query"] == ""
    assert first["path"] == "/é" and first["status"] == 200 and first["response_bytes"] == 2
    # Wall-clock seconds to the microsecond, as round(time.time(), 6) gives them.
    assert isinstance(first["time"], float) and round(first["time"], 6) == first["time"]
    assert abs(first["time"] - time.time()) < 60
    assert re.fullmatch(rb'.*"time":\d{10}\.\d{1,6},.*', lines[0])


def test_json_sink_write_errors_never_reach_a_request_and_are_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError("disk full")

    sink = JsonLinesSink(Broken(), batch_lines=1)
    app = AccessLogMiddleware(plain_app, sink=sink)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert run(call_app(app, http_scope())).status == 200
            sink.flush()
    assert caplog.text.count("disk full") == 1  # one episode of loss, one report
    sink.close()
    assert sink.dropped == 3


class LifespanRouter(LifespanApp):
    """Lifespan via LifespanApp, http via plain_app."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
        else:
            await plain_app(scope, receive, send)

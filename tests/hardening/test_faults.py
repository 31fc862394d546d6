"""Faults through the full stack: the app raising at every stage, the client going away,
cancellation at every await, failing log handlers, timing callbacks and sink streams.

Each case checks: at most one response start, the exception that surfaces (app errors
propagate unless ``reraise=False``; cancellation propagates as CancelledError), the
status both access-log outputs record, the request id reset on the request's task.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import io
import logging
import sys
from typing import Any

import pytest

import fastmw
from fastmw.types import Message, Scope
from tests.hardening._faults import Outcome, build, collect, drive, one_request, receive_from
from tests.helpers import Recorder, http_scope, plain_app

BODY_PARTS = 3
CANCEL_STEPS = 16
REPEAT = 500
BLOCKS_BUDGET = 400


class Boom(Exception):
    """The app's own failure."""


async def raise_before_start(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    raise Boom("before start")


async def raise_after_start(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 201, "headers": []})
    raise Boom("after start")


async def raise_mid_stream(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise Boom("mid stream")


async def streaming(scope: Scope, receive: Any, send: Any) -> None:
    """Many awaits: reads, yields, starts, streams (the cancellation target)."""
    while (await receive()).get("more_body", False):
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for part in range(BODY_PARTS):
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"x", "more_body": part < BODY_PARTS - 1})


async def stops_on_disconnect(scope: Scope, receive: Any, send: Any) -> None:
    """Reads until the client disconnects and returns without responding."""
    while (await receive())["type"] != "http.disconnect":
        pass


class YieldingRecorder(Recorder):
    """A ``send`` that yields to the loop like a real socket write can."""

    final_handed = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.final_handed = True
        await asyncio.sleep(0)
        await super().__call__(message)


def assert_common(outcome: Outcome, *, status: int, starts: int = 1) -> None:
    assert outcome.starts == starts, outcome.sent.messages
    assert outcome.text_statuses == [status], outcome.text_statuses
    assert outcome.json_statuses == [status], outcome.json_statuses
    assert outcome.correlation_after is None


@pytest.mark.parametrize(
    ("app", "message", "status", "sent_status"),
    [
        (raise_before_start, "before start", 500, 500),
        # Started, then cut short: the client got (and the log records) the app's status line.
        (raise_after_start, "after start", 201, 201),
        (raise_mid_stream, "mid stream", 202, 202),
    ],
    ids=["before-start", "after-start", "mid-stream"],
)
def test_app_exception_propagates_with_one_start(app: Any, message: str, status: int, sent_status: int) -> None:
    outcome = one_request(app)
    assert isinstance(outcome.raised, Boom) and str(outcome.raised) == message
    assert_common(outcome, status=status)
    assert outcome.sent.status == sent_status
    # The request id is on whatever start went out, and in the log.
    assert outcome.sent.header(b"x-request-id") == outcome.lines[0]["request_id"].encode()


def test_error_middleware_configured_not_to_reraise() -> None:
    outcome = one_request(raise_before_start, reraise=False)
    assert outcome.raised is None
    assert_common(outcome, status=500)
    assert b"internal_error" in outcome.sent.body
    # Started responses are never replaced: the exception still reaches the server.
    after = one_request(raise_mid_stream, reraise=False)
    assert isinstance(after.raised, Boom)
    assert_common(after, status=202)


@pytest.mark.parametrize("fail_on", ["http.response.start", "http.response.body"])
def test_send_raising_oserror_is_a_gone_client(fail_on: str) -> None:
    outcome = one_request(streaming, send=Recorder(fail_on=fail_on))
    assert isinstance(outcome.raised, OSError)
    # No second (error) start was attempted after the failed send.
    assert outcome.starts == (0 if fail_on == "http.response.start" else 1)
    assert outcome.text_statuses == outcome.json_statuses == [499]
    assert outcome.correlation_after is None


def test_early_disconnect_is_logged_as_499() -> None:
    outcome = one_request(stops_on_disconnect, messages=[{"type": "http.disconnect"}])
    assert outcome.raised is None
    assert_common(outcome, status=499, starts=0)


def test_cancellation_at_every_await_point() -> None:
    """Cancel the request task after k loop steps, for every k until it completes."""
    cancelled = completed = 0
    for steps in range(CANCEL_STEPS):
        stacked, handler, stream, sink = build(streaming)
        sent = YieldingRecorder()
        messages: list[Message] = [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"b"},
        ]
        receive = receive_from(messages, {"type": "http.disconnect"})

        async def main() -> Any:
            task = asyncio.create_task(drive(stacked, http_scope(), receive, sent))  # noqa: B023 - used at once
            for _ in range(steps):  # noqa: B023
                await asyncio.sleep(0)
            task.cancel()
            try:
                return await task
            except asyncio.CancelledError:  # cancelled before it ever ran
                return None

        result = asyncio.run(main())
        if result is None:
            assert steps == 0 and sent.messages == [] and handler.records == []
            continue
        outcome = collect(handler, stream, sink, sent, result)
        assert outcome.starts <= 1, (steps, outcome.sent.messages)
        assert outcome.correlation_after is None, steps
        if outcome.raised is None:
            completed += 1
            assert outcome.text_statuses == outcome.json_statuses == [200], steps
            assert outcome.sent.body == b"x" * BODY_PARTS
        else:
            cancelled += 1
            assert isinstance(outcome.raised, asyncio.CancelledError), (steps, outcome.raised)
            # Once the last body message was handed to the server's send the response
            # counts as complete (the log keeps its status); before that it is a 499.
            status = 200 if sent.final_handed else 499
            assert outcome.text_statuses == outcome.json_statuses == [status], steps
    # Every await point was hit before the request could complete.
    assert cancelled >= 10 and completed >= 1, (cancelled, completed)


class RaisingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log handler broke")


def test_failing_log_handler_does_not_break_the_request(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("fastmw.hardening.raising")
    logger.handlers[:] = [RaisingHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    app = fastmw.stack(plain_app, access_log={"logger": logger})
    sent = Recorder()
    with caplog.at_level(logging.ERROR, logger="fastmw"):
        asyncio.run(drive(app, http_scope(), receive_from([{"type": "http.request"}]), sent))
    assert sent.status == 200 and sent.body == b"ok"
    assert "log handler broke" in caplog.text


def test_failing_timing_callback_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    def callback(scope: Any, ttfb: Any, total: Any) -> None:
        raise ZeroDivisionError("callback broke")

    with caplog.at_level(logging.ERROR, logger="fastmw"):
        outcome = one_request(plain_app, timing_callback=callback)
    assert outcome.raised is None and outcome.sent.body == b"ok"
    assert_common(outcome, status=200)
    assert "callback broke" in caplog.text


class FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("stream_kind", ["closed", "disk-full"])
def test_broken_sink_stream_never_reaches_requests(stream_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    stream: Any = FullDisk() if stream_kind == "disk-full" else io.BytesIO()
    logger = logging.getLogger("fastmw.hardening.null")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    sink = fastmw.JsonLinesSink(stream, batch_lines=1)
    app = fastmw.stack(fastmw.AccessLogMiddleware(plain_app, sink=sink), access_log={"logger": logger})
    if stream_kind == "closed":
        stream.close()

    async def main() -> list[Recorder]:
        sent = []
        for _ in range(5):
            sent.append(Recorder())
            await app(http_scope(), receive_from([{"type": "http.request"}]), sent[-1])
        return sent

    with caplog.at_level(logging.ERROR, logger="fastmw"):
        responses = asyncio.run(main())
        for _ in range(3):
            sink.flush()
    assert [r.body for r in responses] == [b"ok"] * 5
    # One episode of loss, reported once, not per request or per try.
    assert caplog.text.count("sink: losing records") == 1
    sink.close()
    assert sink.dropped == 5


@pytest.mark.parametrize(
    "app",
    [raise_before_start, raise_mid_stream, stops_on_disconnect, streaming],
    ids=["before-start", "mid-stream", "disconnect", "send-oserror"],
)
def test_faulty_requests_do_not_leak(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """REPEAT faulty requests on one loop: pymalloc's block count stays flat."""
    # fastmw's own error reports would pile up in pytest's log capture, not in fastmw.
    monkeypatch.setattr(logging.getLogger("fastmw"), "propagate", False)
    monkeypatch.setattr(logging.getLogger("fastmw"), "handlers", [logging.NullHandler()])
    stacked, handler, stream, _sink = build(app)
    handler.setLevel(logging.CRITICAL)  # keep no records
    fail_on = "http.response.body" if app is streaming else None

    async def many(count: int) -> None:
        for _ in range(count):
            receive = receive_from([{"type": "http.request"}], {"type": "http.disconnect"})
            await asyncio.create_task(drive(stacked, http_scope(), receive, Recorder(fail_on=fail_on)))
            stream.seek(0)
            stream.truncate()

    async def main() -> int:
        await many(REPEAT // 5)  # warm-up
        await asyncio.sleep(0)
        gc.collect()
        before = sys.getallocatedblocks()
        await many(REPEAT)
        await asyncio.sleep(0)
        gc.collect()
        return sys.getallocatedblocks() - before

    assert asyncio.run(main()) < BLOCKS_BUDGET

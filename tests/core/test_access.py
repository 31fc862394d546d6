"""The access log stage (``access``): one record per request from the recorders' fields,
``access_values`` and ``access_status``, against both core twins."""

from __future__ import annotations

import asyncio
import logging
import time
from types import ModuleType
from typing import Any

import pytest

from fastmw._storage import CORRELATION_ID
from fastmw.types import Message
from tests.helpers import Recorder, call_app, http_scope, run

FIELDS = (
    "method",
    "path",
    "query",
    "http_version",
    "status",
    "duration_ms",
    "ttfb_ms",
    "response_bytes",
    "request_bytes",
    "client_addr",
    "user_agent",
    "request_id",
)


class Sink:
    """The JSON-lines sink's interface: keeps the records."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[Any, list[Any]]] = []
        self.fail = fail

    def write_record(self, keys: Any, values: list[Any]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.records.append((keys, values))


async def app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"four", "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})


BODY: list[Message] = [
    {"type": "http.request", "body": b"abc", "more_body": True},
    {"type": "http.request", "body": b"de"},
]


def logger(name: str = "fastmw.tests.access") -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    return log


def test_constructor(core: ModuleType) -> None:
    sink = Sink()
    stage = core.AccessLogStage(logger(), 20, sink=sink, include_query=0, include_user_agent=[])
    assert stage.logger is logger() and stage.level == 20 and stage.sink is sink
    assert stage.include_query is False and stage.include_user_agent is False
    assert stage.wraps_receive and not stage.starts and not stage.catches and not stage.http_only
    assert core.ACCESS_FIELDS == FIELDS and core.ACCESS_JSON_FIELDS == ("time", *FIELDS)
    for args, options, message in [
        ((5, 20), {}, "logger must be a logging.Logger, not int"),
        ((logger(), "INFO"), {}, "level must be an int, not str"),
        ((logger(), 20), {"sink": object()}, "sink must have write_record(keys, values), not object"),
    ]:
        with pytest.raises(TypeError) as info:
            core.AccessLogStage(*args, **options)
        assert str(info.value) == message


def test_one_record_per_request_to_the_sink(core: ModuleType) -> None:
    sink = Sink()
    scope = http_scope("/p\nq", method="POST", query_string=b"a=1", headers=[(b"user-agent", b"ua\x1b")])
    token = CORRELATION_ID.set("rid")
    try:
        run(call_app(core.Pipeline(app, [core.AccessLogStage(logger(), 20, sink=sink)]), scope, BODY))
    finally:
        CORRELATION_ID.reset(token)
    [(keys, values)] = sink.records
    assert keys == core.ACCESS_JSON_FIELDS
    record = dict(zip(keys, values, strict=True))
    assert type(record["time"]) is float and record["duration_ms"] >= record["ttfb_ms"] >= 0
    # The sink gets the text as sent: it encodes it itself.
    assert {key: record[key] for key in FIELDS if key not in ("duration_ms", "ttfb_ms")} == {
        "method": "POST",
        "path": "/p\\nq",  # escaped like the logging record (no log injection)
        "query": "a=1",
        "http_version": "1.1",
        "status": 201,
        "response_bytes": 5,
        "request_bytes": 5,
        "client_addr": "127.0.0.1:50000",
        "user_agent": "ua\\x1b",
        "request_id": "rid",
    }


def test_a_log_line_with_the_fields_in_extra(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    scope = http_scope("/a b\r\n", query_string=b"x=\n", headers=[(b"user-agent", b"curl\r\n")])
    stage = core.AccessLogStage(logger(), logging.INFO)
    with caplog.at_level(logging.INFO, logger="fastmw.tests.access"):
        run(call_app(core.Pipeline(app, [stage]), scope, BODY))
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.msg == '%s - "%s %s HTTP/%s" %d %.2fms'
    # Text reaching a log line is escaped (no log injection); the target is URL-quoted.
    assert record.getMessage().startswith('127.0.0.1:50000 - "GET /a%20b%0D%0A?x=\\n HTTP/1.1" 201 ')
    assert (record.path, record.query, record.user_agent) == ("/a b\\r\\n", "x=\\n", "curl\\r\\n")  # type: ignore[attr-defined]
    assert (record.status, record.response_bytes, record.request_bytes) == (201, 5, 5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("include_query", "include_user_agent"), [(False, True), (True, False)])
def test_query_and_user_agent_can_be_left_out(core: ModuleType, include_query: bool, include_user_agent: bool) -> None:
    sink = Sink()
    stage = core.AccessLogStage(
        logger(), 20, sink=sink, include_query=include_query, include_user_agent=include_user_agent
    )
    scope = http_scope(query_string=b"q=1", headers=[(b"user-agent", b"ua")])
    run(call_app(core.Pipeline(app, [stage]), scope, BODY))
    values = sink.records[0][1]
    assert values[3] == ("q=1" if include_query else None)
    assert values[11] == ("ua" if include_user_agent else None)


def test_nothing_is_built_when_no_one_would_see_it(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    class Scope(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            if key == "client":
                raise AssertionError("the record was built")
            return super().get(key, default)

    quiet = logging.getLogger("fastmw.tests.access.quiet")
    quiet.setLevel(logging.WARNING)
    with caplog.at_level(logging.DEBUG, logger="fastmw"):
        run(call_app(core.Pipeline(app, [core.AccessLogStage(quiet, logging.INFO)]), Scope(http_scope()), BODY))
    assert caplog.records == []


def test_a_failing_sink_is_reported_not_raised(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    downstream = Recorder()
    with caplog.at_level(logging.ERROR, logger="fastmw"):
        run(
            call_app(
                core.Pipeline(app, [core.AccessLogStage(logger(), 20, sink=Sink(fail=True))]),
                http_scope(),
                BODY,
                send=downstream,
            )
        )
    assert downstream.status == 201
    [record] = [record for record in caplog.records if record.name == "fastmw"]
    assert record.getMessage() == "fastmw access log failed to write a record"
    assert type(record.exc_info[1]) is OSError  # type: ignore[index]


def test_the_duration_starts_at_an_outer_timing_stage(core: ModuleType) -> None:
    sink = Sink()
    # Per request: before the sleep, after it, and once the request is done (core.monotonic's
    # clock). Bounds from these, not a fixed 20 ms: a busy machine can stall the app that long.
    marks: list[list[float]] = []

    inner = core.Pipeline(app, [core.AccessLogStage(logger(), 20, sink=sink)])

    async def between(scope: Any, receive: Any, send: Any) -> None:
        marks.append([time.monotonic()])
        await asyncio.sleep(0.02)
        marks[-1].append(time.monotonic())
        await inner(scope, receive, send)

    for outer in (core.TimingStage(), core.ErrorStage()):
        run(call_app(core.Pipeline(between, [outer]), http_scope(), BODY))
        marks[-1].append(time.monotonic())
    timed, untimed = (values for _, values in sink.records)
    (entered, slept, _), (_, untimed_slept, untimed_done) = marks
    # The timed record starts at the timing stage, before the sleep; the untimed one at the
    # access stage, after it (0.001 ms: the record's rounding).
    assert timed[6] >= (slept - entered) * 1000 - 0.001 and timed[7] >= (slept - entered) * 1000 - 0.001
    assert untimed[7] <= untimed[6] <= (untimed_done - untimed_slept) * 1000 + 0.001


# --------------------------------------------------------------------------- access_status and access_values


def recorders(core: ModuleType, sent: list[dict[str, Any]], received: list[str]) -> tuple[Any, Any]:
    """A SendRecorder and ReceiveRecorder after ``sent`` went out and ``received`` came in."""
    ex = core.SendRecorder(lambda message: None)
    for message in sent:
        ex(message)
    queue = [{"type": kind} for kind in received]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    rx = core.ReceiveRecorder(receive)

    async def read_all() -> None:
        for _ in received:
            await rx()

    run(read_all())
    return ex, rx


START = {"type": "http.response.start", "status": 204}
MORE = {"type": "http.response.body", "body": b"x", "more_body": True}
LAST = {"type": "http.response.body", "body": b"y"}


@pytest.mark.parametrize(
    ("kind", "sent", "received", "raised", "status"),
    [
        ("http", [START, LAST], [], None, 204),
        # Told the client went away (a ReceiveRecorder used alone cannot tell whether before the
        # response completed; inside the engine it can: tests/test_disconnects.py).
        ("http", [START, LAST], ["http.disconnect"], OSError(), 499),
        ("http", [START, MORE], [], None, 204),  # cut short by the app: the status line went out
        ("http", [START, MORE], [], OSError(), 499),  # the send failed mid-response
        ("http", [START, MORE], ["http.disconnect"], None, 499),
        ("http", [], [], asyncio.CancelledError(), 499),
        ("http", [], [], OSError(), 500),  # an OSError before any start is the app's own failure
        ("http", [], [], ValueError(), 500),
        ("http", [], [], None, 500),
        ("http", [LAST], [], None, 500),  # a body completing a response that never started
        ("websocket", [{"type": "websocket.accept"}], [], ValueError(), 101),
        ("websocket", [{"type": "websocket.http.response.start", "status": 418}], [], None, 418),
        ("websocket", [{"type": "websocket.close", "code": 1003}], [], None, 403),
        ("websocket", [], ["websocket.disconnect"], None, 403),
    ],
)
def test_access_status(
    core: ModuleType, kind: str, sent: list[Any], received: list[str], raised: Any, status: int
) -> None:
    ex, rx = recorders(core, [dict(message) for message in sent], received)
    scope = http_scope(scope_type=kind)
    assert core.access_status(scope, ex, rx, raised) == status
    if not received:
        assert core.access_status(scope, ex, None, raised) == status


def test_access_values_of_a_bare_scope(core: ModuleType) -> None:
    ex, _ = recorders(core, [], [])
    values = core.access_values({"type": "websocket"}, ex, None, None)
    assert values[:5] == ["WEBSOCKET", "", "", "1.1", 403]
    assert type(values[5]) is float and values[6] is None
    assert values[7:] == [0, 0, None, None, None]
    values = core.access_values({"type": "http", "headers": None, "client": ["h", 1]}, ex, None, None, False, False)
    assert values[2] is None and values[9] == "h:1" and values[10] is None


@pytest.mark.parametrize("client", [("h",), ("h", 1, 2), "ab", 5, [], None])
@pytest.mark.parametrize("query", ["a=1", 12345, None])
def test_only_a_host_port_client_and_a_bytes_query_are_recorded(core: ModuleType, client: Any, query: Any) -> None:
    ex, _ = recorders(core, [], [])
    values = core.access_values({"type": "http", "client": client, "query_string": query}, ex, None, None)
    assert values[2] is None and values[9] is None
    assert core.access_values({"type": "http", "client": ("h", 1)}, ex, None, None)[9] == "h:1"


def _statuses(core: ModuleType, app: Any, received: list[str]) -> list[Any]:
    """The access status the engine records for ``app`` when ``receive`` yields ``received``."""
    statuses: list[Any] = []

    class Sink:
        def write_record(self, keys: Any, values: Any) -> None:
            statuses.append(dict(zip(keys, values, strict=True))["status"])

    stage = core.AccessLogStage(logging.getLogger("x"), 0, sink=Sink())
    run(call_app(core.Pipeline(app, [stage]), http_scope(), [{"type": kind} for kind in received]))
    return statuses


async def _told_then_answers(scope: Any, receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "http.disconnect"
    await send(dict(START))
    await send(dict(LAST))


async def _answers_then_told(scope: Any, receive: Any, send: Any) -> None:
    await send(dict(START))
    await send(dict(LAST))
    assert (await receive())["type"] == "http.disconnect"  # how servers end a finished request


def test_499_when_told_before_the_response_completed_even_if_all_of_it_was_sent(core: ModuleType) -> None:
    assert _statuses(core, _told_then_answers, ["http.disconnect"]) == [499]
    assert _statuses(core, _answers_then_told, ["http.disconnect"]) == [204]


class Broken(logging.Logger):
    def isEnabledFor(self, level: int) -> bool:
        raise LookupError("no level")


def test_a_logger_that_cannot_say_its_level_is_reported_not_raised(
    core: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    downstream = Recorder()
    stage = core.AccessLogStage(Broken("fastmw.tests.access.broken"), logging.INFO)
    with caplog.at_level(logging.ERROR, logger="fastmw"):
        run(call_app(core.Pipeline(app, [stage]), http_scope(), BODY, send=downstream))
    assert downstream.status == 201
    [record] = [record for record in caplog.records if record.name == "fastmw"]
    assert record.getMessage() == "fastmw access log failed to write a record"
    assert type(record.exc_info[1]) is LookupError  # type: ignore[index]


def test_a_failing_sink_leaves_the_apps_exception_as_it_was(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("the app's own")

    stage = core.AccessLogStage(logger(), logging.INFO, sink=Sink(fail=True))
    with caplog.at_level(logging.ERROR, logger="fastmw"), pytest.raises(KeyError, match="the app's own") as raised:
        run(call_app(core.Pipeline(failing, [stage]), http_scope(), BODY))
    assert raised.value.__context__ is None
    assert [record.getMessage() for record in caplog.records if record.name == "fastmw"] == [
        "fastmw access log failed to write a record"
    ]

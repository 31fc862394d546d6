"""Access records keep one type per field (docs/middleware.md's table), so JSON log
formatters (json.dumps, python-json-logger, structlog) format every request alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from types import NoneType
from typing import Any

import pytest
import structlog
from pythonjsonlogger.json import JsonFormatter

import fastmw
from fastmw import JsonLinesSink
from fastmw.middleware.access_log import FIELDS
from tests.helpers import call_app, http_scope, plain_app, run

# The documented types; None only where the table allows it.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "time": (float,),
    "method": (str,),
    "path": (str,),
    "query": (str,),
    "http_version": (str,),
    "status": (int,),
    "duration_ms": (float,),
    "ttfb_ms": (float,),
    "response_bytes": (int,),
    "request_bytes": (int,),
    "client_addr": (str,),
    "user_agent": (str, NoneType),
    "request_id": (str,),
}
# (query string, headers) -> the query and user_agent a record must show.
CASES = {
    "bare": ((b"", []), ("", None)),
    "query": ((b"q=1&name=%C3%A9", []), ("q=1&name=%C3%A9", None)),
    "user-agent": ((b"", [(b"user-agent", b"curl/8.5")]), ("", "curl/8.5")),
    "both-hostile": ((b"x=\r\n\xff", [(b"user-agent", b"a\r\nb\xff")]), ("x=\\r\\n\\xff", "a\\r\\nb\\xff")),
}


class StdlibJson(logging.Formatter):
    """The plain formatter from the bug report: json.dumps of the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({name: getattr(record, name) for name in FIELDS})


def structlog_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    )


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    "json.dumps": StdlibJson,
    "python-json-logger": lambda: JsonFormatter("%(message)s"),
    "structlog": structlog_formatter,
}


@pytest.fixture
def access_output() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """The fastmw.access logger at INFO, writing through a handler whose formatter tests set."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("fastmw.access")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def request(app: Any, case: str) -> None:
    (query_string, headers), _ = CASES[case]
    assert run(call_app(app, http_scope("/items/1", query_string=query_string, headers=headers))).status == 200


def check_types(record: dict[str, Any], *, fields: tuple[str, ...] = FIELDS) -> None:
    for name in fields:
        assert type(record[name]) in FIELD_TYPES[name], f"{name}: {record[name]!r}"


@pytest.mark.parametrize("formatter", FORMATTERS)
@pytest.mark.parametrize("case", CASES)
def test_json_formatters_format_every_request(
    access_output: tuple[io.StringIO, logging.Handler], formatter: str, case: str
) -> None:
    stream, handler = access_output
    handler.setFormatter(FORMATTERS[formatter]())
    request(fastmw.stack(plain_app), case)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    check_types(record)
    assert (record["query"], record["user_agent"]) == CASES[case][1]
    assert record["path"] == "/items/1" and record["status"] == 200


@pytest.mark.parametrize("case", CASES)
def test_extra_and_json_lines_carry_the_same_types_and_text(case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastmw.access")
    request(fastmw.stack(plain_app), case)
    (log_record,) = [r for r in caplog.records if r.name == "fastmw.access"]
    extra = {name: getattr(log_record, name) for name in FIELDS}
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, flush_interval=0)
    request(fastmw.stack(plain_app, access_log={"sink": sink}), case)
    sink.close()
    line = json.loads(stream.getvalue())
    check_types(extra)
    check_types(line, fields=("time", *FIELDS))
    assert (extra["query"], extra["user_agent"]) == (line["query"], line["user_agent"]) == CASES[case][1]


def test_switched_off_fields_are_none_in_both(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastmw.access")
    options: dict[str, Any] = {"include_query": False, "include_user_agent": False}
    request(fastmw.AccessLogMiddleware(plain_app, **options), "both-hostile")
    (log_record,) = [r for r in caplog.records if r.name == "fastmw.access"]
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, flush_interval=0)
    request(fastmw.AccessLogMiddleware(plain_app, sink=sink, **options), "both-hostile")
    sink.close()
    line = json.loads(stream.getvalue())
    for record in (vars(log_record), line):
        assert record["query"] is None and record["user_agent"] is None and record["request_id"] is None

"""One escaping rule for what a client controls, in every log output: the text access line
(stdlib logging, its ``extra`` fields too), the JSON lines and the ``fastmw.error`` line.

Hostile scopes (a server, a proxy-headers middleware or a test client may put anything there)
must not give a line that ``str.splitlines()`` splits, nor a terminal escape: no CR, LF, NUL,
ESC, other C0/C1 controls, U+0085, U+2028 or U+2029 survive unescaped. The same values
under a real uvicorn with ``--proxy-headers``: tests/test_operations_e2e.py.
"""

from __future__ import annotations

import json
import logging
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import call_app, http_scope, run

# Every character that breaks or forges a line somewhere (str.splitlines, terminals).
HOSTILE = "\r\n\x00\x1b\x07\x7f\x85\x9b\u2028\u2029\x0b\x0c\x1c\x1d\x1e"


def hostile_scope() -> dict[str, Any]:
    forged = 'FORGED 127.0.0.1:1 - "GET /admin HTTP/1.1" 200 1.00ms'
    scope = http_scope(
        "/p" + HOSTILE + forged,
        method="GET" + HOSTILE + forged,
        headers=[(b"user-agent", HOSTILE.encode("utf-8") + b"\x85ua"), (b"x-request-id", b"rid-1")],
        query_string=b"q=" + HOSTILE.encode("utf-8") + b"\x85",
        client=("9.9.9.9" + HOSTILE + forged, 1),
    )
    scope["http_version"] = "1.1" + HOSTILE
    return scope


def clean(text: str) -> bool:
    """Whether ``text`` is one line with no control or line-breaking character in it."""
    return text.isprintable() and len(text.splitlines()) <= 1 and not any(c in text for c in HOSTILE)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def failing(scope: Any, receive: Any, send: Any) -> None:
    raise ValueError("boom")


class ValuesSink:
    """A sink keeping each record's values."""

    def __init__(self) -> None:
        self.values: list[list[Any]] = []

    def write_record(self, keys: Any, values: Any) -> None:
        self.values.append(list(values))


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handler() -> Any:
    collecting = Collecting()
    logger = logging.getLogger("tests.escaping")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(collecting)
    yield collecting
    logger.removeHandler(collecting)


def test_the_text_access_line_and_its_fields(core: ModuleType, handler: Collecting) -> None:
    logger = logging.getLogger("tests.escaping")
    stages = [core.RequestIdStage("x-request-id", "id", validator=None), core.AccessLogStage(logger, logging.INFO)]
    run(call_app(core.Pipeline(app, stages), hostile_scope()))
    (record,) = handler.records
    message = record.getMessage()
    assert clean(message), message
    assert message.startswith("9.9.9.9\\r\\n\\x00\\x1b")  # the client as sent, escaped
    for field in core.ACCESS_FIELDS:
        value = getattr(record, field)
        assert value is None or not isinstance(value, str) or clean(value), (field, value)
    assert getattr(record, "client_addr").startswith("9.9.9.9\\r\\n")  # noqa: B009
    assert getattr(record, "method").startswith("GET\\r\\n")  # noqa: B009
    assert getattr(record, "http_version").startswith("1.1\\r\\n")  # noqa: B009


def test_the_json_lines(core: ModuleType) -> None:
    lines: list[bytes] = []

    class Sink:
        def write_record(self, keys: Any, values: Any) -> None:
            lines.append(core.encode_access_record(keys, values))

    stages = [core.RequestIdStage("x-request-id", "id"), core.AccessLogStage(logging.getLogger("x"), 0, sink=Sink())]
    run(call_app(core.Pipeline(app, stages), hostile_scope()))
    (line,) = lines
    text = line.decode("ascii")
    assert text.endswith("\n") and clean(text[:-1])
    record = json.loads(line)
    # The same values as the text line's fields: one rule for both outputs.
    for field in ("method", "path", "query", "http_version", "client_addr", "user_agent"):
        assert clean(record[field]), (field, record[field])
    assert record["client_addr"].startswith("9.9.9.9\\r\\n")


def test_the_error_line(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    stages = [core.RequestIdStage("x-request-id", "id"), core.ErrorStage(reraise=False)]
    with caplog.at_level(logging.ERROR, logger="fastmw.error"):
        run(call_app(core.Pipeline(failing, stages), hostile_scope()))
    (record,) = [r for r in caplog.records if r.name == "fastmw.error"]
    assert clean(record.getMessage()), record.getMessage()


@pytest.mark.parametrize("value", ["plain", "é-ok", "9.9.9.9\x85x", "a\u2028b", "\x1b[31m", "x\r\ny"])
def test_the_rule_is_the_same_in_both_twins(twins: tuple[ModuleType, ModuleType], value: str) -> None:
    compiled, pure = twins
    seen = []
    for core in (compiled, pure):
        scope = http_scope(client=(value, 5))
        sink = ValuesSink()
        run(call_app(core.Pipeline(app, [core.AccessLogStage(logging.getLogger("x"), 0, sink=sink)]), scope))
        seen.append(sink.values[0][10])
    assert seen[0] == seen[1]
    assert clean(seen[0]) and (seen[0] == f"{value}:5") == f"{value}:5".isprintable()

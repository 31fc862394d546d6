"""Hostile input through the full stack: 1,000 hostile request ids never reach a response
header or an access-log line unsanitised; malformed messages from the app fail clearly."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

import fastmw
from fastmw.types import Scope
from tests.hardening._faults import ListHandler, listed_logger
from tests.hardening._hostile_ids import COUNT, hostile_ids
from tests.hardening._stack import full_stack
from tests.helpers import Recorder, http_scope

HEADER_VALUE_LIMIT = 8 * 1024
CONTROL_BYTES = frozenset([*range(0, 32), 127])


def unsafe_header(value: bytes) -> bool:
    return len(value) > HEADER_VALUE_LIMIT or not CONTROL_BYTES.isdisjoint(value)


def unsafe_text(text: str) -> bool:
    return not text.isprintable()


def visible_id(value: object) -> bool:
    """A request id the app may see: 1-128 visible ASCII characters."""
    return isinstance(value, str) and 0 < len(value) <= 128 and all("!" <= char <= "~" for char in value)


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    body = json.dumps([fastmw.correlation_id.get(), fastmw.context.get("X-Request-ID")]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_hostile_request_ids_never_leak_unsanitised() -> None:
    ids = hostile_ids()
    assert len(ids) == COUNT
    logger, text = listed_logger("fastmw.hardening.hostile")
    internal = ListHandler()
    logging.getLogger("fastmw").addHandler(internal)
    stream = io.BytesIO()
    app, sink = full_stack(echo_app, logger=logger, sink_stream=stream)
    requests: list[list[tuple[bytes, bytes]]] = []
    for raw in ids:
        requests.append([(b"x-request-id", raw)])
        # Mixed-case duplicates and the plugin-only header carry it too.
        requests.append([(b"X-Request-ID", raw), (b"x-request-id", raw), (b"x-correlation-id", raw)])

    async def main() -> list[Recorder]:
        results = []
        for headers in requests:
            sent = Recorder()
            await app(http_scope("/hostile", headers=headers, query_string=b"q=%0d%0a"), _receive, sent)
            results.append(sent)
        return results

    try:
        responses = asyncio.run(main())
    finally:
        logging.getLogger("fastmw").removeHandler(internal)
    assert sink is not None
    sink.flush()
    violations: list[str] = []
    for index, sent in enumerate(responses):
        assert len([m for m in sent.messages if m["type"] == "http.response.start"]) == 1
        violations += [
            f"{index}: header {name!r}: {value[:80]!r}" for name, value in sent.headers if unsafe_header(value)
        ]
        if sent.status == 200:
            correlation, context_id = json.loads(sent.body)
            if correlation != context_id or not visible_id(correlation):
                violations.append(f"{index}: app saw {correlation!r} / {context_id!r}")
    for record in text.records + internal.records:
        message = record.getMessage()
        if unsafe_text(message):
            violations.append(f"log line {message[:200]!r}")
        for field in ("path", "query", "user_agent", "request_id"):
            value = getattr(record, field, None)
            if isinstance(value, str) and unsafe_text(value):
                violations.append(f"log field {field} {value[:200]!r}")
    lines = stream.getvalue().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(requests), "a record spilled over several lines"
    for line in lines[:-1]:
        record = json.loads(line)
        if unsafe_text(record["request_id"]) or len(record["request_id"]) > 128:
            violations.append(f"json request_id {record['request_id'][:200]!r}")
    assert len(text.records) == len(requests)
    assert violations == [], violations[:20]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


# ---------------------------------------------------------------- malformed app messages

MALFORMED = {
    "missing-status": ({"type": "http.response.start", "headers": []}, "status"),
    "status-str": ({"type": "http.response.start", "status": "200", "headers": []}, "status"),
    "headers-dict": ({"type": "http.response.start", "status": 200, "headers": {"a": "b"}}, "headers"),
    "headers-int": ({"type": "http.response.start", "status": 200, "headers": 7}, "headers"),
    "header-entry-bytes": ({"type": "http.response.start", "status": 200, "headers": [b"abc"]}, "header"),
    "header-entry-str": ({"type": "http.response.start", "status": 200, "headers": [("a", "b")]}, "header"),
    "message-list": (["http.response.start", 200], "message"),
}
BAD_BODIES = {"body-str": "text", "body-none": None, "body-int": 3, "body-list": [b"a"]}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_start_is_a_clear_error(case: str) -> None:
    message, mentioned = MALFORMED[case]

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(message)

    outcome = _one(app)
    assert isinstance(outcome.raised, (TypeError, ValueError)), outcome.raised
    assert mentioned in str(outcome.raised).lower(), str(outcome.raised)
    assert outcome.correlation_after is None
    # The malformed start never reached the server: the error middleware's 500 did, once.
    assert outcome.starts == 1 and outcome.sent.status == 500
    assert outcome.text_statuses == outcome.json_statuses == [500]


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_body_after_start_is_a_clear_error(case: str) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": BAD_BODIES[case]})

    outcome = _one(app)
    assert isinstance(outcome.raised, TypeError) and "body" in str(outcome.raised), outcome.raised
    assert outcome.starts == 1 and outcome.sent.status == 200  # no second start
    assert outcome.text_statuses == outcome.json_statuses == [200]


def _one(app: Any) -> Any:
    from tests.hardening._faults import one_request

    return one_request(app)


def test_refusals_do_not_grow_the_shared_error_response() -> None:
    """Regression: outer layers edit the start's header list in place; the context
    middleware's one shared error Response used to collect a Server-Timing entry per
    refused request (unbounded header and memory growth)."""
    error_response = fastmw.RawContextMiddleware(echo_app).error_response
    app = fastmw.stack(fastmw.RawContextMiddleware(echo_app, plugins=[fastmw.plugins.CorrelationIdPlugin()]))
    app_headers = fastmw.stack(
        fastmw.ContextMiddleware(
            echo_app, plugins=[fastmw.plugins.CorrelationIdPlugin()], default_error_response=error_response
        )
    )

    async def main() -> list[Recorder]:
        results = []
        for target in (app, app_headers) * 3:
            sent = Recorder()
            await target(http_scope(headers=[(b"x-correlation-id", b"bad")]), _receive, sent)
            results.append(sent)
        return results

    responses = asyncio.run(main())
    assert {r.status for r in responses} == {400}
    assert all(len(r.header(b"server-timing") or b"").__le__(20) for r in responses)
    assert error_response.raw_headers == [(b"content-length", b"0")]

"""fastmw.trace: current(), inject(), the httpx hooks, and the trace ids on log records."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest

import fastmw
from fastmw import TraceContextMiddleware, trace
from fastmw._impl import core
from fastmw._storage import REQUEST_STATE
from fastmw.logging import ContextFilter, StructlogContextProcessor
from tests.helpers import call_app, http_scope, plain_app, run

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


@pytest.fixture
def context() -> Any:
    """A current TraceContext of the live core, as the middleware would set it."""
    value = core.TraceContext(TRACE, SPAN, PARENT, 1, "congo=t61rcWkgMzE")
    token = REQUEST_STATE.set(core.Published(trace=value))
    yield value
    REQUEST_STATE.reset(token)


def test_public_names() -> None:
    assert fastmw.trace is trace and fastmw.TraceContextMiddleware is TraceContextMiddleware
    assert trace.TraceContext is core.TraceContext
    assert trace.current() is None


def test_inject_inside_a_request(context: Any) -> None:
    assert trace.current() is context
    first, second = trace.inject(), trace.inject()
    for headers in (first, second):
        match = TRACEPARENT.fullmatch(headers["traceparent"])
        assert match and match.group(1) == TRACE and match.group(3) == "01"
        assert match.group(2) not in (SPAN, PARENT)
        assert headers["tracestate"] == "congo=t61rcWkgMzE"
    assert first["traceparent"] != second["traceparent"]  # a new span id on every call


def test_inject_into_a_mapping_replaces_stale_headers(context: Any) -> None:
    headers = {"Accept": "*/*", "TraceParent": "stale", "TRACESTATE": "stale=1"}
    assert trace.inject(headers) is headers
    assert set(headers) == {"Accept", "traceparent", "tracestate"}
    plain = core.TraceContext(TRACE, SPAN)
    token = REQUEST_STATE.set(core.Published(trace=plain))
    try:
        assert "tracestate" not in trace.inject(headers)  # no kept tracestate: none sent
    finally:
        REQUEST_STATE.reset(token)


def test_inject_outside_a_request_starts_fresh_traces() -> None:
    first, second = trace.inject(), trace.inject()
    ids = [TRACEPARENT.fullmatch(headers["traceparent"]) for headers in (first, second)]
    assert all(ids) and ids[0].group(1) != ids[1].group(1)  # type: ignore[union-attr]
    assert ids[0].group(3) == "02"  # type: ignore[union-attr]
    assert "tracestate" not in first


def capture() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    return seen, httpx.MockTransport(handler)


def test_httpx_hooks_sync_client(context: Any) -> None:
    seen, transport = capture()
    with httpx.Client(transport=transport, event_hooks=trace.httpx_hooks()) as client:
        client.get("http://downstream/a", headers={"traceparent": "stale"})
        client.get("http://downstream/b")
    parents = [TRACEPARENT.fullmatch(request.headers["traceparent"]) for request in seen]
    assert all(match and match.group(1) == TRACE for match in parents)
    assert len({match.group(2) for match in parents}) == 2  # type: ignore[union-attr]
    assert seen[0].headers.get_list("traceparent") != ["stale"]
    assert seen[0].headers["tracestate"] == "congo=t61rcWkgMzE"


def test_httpx_hooks_async_client() -> None:
    seen, transport = capture()

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        async with httpx.AsyncClient(transport=transport, event_hooks=trace.httpx_hooks()) as client:
            await client.get("http://downstream/")
        await plain_app(scope, receive, send)

    headers = [(b"traceparent", f"00-{TRACE}-{PARENT}-03".encode())]
    run(call_app(TraceContextMiddleware(endpoint, opentelemetry=False), http_scope(headers=headers)))
    (request,) = seen
    match = TRACEPARENT.fullmatch(request.headers["traceparent"])
    assert match and match.group(1) == TRACE and match.group(3) == "03"


def test_concurrent_requests_keep_their_own_trace() -> None:
    seen: dict[str, str] = {}

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        expected = scope["path"].strip("/")
        for _ in range(3):
            await asyncio.sleep(0)
            current = trace.current()
            assert current is not None
            seen.setdefault(expected, current.trace_id)
            assert seen[expected] == current.trace_id
        await plain_app(scope, receive, send)

    middleware = TraceContextMiddleware(endpoint, opentelemetry=False)

    async def both() -> None:
        await asyncio.gather(*(call_app(middleware, http_scope(f"/{index}")) for index in range(5)))

    run(both())
    assert len(set(seen.values())) == 5


# --------------------------------------------------------------------------- logging


def record() -> logging.LogRecord:
    return logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)


def test_log_records_carry_the_trace_ids(context: Any) -> None:
    item = record()
    ContextFilter().filter(item)
    assert (item.trace_id, item.span_id, item.request_id) == (TRACE, SPAN, "-")  # type: ignore[attr-defined]
    event = StructlogContextProcessor()(None, "info", {"event": "hi", "span_id": "mine"})
    assert event == {"event": "hi", "request_id": None, "trace_id": TRACE, "span_id": "mine"}


def test_log_records_get_nothing_outside_a_trace() -> None:
    item = record()
    ContextFilter().filter(item)
    assert not hasattr(item, "trace_id") and not hasattr(item, "span_id")
    assert "trace_id" not in StructlogContextProcessor()(None, "info", {"event": "hi"})

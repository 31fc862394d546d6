"""TraceContextMiddleware: the trace continued or started, current() in the app, traceresponse, paths."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from fastmw import TraceContextMiddleware, trace
from fastmw.errors import ConfigurationError
from fastmw.types import Scope
from tests.helpers import Recorder, call_app, http_scope, plain_app, run
from tests.middleware.apps import (
    CHUNK,
    CHUNKS,
    WS_IN,
    Boom,
    LifespanApp,
    raise_before_start,
    run_lifespan,
    streaming_app,
    websocket_app,
    ws_scope,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01".encode()


class Seen:
    """An app recording ``trace.current()``, ``inject()`` and the scope's headers."""

    def __init__(self, inner: Any = plain_app) -> None:
        self.inner = inner
        self.contexts: list[Any] = []
        self.injected: list[dict[str, str]] = []
        self.headers: list[Any] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.contexts.append(trace.current())
        self.injected.append(trace.inject())
        self.headers.append(scope.get("headers"))
        await self.inner(scope, receive, send)


def plain(app: Any, **options: Any) -> TraceContextMiddleware:
    return TraceContextMiddleware(app, opentelemetry=False, **options)


def test_the_callers_trace_is_continued() -> None:
    app = Seen()
    headers = [(b"traceparent", TRACEPARENT), (b"tracestate", b"congo=t61rcWkgMzE, rojo=1")]
    sent = run(call_app(plain(app), http_scope(headers=headers)))
    assert sent.status == 200 and sent.body == b"ok"
    (context,) = app.contexts
    assert (context.trace_id, context.parent_id, context.flags) == (TRACE, PARENT, 1)
    assert context.tracestate == "congo=t61rcWkgMzE,rojo=1" and context.span_id != PARENT
    (injected,) = app.injected
    assert injected["traceparent"].startswith(f"00-{TRACE}-") and injected["traceparent"].endswith("-01")
    assert injected["traceparent"][36:52] not in (PARENT, context.span_id)
    assert injected["tracestate"] == "congo=t61rcWkgMzE,rojo=1"
    assert app.headers[0] == headers  # not rewritten without OpenTelemetry
    assert sent.header(b"traceresponse") is None
    assert trace.current() is None  # reset once the request is done


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"traceparent", b"00-" + b"0" * 32 + b"-b7ad6b7169203331-01"), (b"tracestate", b"a=1")],
        [(b"traceparent", TRACEPARENT), (b"traceparent", TRACEPARENT)],
        [(b"traceparent", TRACEPARENT + b"\r\nx-injected: 1"), (b"tracestate", b"a=1\r\nb: 2")],
        [(b"traceparent", b"\x00" * 10_000)],
        [(b"traceparent", "00-é".encode() * 2000)],
    ],
)
def test_missing_or_hostile_headers_start_a_new_trace(caplog: pytest.LogCaptureFixture, headers: Any) -> None:
    app = Seen()
    with caplog.at_level(logging.DEBUG):
        sent = run(call_app(plain(app, traceresponse=True), http_scope(headers=headers)))
    assert sent.status == 200
    (context,) = app.contexts
    assert context.trace_id != TRACE and context.parent_id is None and context.tracestate is None
    assert context.flags == 0x02
    assert "tracestate" not in app.injected[0]
    # Nothing of the input is echoed or logged.
    assert sent.header(b"traceresponse") == context.traceparent.encode()
    assert not [item for item in caplog.records if item.name.startswith("fastmw")]


def test_sample_new_traces() -> None:
    app = Seen()
    run(call_app(plain(app, sample_new_traces=True), http_scope()))
    run(call_app(plain(app, sample_new_traces=True), http_scope(headers=[(b"traceparent", TRACEPARENT[:-1] + b"0")])))
    assert [context.flags for context in app.contexts] == [0x03, 0x00]


def test_traceresponse_names_this_span() -> None:
    app = Seen()
    middleware = plain(app, traceresponse=True)
    sent = run(call_app(middleware, http_scope(headers=[(b"traceparent", TRACEPARENT)])))
    context = app.contexts[0]
    assert sent.header(b"traceresponse") == f"00-{TRACE}-{context.span_id}-01".encode()
    assert sent.header(b"content-type") == b"text/plain"
    streamed = run(call_app(plain(streaming_app, traceresponse=True), http_scope()))
    assert streamed.body == CHUNK * CHUNKS and len(streamed.messages) == CHUNKS + 1
    assert streamed.header(b"traceresponse") is not None


def test_websocket_gets_a_trace_and_lifespan_passes_through() -> None:
    app = Seen(websocket_app)
    sent = run(call_app(plain(app, traceresponse=True), ws_scope(headers=[(b"traceparent", TRACEPARENT)]), WS_IN))
    assert app.contexts[0].trace_id == TRACE
    accept = sent.messages[0]
    assert accept["type"] == "websocket.accept" and (b"x-ws", b"1") in accept["headers"]
    assert any(name == b"traceresponse" for name, _ in accept["headers"])
    lifespan = LifespanApp()
    done = run(run_lifespan(plain(lifespan)))
    assert [m["type"] for m in done.messages] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert lifespan.seen[0]["type"] == "lifespan"


def test_unknown_scope_types_pass_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, trace.current()))

    scope = {"type": "custom.thing", "headers": [(b"traceparent", TRACEPARENT)]}
    run(plain(app)(scope, None, None))  # type: ignore[arg-type]  # never called: markers
    assert seen == [(scope, None)] and seen[0][0] is scope


def test_path_filters() -> None:
    app = Seen()
    middleware = plain(app, include_paths=["/api"], exclude_paths=["/api/health"])
    for path in ("/api/users", "/api/health", "/other"):
        run(call_app(middleware, http_scope(path)))
    assert [context is not None for context in app.contexts] == [True, False, False]


def test_the_context_is_reset_when_the_app_fails() -> None:
    with pytest.raises(Boom):
        run(call_app(plain(raise_before_start), http_scope()))
    assert trace.current() is None


def test_nested_middlewares_restore_the_outer_context() -> None:
    inner = Seen()
    outer_seen: list[Any] = []

    async def between(scope: Any, receive: Any, send: Any) -> None:
        outer_seen.append(trace.current())
        await plain(inner)(scope, receive, send)
        outer_seen.append(trace.current())

    run(call_app(plain(between), http_scope(headers=[(b"traceparent", TRACEPARENT)])))
    assert outer_seen[0] is outer_seen[1] and inner.contexts[0] is not outer_seen[0]
    assert inner.contexts[0].trace_id == TRACE


def test_update_request_header_rewrites_a_copy() -> None:
    app = Seen()
    headers = [(b"host", b"x"), (b"TraceParent", TRACEPARENT), (b"tracestate", b"a=1")]
    scope = http_scope(headers=headers)
    run(call_app(plain(app, update_request_header=True), scope))
    context = app.contexts[0]
    assert app.headers[0] == [
        (b"host", b"x"),
        (b"traceparent", context.traceparent.encode()),
        (b"tracestate", b"a=1"),
    ]
    assert headers == [(b"host", b"x"), (b"TraceParent", TRACEPARENT), (b"tracestate", b"a=1")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"traceresponse": 1}, "traceresponse must be a bool, got 1"),
        ({"sample_new_traces": "yes"}, "sample_new_traces must be a bool"),
        ({"opentelemetry": "auto"}, "opentelemetry must be a bool or None"),
        ({"update_request_header": 0}, "update_request_header must be a bool or None"),
        ({"include_paths": "/api"}, "include_paths must be a list of paths"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TraceContextMiddleware(plain_app, **options)


def test_opentelemetry_is_decided_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not plain(plain_app).adopts_opentelemetry and not plain(plain_app).updates_request_header
    monkeypatch.setitem(sys.modules, "fastmw.extensions.otel", None)  # as if opentelemetry were missing
    auto = TraceContextMiddleware(plain_app)
    assert not auto.adopts_opentelemetry and not auto.updates_request_header
    with pytest.raises(ConfigurationError, match="opentelemetry=True needs the opentelemetry-api package"):
        TraceContextMiddleware(plain_app, opentelemetry=True)


def test_instances_hold_no_request_state() -> None:
    middleware = plain(Seen(), traceresponse=True)
    before = dict(vars(middleware))
    sent = Recorder()
    run(call_app(middleware, http_scope(headers=[(b"traceparent", TRACEPARENT)]), send=sent))
    assert vars(middleware) == before


# --------------------------------------------------------------------------- in the engine


def test_stack_runs_the_trace_stage_outermost_in_one_pipeline(caplog: pytest.LogCaptureFixture) -> None:
    import fastmw
    from fastmw._impl import core
    from fastmw.middleware._fusion import FUSE, fused_stages

    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append((trace.current(), fastmw.correlation_id.get()))
        await plain_app(scope, receive, send)

    stacked = fastmw.stack(app, trace_context={"opentelemetry": False}, request_id={"fallback_to_trace_id": True})
    if FUSE:
        assert type(fused_stages(stacked)[0]) is core.TraceStage and len(fused_stages(stacked)) == 5
    with caplog.at_level(logging.INFO, logger="fastmw.access"):
        sent = run(call_app(stacked, http_scope(headers=[(b"traceparent", TRACEPARENT)])))
    ((context, request_id),) = seen
    assert context.trace_id == TRACE and context.parent_id == PARENT
    # No request-id header: the request id is the trace id, echoed once.
    assert request_id == TRACE and sent.header(b"x-request-id") == TRACE.encode()
    (record,) = [r for r in caplog.records if r.name == "fastmw.access"]
    assert (record.trace_id, record.span_id) == (TRACE, context.span_id)  # type: ignore[attr-defined]
    assert trace.current() is None


def test_access_record_has_no_trace_fields_without_a_trace(caplog: pytest.LogCaptureFixture) -> None:
    import fastmw

    with caplog.at_level(logging.INFO, logger="fastmw.access"):
        run(call_app(fastmw.stack(plain_app), http_scope(headers=[(b"traceparent", TRACEPARENT)])))
    (record,) = [r for r in caplog.records if r.name == "fastmw.access"]
    assert not hasattr(record, "trace_id") and not hasattr(record, "span_id")


def test_json_sink_record_carries_the_trace_ids(tmp_path: Any) -> None:
    import json

    import fastmw

    path = tmp_path / "access.jsonl"
    sink = fastmw.JsonLinesSink(str(path), handle_signals=False)
    app = TraceContextMiddleware(fastmw.AccessLogMiddleware(plain_app, sink=sink), opentelemetry=False)
    run(call_app(app, http_scope(headers=[(b"traceparent", TRACEPARENT)])))
    sink.close()
    (line,) = path.read_text().splitlines()
    record = json.loads(line)
    assert record["trace_id"] == TRACE and len(record["span_id"]) == 16 and record["span_id"] != PARENT


def test_request_id_header_wins_over_the_trace_fallback() -> None:
    import fastmw

    app = fastmw.stack(plain_app, trace_context={"opentelemetry": False}, request_id={"fallback_to_trace_id": True})
    sent = run(call_app(app, http_scope(headers=[(b"traceparent", TRACEPARENT), (b"x-request-id", b"given-id")])))
    assert sent.header(b"x-request-id") == b"given-id"

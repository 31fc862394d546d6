"""OpenTelemetry interop with the real SDK and ASGI instrumentation, both placements.

Either way a log record written in the endpoint, ``fastmw.trace.inject()`` and the spans
OpenTelemetry exports carry one trace id.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fastmw import TraceContextMiddleware, trace
from fastmw.extensions.otel import current_otel_context
from fastmw.logging import ContextFilter
from tests.helpers import call_app, http_scope, plain_app, run

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
INCOMING = [(b"traceparent", f"00-{TRACE}-{PARENT}-01".encode()), (b"tracestate", b"congo=t61rcWkgMzE")]


class Endpoint:
    """Logs a line, calls inject() and records fastmw's current context."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.injected: list[dict[str, str]] = []
        self.contexts: list[Any] = []
        self.logger = logging.getLogger("tests.otel.endpoint")
        self.logger.addFilter(ContextFilter())
        self.logger.addHandler(self._Keep(self.records))
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    class _Keep(logging.Handler):
        def __init__(self, records: list[logging.LogRecord]) -> None:
            super().__init__()
            self.kept = records

        def emit(self, record: logging.LogRecord) -> None:
            self.kept.append(record)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.logger.info("handling")
        self.injected.append(trace.inject())
        self.contexts.append(trace.current())
        await plain_app(scope, receive, send)


@pytest.fixture
def otel() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def ids_of(endpoint: Endpoint) -> tuple[str, str, str]:
    (record,) = endpoint.records
    (injected,) = endpoint.injected
    return record.trace_id, injected["traceparent"][3:35], endpoint.contexts[0].trace_id  # type: ignore[attr-defined]


def server_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    (found,) = [span for span in spans if span.kind.name == "SERVER"]
    return found


@pytest.mark.parametrize("headers", [INCOMING, [], [(b"traceparent", b"00-garbage")]])
def test_instrumentation_outside_fastmw_is_adopted(otel: Any, headers: Any) -> None:
    provider, exporter = otel
    endpoint = Endpoint()
    middleware = TraceContextMiddleware(endpoint)
    assert middleware.adopts_opentelemetry
    app = OpenTelemetryMiddleware(middleware, tracer_provider=provider)
    sent = run(call_app(app, http_scope(headers=headers)))
    assert sent.status == 200
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    otel_trace = format(server.context.trace_id, "032x")
    assert {format(span.context.trace_id, "032x") for span in spans} == {otel_trace}
    assert ids_of(endpoint) == (otel_trace, otel_trace, otel_trace)
    context = endpoint.contexts[0]
    assert context.span_id == format(server.context.span_id, "016x")  # OpenTelemetry's span is ours
    if headers is INCOMING:
        assert otel_trace == TRACE and context.parent_id == PARENT
        assert context.tracestate == "congo=t61rcWkgMzE"
    assert trace.current() is None


@pytest.mark.parametrize(
    ("headers", "options"),
    [
        (INCOMING, {}),
        ([], {"sample_new_traces": True}),
        ([(b"traceparent", b"\r\n" * 10)], {"sample_new_traces": True}),
    ],
)
def test_instrumentation_inside_fastmw_continues_its_span(otel: Any, headers: Any, options: Any) -> None:
    provider, exporter = otel
    endpoint = Endpoint()
    middleware = TraceContextMiddleware(OpenTelemetryMiddleware(endpoint, tracer_provider=provider), **options)
    assert middleware.updates_request_header
    sent = run(call_app(middleware, http_scope(headers=headers)))
    assert sent.status == 200
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    fastmw_trace = endpoint.contexts[0].trace_id
    assert {format(span.context.trace_id, "032x") for span in spans} == {fastmw_trace}
    assert ids_of(endpoint) == (fastmw_trace, fastmw_trace, fastmw_trace)
    # OpenTelemetry's server span is a child of fastmw's span.
    assert server.parent is not None and format(server.parent.span_id, "016x") == endpoint.contexts[0].span_id
    if headers is INCOMING:
        assert fastmw_trace == TRACE and endpoint.contexts[0].parent_id == PARENT


def test_no_current_span_falls_back_to_the_headers() -> None:
    assert current_otel_context() is None
    endpoint = Endpoint()
    run(call_app(TraceContextMiddleware(endpoint), http_scope(headers=INCOMING)))
    assert ids_of(endpoint) == (TRACE, TRACE, TRACE)


def test_import_fastmw_never_imports_opentelemetry() -> None:
    code = (
        "import sys, fastmw, fastmw.trace, fastmw.logging\n"
        "from fastmw import TraceContextMiddleware\n"
        "TraceContextMiddleware(lambda *a: None, opentelemetry=False)\n"
        "fastmw.trace.inject()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ}, timeout=60)

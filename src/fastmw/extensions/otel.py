"""OpenTelemetry interop for ``TraceContextMiddleware`` (the ``fastmw[otel]`` extra).

Importing this module imports ``opentelemetry.trace``; the middleware imports it only when
asked to, or when opentelemetry is installed. With OpenTelemetry's ASGI instrumentation
*outside* fastmw, its server span is current when fastmw runs: ``current_otel_context()``
turns that span into fastmw's ``TraceContext`` (same trace id and span id), so fastmw's
logs and ``inject()`` continue OpenTelemetry's span instead of parsing the headers again.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace as otel_trace

from fastmw._impl import core

__all__ = ["current_otel_context"]

# The flags W3C Trace Context Level 2 defines (sampled, random); the others are sent as zero.
KNOWN_FLAGS = 0x03


def current_otel_context() -> Any:
    """The current OpenTelemetry span as a ``TraceContext``, or None when no valid span is current."""
    try:
        span = otel_trace.get_current_span()
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return None
        # SDK spans know their parent; the API's NonRecordingSpan does not.
        parent = getattr(span, "parent", None)
        parent_id = format(parent.span_id, "016x") if parent is not None and parent.span_id else None
        tracestate = core.parse_tracestate(span_context.trace_state.to_header())
        return core.TraceContext(
            format(span_context.trace_id, "032x"),
            format(span_context.span_id, "016x"),
            parent_id,
            int(span_context.trace_flags) & KNOWN_FLAGS,
            tracestate,
        )
    except Exception:  # a broken tracer must not break the request: fastmw reads the headers instead
        return None

"""The trace group's pieces: OpenTelemetry's propagator wired by hand, and the trace checks.

Every request of the group carries ``_driver.TRACE_HEADERS``. The checks build a separate
instance around an app that records the trace it sees, send it one such request, and
demand the sent trace continued: fastmw's rows through their own twin's
``fastmw.trace.current()``, the OpenTelemetry row through the current span and the headers
it injected. OpenTelemetry is imported only when its row is built.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

from benchmarks import _driver
from benchmarks._driver import SENT_PARENT_ID, SENT_TRACE_ID, TRACEPARENT, TRACESTATE, ASGIApp
from benchmarks._rows import Build, Check, Stack

OTEL_ROW = "hand-written OTel propagator"
OUTGOING = "trace_headers"  # scope["state"] key of the headers injected for outgoing calls
SENT = (SENT_TRACE_ID, SENT_PARENT_ID, TRACESTATE.decode())


class RawHeaderGetter:
    """OpenTelemetry getter over the raw ASGI header list: one pass per key, only matches decoded.

    Names are compared as bytes (ASGI servers lowercase them); every value of a repeated header
    is returned, as the propagator expects. Measured cheaper than ``asgi_getter`` over the scope
    or a dict decoded from the whole list. Only ``get``: the propagator never calls ``keys``.
    """

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.encode("latin-1")
        return [value.decode("latin-1") for header, value in carrier if header == name] or None


RAW_HEADERS = RawHeaderGetter()


def _new_id(bits: int) -> int:
    """A random non-zero id, made the way the SDK's ``RandomIdGenerator`` makes them."""
    value = random.getrandbits(bits)
    while not value:
        value = random.getrandbits(bits)
    return value


class HandOtelTrace:
    """What users write with OpenTelemetry's ``TraceContextTextMapPropagator`` and no SDK tracer.

    ``extract`` from the request's raw header list (``RawHeaderGetter``); this service's span is a
    ``NonRecordingSpan`` with a fresh span id in the extracted trace (or in a new trace, as fastmw
    starts one); ``inject`` writes its headers into a dict for outgoing calls, kept in
    ``scope["state"]``; the span's context is current (``context.attach``/``detach``) around the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.app = app
        self.context, self.trace = context, trace
        self.propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        trace = self.trace
        # A duck-typed Getter: subclassing OpenTelemetry's would import it where it may be absent.
        extracted = self.propagator.extract(scope["headers"], getter=RAW_HEADERS)  # type: ignore[arg-type]
        parent = trace.get_current_span(extracted).get_span_context()
        if parent.is_valid:
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            trace_id, flags, state = _new_id(128), trace.TraceFlags.get_default(), None
        span = trace.NonRecordingSpan(trace.SpanContext(trace_id, _new_id(64), False, flags, state))
        current = trace.set_span_in_context(span, extracted)
        outgoing: dict[str, str] = {}
        self.propagator.inject(outgoing, context=current)
        scope.setdefault("state", {})[OUTGOING] = outgoing
        token = self.context.attach(current)
        try:
            await self.app(scope, receive, send)
        finally:
            self.context.detach(token)


# --------------------------------------------------------------------------- rows


def alone(app: ASGIApp, middleware: Any) -> ASGIApp:
    # OpenTelemetry is installed in the bench venv: kept out, the stage reads the headers only.
    return middleware(app, opentelemetry=False)  # type: ignore[no-any-return]


def stacked(app: ASGIApp, stack: Any) -> ASGIApp:
    return stack(app, trace_context={"opentelemetry": False})  # type: ignore[no-any-return]


def otel_row() -> Stack:
    """The hand-written OpenTelemetry row, n/a when opentelemetry-api does not import."""
    try:
        import opentelemetry.trace.propagation.tracecontext  # noqa: F401
    except ImportError as exc:
        return Stack(OTEL_ROW, "hand", None, missing=f"opentelemetry-api not importable ({exc})")
    return Stack(OTEL_ROW, "hand", HandOtelTrace, check=partial(otel_continues_trace, HandOtelTrace))


# --------------------------------------------------------------------------- checks


def _seen(build: Build, inner: ASGIApp, look: Callable[[dict[str, Any]], Any]) -> tuple[str, Any]:
    """One traced request through a separate instance: (problem, what ``look(scope)`` saw in the app)."""
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(look(scope))
        await inner(scope, receive, send)

    capture = _driver.request_once(build(app), _driver.TRACE_REQUEST_HEADERS)
    if capture.status != 200 or capture.body != b"ok":
        return f"check instance: expected 200 'ok', got {capture.status} {capture.body[:40]!r}", None
    if len(seen) != 1:
        return f"check instance: expected the app called once, got {len(seen)} calls", None
    return "", seen[0]


def continues_trace(package: ModuleType) -> Check:
    """The app sees this twin's ``fastmw.trace.current()`` continue the sent trace with a new span id."""

    def check(build: Build, inner: ASGIApp) -> str:
        problem, context = _seen(build, inner, lambda scope: package.trace.current())
        if problem:
            return problem
        got = None if context is None else (context.trace_id, context.parent_id, context.tracestate)
        if got != SENT or context.span_id == SENT_PARENT_ID:
            return f"expected fastmw.trace.current() to continue the sent trace {SENT!r}, got {context!r}"
        return ""

    return check


def no_trace(package: ModuleType) -> Check:
    """Without the trace stage the app sees no ``fastmw.trace.current()``."""

    def check(build: Build, inner: ASGIApp) -> str:
        problem, context = _seen(build, inner, lambda scope: package.trace.current())
        return problem or ("" if context is None else f"expected no current trace, got {context!r}")

    return check


def otel_continues_trace(build: Build, inner: ASGIApp) -> str:
    """The current OpenTelemetry span continues the sent trace, and the injected headers name it."""
    from opentelemetry import trace

    problem, seen = _seen(
        build, inner, lambda scope: (trace.get_current_span().get_span_context(), scope["state"].get(OUTGOING))
    )
    if problem:
        return problem
    span, outgoing = seen
    if f"{span.trace_id:032x}" != SENT_TRACE_ID or span.span_id in (0, int(SENT_PARENT_ID, 16)):
        return f"expected a new span in the sent trace {TRACEPARENT!r}, the app saw {span!r}"
    expected = {"traceparent": f"00-{SENT_TRACE_ID}-{span.span_id:016x}-01", "tracestate": TRACESTATE.decode()}
    if outgoing != expected:
        return f"expected the injected headers {expected!r}, got {outgoing!r}"
    return ""

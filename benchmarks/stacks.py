"""Every stack the benchmarks compare, in one place: the groups and their rows.

Each group holds the bare inner app plus the same work done by fastmw (compiled and pure
copies, see ``_twins``), by the peers (starlette-context, asgi-correlation-id), by
hand-written pure-ASGI classes and by ``BaseHTTPMiddleware`` subclasses (``_hand``). The trace
group's requests also carry a W3C ``traceparent`` and ``tracestate``; its hand-written row uses
OpenTelemetry's propagator (``_trace_group``). A fastmw piece that does not exist yet gives an
"n/a" row, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from benchmarks import _driver, _trace_group
from benchmarks._driver import ASGIApp
from benchmarks._hand import (
    CORRELATION_ID_HEADER,
    HAND_LOGGER,
    REQUEST_ID_HEADER,
    TIMING_HEADER,
    HandAccessLog,
    HandContext,
    HandError,
    HandRequestId,
    HandTiming,
    basehttp_stack,
    devnull_binary,
    hand_four,
    hand_stack,
)
from benchmarks._rows import Group, Stack, fastmw_rows

FASTMW_LOGGER = "fastmw.access"
LOGGERS = (HAND_LOGGER, FASTMW_LOGGER)


# --------------------------------------------------------------------------- inner apps


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The tiny raw ASGI endpoint: 200 text/plain 'ok'."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def _endpoint(request: Request) -> Response:
    return PlainTextResponse("ok")


def starlette_app() -> Starlette:
    """The Starlette route endpoint (async, so it never leaves the event loop thread)."""
    return Starlette(routes=[Route("/", _endpoint)])


# --------------------------------------------------------------------------- competitors


def asgi_correlation_id(app: ASGIApp) -> ASGIApp:
    from asgi_correlation_id import CorrelationIdMiddleware

    return CorrelationIdMiddleware(app, header_name="X-Request-ID")  # type: ignore[arg-type]


def starlette_context(app: ASGIApp, *, raw: bool = True) -> ASGIApp:
    from starlette_context import plugins
    from starlette_context.middleware import ContextMiddleware, RawContextMiddleware

    middleware = RawContextMiddleware if raw else ContextMiddleware
    return middleware(app, plugins=[plugins.RequestIdPlugin(), plugins.CorrelationIdPlugin()])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- logger state


def set_logger(name: str, mode: str) -> None:
    """``disabled``: logger.disabled; ``null``: enabled at INFO into a NullHandler only."""
    logger = logging.getLogger(name)
    logger.disabled = mode == "disabled"
    if mode == "null":
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.handlers = [logging.NullHandler()]


@contextmanager
def saved_loggers() -> Iterator[None]:
    """Restore the benchmark loggers' state afterwards (tests share the process)."""
    saved = [(logging.getLogger(n), logging.getLogger(n).__dict__.copy()) for n in LOGGERS]
    try:
        yield
    finally:
        for logger, state in saved:
            logger.__dict__.clear()
            logger.__dict__.update(state)
        logging.getLogger().manager._clear_cache()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- stacks and groups


RID: dict[str, bytes | None] = {REQUEST_ID_HEADER: None}
CTX: dict[str, bytes | None] = {REQUEST_ID_HEADER: None, CORRELATION_ID_HEADER: None}
TIMING: dict[str, bytes | None] = {TIMING_HEADER: None}
CONTEXT_NEEDS = ("RawContextMiddleware", "plugins.RequestIdPlugin", "plugins.CorrelationIdPlugin")
FIVE_NEEDS = ("RequestIdMiddleware", "AccessLogMiddleware", "TimingMiddleware", "ErrorMiddleware", *CONTEXT_NEEDS)


def _fastmw_context(app: ASGIApp, middleware: Any, request_id: Any, correlation_id: Any) -> ASGIApp:
    return middleware(app, plugins=[request_id(), correlation_id()])  # type: ignore[no-any-return]


def _fastmw_five(app: ASGIApp, rid: Any, log: Any, timing: Any, error: Any, ctx: Any, _: Any, cid: Any) -> ASGIApp:
    return rid(log(timing(error(ctx(app, plugins=[cid()])))))  # type: ignore[no-any-return]


def _fast_sink(app: ASGIApp, middleware: Any, sink: Any) -> ASGIApp:
    """AccessLogMiddleware writing through fastmw's compiled JSON-lines sink to /dev/null."""
    return middleware(app, sink=sink(devnull_binary()))  # type: ignore[no-any-return]


def _logs(name: str, mode: str) -> Callable[[], None]:
    return lambda: set_logger(name, mode)


STARLETTE_CONTEXT = "starlette-context"
ASGI_CORRELATION_ID = "asgi-correlation-id"
CONTEXT_MIDDLEWARE = "context: ContextMiddleware + 2 plugins"
LOG_OFF, LOG_NULL, LOG_JSON = "access log, logger off", "access log to a NullHandler", "access log as JSON lines"
STACK = "fastmw.stack()"
TRACE_STACK, TRACE_STACK_TRACED = "stack() untraced", "stack() with trace context"


def _group_stacks(group: str) -> list[Stack]:
    bare = Stack("bare", "bare", lambda app: app)
    hand_off = _logs(HAND_LOGGER, "disabled")
    fm_off = _logs(FASTMW_LOGGER, "disabled")
    if group == "context":
        return [
            bare,
            *fastmw_rows("fastmw Raw", CONTEXT_NEEDS, _fastmw_context, expect=CTX),
            *fastmw_rows(
                "fastmw ContextMiddleware",
                ("ContextMiddleware", *CONTEXT_NEEDS[1:]),
                _fastmw_context,
                expect=CTX,
                needs_loop=True,
                variant=CONTEXT_MIDDLEWARE,
            ),
            Stack("starlette-context Raw", STARLETTE_CONTEXT, starlette_context, expect=CTX),
            Stack(
                "starlette-context ContextMiddleware",
                STARLETTE_CONTEXT,
                lambda a: starlette_context(a, raw=False),
                expect=CTX,
                needs_loop=True,
                variant=CONTEXT_MIDDLEWARE,
            ),
            Stack("hand-written", "hand", HandContext, expect=CTX),
        ]
    if group == "request id":
        return [
            bare,
            *fastmw_rows("fastmw", ("RequestIdMiddleware",), lambda a, m: m(a), expect=RID),
            Stack("asgi-correlation-id", ASGI_CORRELATION_ID, asgi_correlation_id, expect=RID),
            Stack("hand-written", "hand", HandRequestId, expect=RID),
        ]
    if group == "timing":
        return [
            bare,
            *fastmw_rows("fastmw", ("TimingMiddleware",), lambda a, m: m(a)),
            Stack("hand-written", "hand", HandTiming, expect=TIMING),
        ]
    if group == "error":
        return [
            bare,
            *fastmw_rows("fastmw", ("ErrorMiddleware",), lambda a, m: m(a)),
            Stack("hand-written", "hand", HandError),
        ]
    if group == "access log":
        log = ("AccessLogMiddleware",)
        null_fm, null_hand = _logs(FASTMW_LOGGER, "null"), _logs(HAND_LOGGER, "null")
        return [
            bare,
            *fastmw_rows("fastmw disabled", log, lambda a, m: m(a), before=fm_off, variant=LOG_OFF),
            *fastmw_rows("fastmw NullHandler", log, lambda a, m: m(a), before=null_fm, variant=LOG_NULL),
            *fastmw_rows("fastmw fast sink", (*log, "JsonLinesSink"), _fast_sink, before=fm_off, variant=LOG_JSON),
            Stack("hand-written disabled", "hand", HandAccessLog, before=hand_off, variant=LOG_OFF),
            Stack("hand-written NullHandler", "hand", HandAccessLog, before=null_hand, variant=LOG_NULL),
            Stack("hand-written json-lines", "hand", lambda a: HandAccessLog(a, json_lines=True), variant=LOG_JSON),
        ]
    if group == "stack":
        return [
            bare,
            *fastmw_rows("fastmw", FIVE_NEEDS, _fastmw_five, expect=RID, before=fm_off),
            *fastmw_rows("fastmw.stack()", ("stack",), lambda a, s: s(a), expect=RID, before=fm_off, variant=STACK),
            Stack("hand-written", "hand", hand_stack, expect={**RID, **TIMING}, before=hand_off),
            Stack("hand-written four", "hand", hand_four, expect={**RID, **TIMING}, before=hand_off, variant=STACK),
            Stack(
                "BaseHTTPMiddleware",
                "basehttp",
                basehttp_stack,
                expect={**RID, **TIMING},
                before=hand_off,
                needs_loop=True,
            ),
        ]
    if group == "trace":
        trace, stacked = _trace_group, {**RID, **TIMING}
        return [
            bare,
            *fastmw_rows("fastmw", ("TraceContextMiddleware",), trace.alone, check=trace.continues_trace),
            *fastmw_rows(
                "fastmw.stack()",
                ("stack",),
                lambda a, s: s(a),
                check=trace.no_trace,
                expect=stacked,
                before=fm_off,
                variant=TRACE_STACK,
            ),
            *fastmw_rows(
                "fastmw.stack(trace_context)",
                ("stack",),
                trace.stacked,
                check=trace.continues_trace,
                expect=stacked,
                before=fm_off,
                variant=TRACE_STACK_TRACED,
            ),
            trace.otel_row(),
        ]
    raise ValueError(f"unknown group {group!r}")


# key -> the comparison table's line for the group's own rows, in the table's order.
GROUPS = {
    "stack": "5 middlewares: id, log, timing, error, context",
    "context": "context: RawContextMiddleware + 2 plugins",
    "request id": "request id",
    "timing": "timing",
    "access log": "access log",
    "error": "error handling",
    "trace": "W3C trace context",
}
# What every request of a group sends; the other groups send _driver.REQUEST_HEADERS.
GROUP_HEADERS = {"trace": _driver.TRACE_REQUEST_HEADERS}
# Variants measured for the detail tables only (the trace stage's cost inside stack()).
DETAIL_ONLY = {"trace": (TRACE_STACK, TRACE_STACK_TRACED)}


def groups(keys: Iterable[str] = GROUPS) -> list[Group]:
    """The middleware groups, around the raw ASGI endpoint."""
    return [
        Group(
            key,
            GROUPS[key],
            _group_stacks(key),
            GROUP_HEADERS.get(key, _driver.REQUEST_HEADERS),
            DETAIL_ONLY.get(key, ()),
        )
        for key in keys
    ]

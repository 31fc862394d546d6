"""Every stack the benchmarks compare, in one place.

Each group holds the bare inner app plus the same work done by fastmw (compiled
and pure copies, see ``_twins``), by competitors, by straightforward hand-written
pure-ASGI classes and by ``BaseHTTPMiddleware`` subclasses. The hand-written and
BaseHTTP classes are what a careful user would write from the Starlette docs:
request id echo with uuid4 validation (``x-request-id``), a ``server-timing``
header, a 500 on unhandled errors, an access log to a disabled logger, and a
context dict in a ContextVar filled from ``x-request-id``/``x-correlation-id``.
The trace group's requests also carry a W3C ``traceparent`` and ``tracestate``; its
hand-written row uses OpenTelemetry's propagator (``_trace_group``). A fastmw piece that
does not exist yet gives an "n/a" row, never an error.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from benchmarks import _driver, _trace_group
from benchmarks._driver import ASGIApp
from benchmarks._rows import Group, Stack, fastmw_rows

REQUEST_ID_HEADER = "x-request-id"
CORRELATION_ID_HEADER = "x-correlation-id"
TIMING_HEADER = "server-timing"
HAND_LOGGER = "benchmarks.access"
FASTMW_LOGGER = "fastmw.access"
LOGGERS = (HAND_LOGGER, FASTMW_LOGGER)
ERROR_BODY = b"Internal Server Error"
# The fields of fastmw's JSON access record, in its order (HandJsonAccessLog writes the same).
ACCESS_RECORD_FIELDS = (
    "time",
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

HAND_REQUEST_ID: ContextVar[str | None] = ContextVar("bench_request_id", default=None)
HAND_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("bench_context")
hand_log = logging.getLogger(HAND_LOGGER)
_DEVNULL: io.TextIOWrapper | None = None
_DEVNULL_BINARY: io.BufferedWriter | None = None


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


# --------------------------------------------------------------------------- shared helpers


def valid_uuid4(value: str | None) -> bool:
    if not value:
        return False
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def _incoming_id(value: str | None) -> str:
    return value if value is not None and valid_uuid4(value) else uuid.uuid4().hex


def _devnull() -> io.TextIOWrapper:
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w", encoding="utf-8")
        atexit.register(_DEVNULL.close)
    return _DEVNULL


def _devnull_binary() -> io.BufferedWriter:
    """One binary /dev/null stream for the process (the fast sink's target)."""
    global _DEVNULL_BINARY
    if _DEVNULL_BINARY is None:
        _DEVNULL_BINARY = open(os.devnull, "wb")
        atexit.register(_DEVNULL_BINARY.close)
    return _DEVNULL_BINARY


def _log_line(client: Any, method: str, path: str, status: int, size: int, millis: float, sink: Any) -> None:
    if sink is not None:
        record = {"client": client[0] if client else None, "method": method, "path": path}
        record.update(status=status, bytes=size, ms=round(millis, 3))
        sink.write(json.dumps(record) + "\n")
    else:
        hand_log.info("%s %s %s %d %d %.3fms", client[0] if client else "-", method, path, status, size, millis)


# --------------------------------------------------------------------------- hand-written pure ASGI


class HandRequestId:
    """Echo a valid uuid4 ``x-request-id`` (or a new one) and keep it in a ContextVar."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        request_id = _incoming_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = HAND_REQUEST_ID.set(request_id)

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HAND_REQUEST_ID.reset(token)


class HandTiming:
    """Add ``server-timing: app;dur=<ms>`` (time to the response start)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                millis = (perf_counter() - start) * 1000
                MutableHeaders(scope=message).append(TIMING_HEADER, f"app;dur={millis:.3f}")
            await send(message)

        await self.app(scope, receive, send_wrapper)


class HandError:
    """Turn an unhandled exception into a plain 500 unless the response already started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            hand_log.exception("unhandled error")
            if started:
                raise
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(ERROR_BODY))]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": ERROR_BODY})


class HandAccessLog:
    """Log method, path, status, body bytes and duration when the response ends."""

    def __init__(self, app: ASGIApp, *, json_lines: bool = False) -> None:
        self.app = app
        self.sink = _devnull() if json_lines else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = perf_counter()
        status = 500
        size = 0

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            millis = (perf_counter() - start) * 1000
            _log_line(scope.get("client"), scope["method"], scope["path"], status, size, millis, self.sink)


class HandJsonAccessLog:
    """One JSON line per request with fastmw's access-record fields: ``json.dumps``, one buffered write."""

    def __init__(self, app: ASGIApp, *, stream: io.TextIOBase | None = None) -> None:
        self.app = app
        self.stream = stream if stream is not None else _devnull()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = perf_counter()
        status = 500
        first_byte: float | None = None
        response_bytes = 0
        request_bytes = 0

        async def receive_wrapper() -> dict[str, Any]:
            nonlocal request_bytes
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                request_bytes += len(message.get("body", b""))
            return message

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, first_byte, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                if first_byte is None:
                    first_byte = perf_counter()
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            end = perf_counter()
            client = scope.get("client")
            record = {
                "time": round(time.time(), 6),
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "http_version": scope["http_version"],
                "status": status,
                "duration_ms": round((end - start) * 1000, 3),
                "ttfb_ms": None if first_byte is None else round((first_byte - start) * 1000, 3),
                "response_bytes": response_bytes,
                "request_bytes": request_bytes,
                "client_addr": f"{client[0]}:{client[1]}" if client else None,
                "user_agent": Headers(scope=scope).get("user-agent"),
                "request_id": HAND_REQUEST_ID.get(),
            }
            self.stream.write(json.dumps(record) + "\n")


class HandContext:
    """A context dict (request and correlation ids) in a ContextVar; both ids echoed."""

    def __init__(self, app: ASGIApp, *, request_id: bool = True) -> None:
        self.app = app
        self.request_id = request_id

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        data = {CORRELATION_ID_HEADER: _incoming_id(headers.get(CORRELATION_ID_HEADER))}
        if self.request_id:
            data[REQUEST_ID_HEADER] = _incoming_id(headers.get(REQUEST_ID_HEADER))
        token = HAND_CONTEXT.set(data)

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in data.items():
                    response_headers.append(key, value)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HAND_CONTEXT.reset(token)


# --------------------------------------------------------------------------- BaseHTTPMiddleware


class BaseRequestId(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id = _incoming_id(request.headers.get(REQUEST_ID_HEADER))
        token = HAND_REQUEST_ID.set(request_id)
        try:
            response = await call_next(request)
        finally:
            HAND_REQUEST_ID.reset(token)
        response.headers.append(REQUEST_ID_HEADER, request_id)
        return response


class BaseTiming(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        start = perf_counter()
        response = await call_next(request)
        response.headers.append(TIMING_HEADER, f"app;dur={(perf_counter() - start) * 1000:.3f}")
        return response


class BaseError(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await call_next(request)
        except Exception:
            hand_log.exception("unhandled error")
            return PlainTextResponse(ERROR_BODY.decode(), status_code=500)


class BaseAccessLog(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        start = perf_counter()
        response = await call_next(request)
        size = int(response.headers.get("content-length", 0))
        millis = (perf_counter() - start) * 1000
        _log_line(request.client, request.method, request.url.path, response.status_code, size, millis, None)
        return response


class BaseContext(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, *, request_id: bool = True) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.request_id = request_id

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        data = {CORRELATION_ID_HEADER: _incoming_id(request.headers.get(CORRELATION_ID_HEADER))}
        if self.request_id:
            data[REQUEST_ID_HEADER] = _incoming_id(request.headers.get(REQUEST_ID_HEADER))
        token = HAND_CONTEXT.set(data)
        try:
            response = await call_next(request)
        finally:
            HAND_CONTEXT.reset(token)
        for key, value in data.items():
            response.headers.append(key, value)
        return response


def hand_stack(app: ASGIApp) -> ASGIApp:
    """The five hand-written middlewares, outermost first: id, log, timing, error, context."""
    return HandRequestId(HandAccessLog(HandTiming(HandError(HandContext(app, request_id=False)))))


def hand_four(app: ASGIApp) -> ASGIApp:
    """What ``fastmw.stack()`` does, hand-written, in its order: id, timing, log, error."""
    return HandRequestId(HandTiming(HandAccessLog(HandError(app))))


def basehttp_stack(app: ASGIApp) -> ASGIApp:
    return BaseRequestId(BaseAccessLog(BaseTiming(BaseError(BaseContext(app, request_id=False)))))


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
    return middleware(app, sink=sink(_devnull_binary()))  # type: ignore[no-any-return]


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

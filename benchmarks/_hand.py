"""The hand-written middlewares the benchmarks compare fastmw with: what a careful user would write
from the Starlette docs, as pure ASGI classes and as ``BaseHTTPMiddleware`` subclasses.

Request id echo with uuid4 validation (``x-request-id``), a ``server-timing`` header, a 500 on
unhandled errors, an access log (a logger, or a JSON line), and a context dict in a ContextVar
filled from ``x-request-id``/``x-correlation-id``.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import os
import time
import uuid
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from benchmarks._driver import ASGIApp

REQUEST_ID_HEADER = "x-request-id"
CORRELATION_ID_HEADER = "x-correlation-id"
TIMING_HEADER = "server-timing"
HAND_LOGGER = "benchmarks.access"
ERROR_BODY = b"Internal Server Error"

HAND_REQUEST_ID: ContextVar[str | None] = ContextVar("bench_request_id", default=None)
HAND_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("bench_context")
hand_log = logging.getLogger(HAND_LOGGER)
_DEVNULL: io.TextIOWrapper | None = None
_DEVNULL_BINARY: io.BufferedWriter | None = None


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


def devnull_binary() -> io.BufferedWriter:
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

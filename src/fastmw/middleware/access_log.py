"""Access log: exactly one record per request, after the last body byte.

Records go to stdlib ``logging`` (logger ``fastmw.access``, fields in ``extra``,
a uvicorn-style text line plus duration) or to a ``JsonLinesSink``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core
from fastmw._storage import CORRELATION_ID
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter
from fastmw.middleware._pipeline import FusableMiddleware
from fastmw.middleware.timing import TIMING_RECORDER
from fastmw.sink import JsonLinesSink

DEFAULT_LOGGER = "fastmw.access"
STATUS_APP_ERROR = 500
STATUS_CLIENT_GONE = 499
STATUS_WEBSOCKET_ACCEPTED = 101
STATUS_WEBSOCKET_DENIED = 403
# uvicorn's access line ('%s - "%s %s HTTP/%s" %d') plus the duration.
TEXT_FORMAT = '%s - "%s %s HTTP/%s" %d %.2fms'
FIELDS = (
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
JSON_FIELDS = ("time", *FIELDS)
LIFESPAN_FLUSH = frozenset({"lifespan.shutdown", "lifespan.shutdown.complete", "lifespan.shutdown.failed"})

internal_logger = logging.getLogger("fastmw")

header_get = core.header_get
monotonic = core.monotonic
SendRecorder = core.SendRecorder
ReceiveRecorder = core.ReceiveRecorder


def _printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (no log injection)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _text(raw: bytes) -> str:
    """Header or query bytes as a printable str (latin-1, as ASGI defines them)."""
    return _printable(raw.decode("latin-1"))


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    return f"{client[0]}:{client[1]}"


class AccessLogMiddleware(FusableMiddleware):
    """Writes one access record per request (and per websocket session)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | str = DEFAULT_LOGGER,
        level: int | str = logging.INFO,
        sink: JsonLinesSink | None = None,
        include_query: bool = True,
        include_user_agent: bool = True,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        self.app = app
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise ConfigurationError(f"logger must be a logging.Logger or a name, got {logger!r}")
        # A name resolves as Logger.setLevel resolves it: registered names only ("INFO", "WARN").
        number = logging.getLevelName(level) if isinstance(level, str) else level
        if type(number) is not int:
            raise ConfigurationError(f"level must be an int logging level or a name such as 'INFO', got {level!r}")
        if sink is not None and not callable(getattr(sink, "write_record", None)):
            raise ConfigurationError(f"sink must have write_record(keys, values), got {sink!r}")
        self.logger = logger
        self.level = number
        self.sink = sink
        self.include_query = bool(include_query)
        self.include_user_agent = bool(include_user_agent)
        self._paths = PathFilter(include_paths, exclude_paths)
        self._fuse_init(fuse)

    # ------------------------------------------------------------------ finish step

    def _status(self, scope: Scope, recorder: Any, receiver: Any, raised: BaseException | None) -> int:
        if scope["type"] == "websocket":
            if recorder.accepted:
                return STATUS_WEBSOCKET_ACCEPTED
            return recorder.status if recorder.started else STATUS_WEBSOCKET_DENIED
        if recorder.complete:
            return recorder.status  # type: ignore[no-any-return]
        # A send failing mid-response (OSError) or a server cancelling the task means the
        # client went away; an OSError before any start is the app's own failure.
        gone = (
            receiver.disconnected
            or isinstance(raised, asyncio.CancelledError)
            or (recorder.started and isinstance(raised, OSError))
        )
        if gone:
            return STATUS_CLIENT_GONE
        # Started but cut short by the app: the client got this status line.
        if recorder.started:
            return recorder.status  # type: ignore[no-any-return]
        return STATUS_APP_ERROR

    def _values(self, scope: Scope, recorder: Any, receiver: Any, raised: BaseException | None) -> list[Any]:
        now = monotonic()
        timing = TIMING_RECORDER.get()
        start = timing.t_start if timing is not None else recorder.t_start
        end = recorder.t_last_byte or now
        ttfb = round((recorder.t_first_byte - start) * 1000.0, 3) if recorder.t_first_byte else None
        user_agent = header_get(scope["headers"], b"user-agent") if self.include_user_agent else None
        # One type per field, whatever the request: text is str (or None), never bytes.
        query = _text(scope.get("query_string", b"")) if self.include_query else None
        return [
            scope.get("method", "WEBSOCKET"),
            scope.get("path", ""),
            query,
            scope.get("http_version", "1.1"),
            self._status(scope, recorder, receiver, raised),
            round((end - start) * 1000.0, 3),
            ttfb,
            recorder.body_bytes,
            receiver.body_bytes,
            _client(scope),
            None if user_agent is None else _text(user_agent),
            CORRELATION_ID.get(),
        ]

    def _log(self, values: list[Any]) -> None:
        method, path, query, http_version, status, duration_ms = values[:6]
        target = f"{quote(path)}?{query}" if query else quote(path)
        values[1] = _printable(path)
        client = values[9] or "-"
        extra = dict(zip(FIELDS, values, strict=True))
        self.logger.log(self.level, TEXT_FORMAT, client, method, target, http_version, status, duration_ms, extra=extra)

    def _finish(self, scope: Scope, recorder: Any, receiver: Any, raised: BaseException | None) -> None:
        sink = self.sink
        # Skip all record-building when nobody would see it.
        if sink is None and not self.logger.isEnabledFor(self.level):
            return
        try:
            values = self._values(scope, recorder, receiver, raised)
            if sink is not None:
                sink.write_record(JSON_FIELDS, [round(time.time(), 6), *values])
            else:
                self._log(values)
        except Exception:
            internal_logger.exception("fastmw access log failed to write a record")

    # ------------------------------------------------------------------ ASGI

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        sink = self.sink
        assert sink is not None

        async def flushing_receive() -> Message:
            message = await receive()
            if message.get("type") in LIFESPAN_FLUSH:
                sink.flush()
            return message

        async def flushing_send(message: Message) -> None:
            if message.get("type") in LIFESPAN_FLUSH:
                sink.flush()
            await send(message)

        try:
            await self.app(scope, flushing_receive, flushing_send)
        finally:
            sink.flush()

    # ------------------------------------------------------------------ stage steps

    _wraps_receive = True

    def _passes_other(self) -> bool:
        return self.sink is None

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.sink is not None:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        # The same check _finish starts with, saving a call when nobody would see the record.
        if self.sink is not None or self.logger.isEnabledFor(self.level):
            self._finish(scope, recorder, receiver, exc)

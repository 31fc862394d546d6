"""Access log: exactly one record per request, after the last body byte.

Records go to stdlib ``logging`` (logger ``fastmw.access``, fields in ``extra``,
a uvicorn-style text line plus duration) or to a ``JsonLinesSink``. The record is
built by the core's access stage; nothing is built when the logger would drop it.
"""

from __future__ import annotations

import logging
from functools import partial

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core
from fastmw._options import build_stage
from fastmw.errors import ConfigurationError
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter
from fastmw.sink import JsonLinesSink

DEFAULT_LOGGER = "fastmw.access"
FIELDS = core.ACCESS_FIELDS
LIFESPAN_FLUSH = frozenset({"lifespan.shutdown", "lifespan.shutdown.complete", "lifespan.shutdown.failed"})


def _level(level: int | str) -> int:
    """A logging level given as an int or a registered name (``"INFO"``), as ``Logger.setLevel`` takes it."""
    number = logging.getLevelName(level) if isinstance(level, str) else level
    if type(number) is not int:
        raise ConfigurationError(f"level must be an int logging level or a name such as 'INFO', got {level!r}")
    return number


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
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise ConfigurationError(f"logger must be a logging.Logger or a name, got {logger!r}")
        self.logger = logger
        self.level = _level(level)
        self.sink = sink
        self.include_query = bool(include_query)
        self.include_user_agent = bool(include_user_agent)
        stage = build_stage(
            self._core.AccessLogStage,
            logger,
            self.level,
            sink=sink,
            include_query=include_query,
            include_user_agent=include_user_agent,
            paths=PathFilter(include_paths, exclude_paths),
        )
        self._attach(app, stage, fuse)

    def _wrap_other(self, app: ASGIApp) -> ASGIApp:
        # With a sink, lifespan shutdown flushes it.
        return app if self.sink is None else partial(self._lifespan, app)

    async def _lifespan(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        sink = self.sink
        if scope["type"] != "lifespan" or sink is None:
            await app(scope, receive, send)
            return

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
            await app(scope, flushing_receive, flushing_send)
        finally:
            sink.flush()

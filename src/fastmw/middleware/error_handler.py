"""Errors: a 500 (or websocket close 1011) when the app raises before responding.

The error response is sent through the ``send`` this middleware was given, so
the middleware outside it (request id, timing) put their headers on it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from fastmw._impl import core
from fastmw._storage import CORRELATION_ID
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter
from fastmw.middleware._pipeline import FusableMiddleware

STATUS = 500
ERROR_CODE = "internal_error"
WEBSOCKET_INTERNAL_ERROR = 1011
JSON_HEADERS = [(b"content-type", b"application/json")]

logger = logging.getLogger("fastmw.error")

SendRecorder = core.SendRecorder

# handler(scope, exc) -> an ASGI app to send instead (a Starlette Response is one), sync or async.
ErrorHandler = Callable[[Scope, BaseException], "ASGIApp | Awaitable[ASGIApp]"]


def default_body(request_id: str | None) -> bytes:
    """The default 500 body: ``{"error": "internal_error", "request_id": ...}``."""
    return json.dumps({"error": ERROR_CODE, "request_id": request_id}).encode()


async def _send_default(send: Send) -> None:
    body = default_body(CORRELATION_ID.get())
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": STATUS, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ErrorMiddleware(FusableMiddleware):
    """Turns an exception raised before the response started into a 500 (re-raised by default)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        handler: ErrorHandler | None = None,
        reraise: bool = True,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        if handler is not None and not callable(handler):
            raise ConfigurationError(f"handler must be callable or None, got {handler!r}")
        self.app = app
        self.handler = handler
        self.reraise = bool(reraise)
        self._paths = PathFilter(include_paths, exclude_paths)
        self._fuse_init(fuse)

    async def _respond(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> None:
        if self.handler is not None:
            try:
                response: Any = self.handler(scope, exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, send)
                return
            except Exception:
                # The handler failed: fall back to the default body (nothing was sent
                # unless the handler's response itself started, which SendRecorder tracks).
                logger.exception("error handler %r failed", self.handler)
                if getattr(send, "started", False):
                    return
        await _send_default(send)

    # ------------------------------------------------------------------ stage steps

    _catches = True

    async def _stage_handle(self, scope: Scope, receive: Receive, send: Any, exc: BaseException) -> bool:
        # ``send`` is the pipeline's recorder: it has seen everything the app sent, and
        # what is sent through it now only gets the headers of the middleware outer to this one.
        # Returns whether ``exc`` propagates (not raised here: no exception -> frame cycle).
        if scope["type"] == "websocket":
            if not send.accepted and not send.started and send.close_code is None:
                await send({"type": "websocket.close", "code": WEBSOCKET_INTERNAL_ERROR})
        elif send.started:
            # Never a second start: the server closes the connection when we re-raise.
            logger.error("app raised after the response started (%s %s)", scope.get("method"), scope.get("path"))
            return True
        else:
            await self._respond(scope, receive, send, exc)
        if self.reraise:
            return True
        logger.error("app raised; sent an error response instead", exc_info=exc)
        return False

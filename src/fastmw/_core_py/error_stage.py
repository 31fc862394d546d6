"""The error stage: a 500 (or a websocket close 1011) when the app raises before responding."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from fastmw._core_py._common import _type_name
from fastmw._core_py.engine import Stage
from fastmw._core_py.recorders import SendRecorder
from fastmw._storage import CORRELATION_ID
from fastmw.types import PathFilter, Receive, Scope, Send

ERROR_CODE = "internal_error"
ERROR_STATUS = 500
WEBSOCKET_INTERNAL_ERROR = 1011

_error_logger = logging.getLogger("fastmw.error")


def error_body(request_id: object) -> bytes:
    """The default 500 body: ``{"error": "internal_error", "request_id": ...}``."""
    return json.dumps({"error": ERROR_CODE, "request_id": request_id}).encode()


class ErrorStage(Stage):
    """Answers an exception raised before the response started: a 500 (http), a
    close 1011 (websocket). ``handler(scope, exc)`` may give the ASGI app that answers
    instead (sync or async). Logs one line per unhandled exception, with its traceback."""

    def __init__(self, *, handler: Any = None, reraise: bool = True, paths: PathFilter | None = None) -> None:
        Stage.__init__(self, paths=paths)
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable or None, not {_type_name(handler)}")
        self.handler = handler
        self.reraise = bool(reraise)
        self.catches = True
        self._freeze()

    async def answer(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> bool:
        if not isinstance(send, SendRecorder):
            raise TypeError(f"send must be the engine's SendRecorder, not {_type_name(send)}")
        ex = send
        if scope["type"] == "websocket":
            if not ex.accepted and not ex.started and ex.close_code is None:
                await send({"type": "websocket.close", "code": WEBSOCKET_INTERNAL_ERROR})
            _log_unhandled(scope, exc, "closed the websocket (1011)")
        elif ex.started:
            # Never a second start: the server closes the connection when it propagates.
            if ex.complete:
                _log_unhandled(scope, exc, f"the app had sent a complete {ex.status} response")
            else:
                _log_unhandled(scope, exc, f"the {ex.status} response was cut short")
            return True
        else:
            await self._respond(scope, receive, send, exc)
            _log_unhandled(scope, exc, f"sent {ex.status}" if ex.started else "nothing sent")
        return self.reraise

    async def _respond(self, scope: Scope, receive: Receive, send: SendRecorder, exc: BaseException) -> None:
        """The handler's response, or the default JSON 500."""
        if self.handler is not None:
            try:
                response = self.handler(scope, exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, send)
                return
            except Exception:
                # The handler failed: the default body, unless its response already started.
                _error_logger.exception("error handler %r failed", self.handler)
                if send.started:
                    return
        body = error_body(CORRELATION_ID.get())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": ERROR_STATUS, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _log_unhandled(scope: Scope, exc: BaseException, outcome: str) -> None:
    _error_logger.error(
        "unhandled %s in %s %s (request id %s); %s",
        type(exc).__name__,
        scope.get("method", "WEBSOCKET"),
        scope.get("path", ""),
        CORRELATION_ID.get(),
        outcome,
        exc_info=exc,
    )

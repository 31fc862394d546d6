"""The error stage: a 500 (or a websocket close 1011) when the app raises before responding."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from typing import Any, cast

from fastmw._core_py._common import RawHeaders, _type_name
from fastmw._core_py.access import _id_text, _printable
from fastmw._core_py.engine import Stage
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._storage import CORRELATION_ID
from fastmw.types import PathFilter, Receive, Scope, Send

ERROR_CODE = "internal_error"
ERROR_STATUS = 500
WEBSOCKET_INTERNAL_ERROR = 1011
# The attribute and traceback note an exception leaving a request is marked with.
REQUEST_ID_ATTRIBUTE = "fastmw_request_id"
REQUEST_ID_NOTE = "request id: "
# On HTTP/1.x a 500 followed by a re-raise says the server will close the connection.
CLOSE_HEADER = (b"connection", b"close")

_error_logger = logging.getLogger("fastmw.error")
# The end of an unhandled exception's line when it is re-raised (logged without its traceback).
_RERAISED = "; re-raised (the server logs the traceback)"


def error_body(request_id: object) -> bytes:
    """The default 500 body: ``{"error": "internal_error", "request_id": ...}``."""
    return json.dumps({"error": ERROR_CODE, "request_id": request_id}).encode()


class ErrorStage(Stage):
    """Answers an exception raised before the response started: a 500 (http), a
    close 1011 (websocket). ``handler(scope, exc)`` may give the ASGI app that answers
    instead (sync or async). Logs one line per unhandled exception: with its traceback when
    the exception ends here, without when it is re-raised (the server logs the traceback)."""

    def __init__(self, *, handler: Any = None, reraise: bool = True, paths: PathFilter | None = None) -> None:
        Stage.__init__(self, paths=paths)
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable or None, not {_type_name(handler)}")
        self.handler = handler
        self.reraise = bool(reraise)
        self.catches = True
        # A 5xx the app sends while handling an exception (Starlette's ServerErrorMiddleware,
        # which re-raises after it) gets ``connection: close`` too; other statuses skip this step.
        self.starts = True
        self.start_status = ERROR_STATUS
        self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        assert ex._states is not None
        ex._states[index] = scope  # read only if a 5xx starts
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        status = dict.get(message, "status")
        if (
            type(status) is int
            and status >= ERROR_STATUS
            and dict.get(message, "type") == "http.response.start"
            and sys.exc_info()[1] is not None
            and state is not None
            and _closes_connection(cast(Scope, state))
        ):
            headers.append(CLOSE_HEADER)
        return 0

    async def answer(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> bool:
        if not isinstance(send, SendRecorder):
            raise TypeError(f"send must be the engine's SendRecorder, not {_type_name(send)}")
        ex = send
        if scope["type"] == "websocket":
            if not ex.accepted and not ex.started and ex.close_code is None:
                await send({"type": "websocket.close", "code": WEBSOCKET_INTERNAL_ERROR})
            _log_unhandled(scope, exc, "closed the websocket (1011)", self.reraise)
            return self.reraise
        if ex.started:
            # Never a second start: the server closes the connection when it propagates.
            if ex.complete:
                _log_unhandled(scope, exc, f"the app had sent a complete {ex.status} response", True)
            else:
                _log_unhandled(scope, exc, f"the {ex.status} response was cut short", True)
            return True
        await self._respond(scope, receive, send, exc)
        _log_unhandled(scope, exc, f"sent {ex.status}" if ex.started else "nothing sent", self.reraise)
        return self.reraise

    async def _respond(self, scope: Scope, receive: Receive, send: SendRecorder, exc: BaseException) -> None:
        """The handler's response, or the default JSON 500; ``connection: close`` on it when
        the exception is re-raised over HTTP/1.x (the server then closes the connection, so a
        client must not send another request on it)."""
        closes = self.reraise and _closes_connection(scope)
        if self.handler is not None:
            try:
                response = self.handler(scope, exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, _closing_send(send) if closes else send)
                return
            except Exception:
                # The handler failed: the default body, unless its response already started.
                _error_logger.exception("error handler %r failed", self.handler)
                if send.started:
                    return
        body = error_body(CORRELATION_ID.get())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if closes:
            headers.append(CLOSE_HEADER)
        await send({"type": "http.response.start", "status": ERROR_STATUS, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _closes_connection(scope: Scope) -> bool:
    """Whether the request came over HTTP/1.x (HTTP/2 and 3 forbid a ``connection`` header)."""
    version = scope.get("http_version", "1.1")
    return isinstance(version, str) and version.startswith("1")


def _closing_send(send: Any) -> Any:
    """``send`` adding ``connection: close`` to the response start (a handler's response)."""

    async def closing_send(message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), CLOSE_HEADER]}
        await send(message)

    return closing_send


def note_request_id(exc: object, request_id: object) -> None:
    """Mark an exception leaving a request with its id: ``exc.fastmw_request_id`` and, from
    Python 3.11, a traceback note (``request id: ...``), so the server's traceback and a
    Sentry event built after the request still name it. The innermost request's id wins."""
    if request_id is None or not isinstance(exc, Exception):
        return
    try:
        if REQUEST_ID_ATTRIBUTE in vars(exc):
            return
        setattr(exc, REQUEST_ID_ATTRIBUTE, request_id)
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(REQUEST_ID_NOTE + _printable(request_id))
    except Exception:
        # An exception type that refuses attributes or notes keeps its traceback as it is.
        pass


def _log_unhandled(scope: Scope, exc: BaseException, outcome: str, reraised: bool) -> None:
    """One line per unhandled exception; its traceback only where nobody else logs it."""
    _error_logger.error(
        "unhandled %s in %s %s (request id %s); %s" + (_RERAISED if reraised else ""),
        type(exc).__name__,
        _printable(scope.get("method", "WEBSOCKET")),
        _printable(scope.get("path", "")),
        _id_text(CORRELATION_ID.get()),
        outcome,
        exc_info=None if reraised else exc,
    )

"""Errors: a 500 (or websocket close 1011) when the app raises before responding.

The error response is sent through the request's wrapped ``send``, so the middleware
outside this one (request id, timing) put their headers on it. Every unhandled
exception is logged once on ``fastmw.error``, with its traceback and the request id,
whichever layer sent the 500 (this one, or Starlette's ``ServerErrorMiddleware``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Scope

from fastmw._impl import core
from fastmw._options import build_stage
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

# handler(scope, exc) -> an ASGI app to send instead (a Starlette Response is one), sync or async.
ErrorHandler = Callable[[Scope, BaseException], "ASGIApp | Awaitable[ASGIApp]"]

default_body = core.error_body


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
        stage = build_stage(
            self._core.ErrorStage, handler=handler, reraise=reraise, paths=PathFilter(include_paths, exclude_paths)
        )
        self.handler = handler
        self.reraise = bool(reraise)
        self._attach(app, stage, fuse)

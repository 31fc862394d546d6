"""``ContextMiddleware``: starlette-context's ``ContextMiddleware`` without BaseHTTPMiddleware."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fastmw.middleware._context_base import ContextMiddlewareBase, ResponseStart

__all__ = ["ContextMiddleware"]


class _ResponseStartAsResponse(ResponseStart, Response):  # type: ignore[misc,override]
    """The start message as a ``Response`` instance, as ContextMiddleware plugins expect."""

    __slots__ = ()


class ContextMiddleware(ContextMiddlewareBase):
    """Creates the request context; plugin headers are set on the response (replacing the app's).

    ``ContextMiddleware(app, plugins=None, default_error_response=Response(status_code=400))``.
    Plugins that need a request object get a ``starlette.requests.Request`` (an
    ``HTTPConnection`` on websockets); a body read by a plugin is replayed to the app.
    """

    response_start_class = _ResponseStartAsResponse
    replace_echo_headers = True

    def _request_object(self, scope: Scope, receive: Receive, send: Send) -> Request | HTTPConnection:
        if scope["type"] == "http":
            return Request(scope, receive)
        return HTTPConnection(scope)

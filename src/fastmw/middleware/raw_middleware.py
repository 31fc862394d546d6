"""``RawContextMiddleware``: starlette-context's pure-ASGI context middleware."""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fastmw._route import overridden
from fastmw.middleware._context_base import ContextMiddlewareBase

__all__ = ["RawContextMiddleware"]


class RawContextMiddleware(ContextMiddlewareBase):
    """Creates the request context; plugin headers are appended to the response.

    ``RawContextMiddleware(app, plugins=None, default_error_response=Response(status_code=400))``.
    Override ``get_request_object`` to give plugins something else than an ``HTTPConnection``.
    """

    @staticmethod
    def get_request_object(scope: Scope, receive: Receive, send: Send) -> Request | HTTPConnection:
        """The object plugins' ``process_request`` receive (only built when one needs it)."""
        return HTTPConnection(scope)

    async def send_response(self, error_response: Response, send: Send) -> None:
        """Send a plain ``Response`` as the refusal of an http request."""
        await send(
            {"type": "http.response.start", "status": error_response.status_code, "headers": error_response.raw_headers}
        )
        await send({"type": "http.response.body", "body": error_response.body})

    def _user_hooks(self) -> frozenset[str]:
        return super()._user_hooks() | overridden(
            type(self), RawContextMiddleware, ("get_request_object", "send_response")
        )

    def _request_object(self, scope: Scope, receive: Receive, send: Send) -> Request | HTTPConnection:
        return self.get_request_object(scope, receive, send)

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        if "send_response" in self.route.hooks:
            await self.send_response(response, send)
        else:
            # Any Response type (streaming, file) and its background task work.
            await response(scope, receive, send)

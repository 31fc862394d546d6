"""Shared base of ``ContextMiddleware`` and ``RawContextMiddleware``.

Pure ASGI on the fastmw core: the request's context dict is built before the
app runs, made current for the whole call (every ``send``, background tasks,
streaming bodies) and reset when the app returns.

Which path a request takes is decided at construction and held in ``route`` (and each
plugin's in a ``PluginRoute``; the table is in ``docs/middleware.md``). Either way one
``core.ContextStage`` sets the context, resets it, and echoes the UUID plugins' values as the
context holds them when the response starts:

* plugins that keep the default hooks are read by the stage's readers from the raw scope
  headers in the core (no Starlette ``Request``, no coroutine per plugin); the stage fuses
  with adjacent fastmw middlewares (route ``engine``);
* overriding ``set_context``, ``get_request_object`` or a plugin's
  ``process_request``/``extract_value_from_header_by_key``/``enrich_response`` needs
  coroutines awaited, which a stage's synchronous steps cannot do: a Python layer (route
  ``awaited``) awaits them like starlette-context does, hands the context it built to the
  stage (its ``source``), and awaits the overridden ``enrich_response`` hooks on the
  response start, after the stage's echo; it does not fuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core
from fastmw._options import build_stage, check_response
from fastmw._route import AWAITED, ENGINE, PluginRoute, Route, overridden
from fastmw.errors import ConfigurationError, MiddleWareValidationError
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.plugins.base import FastReader, Plugin
from fastmw.plugins.request_id import RequestIdPlugin

__all__ = ["ContextMiddlewareBase", "ResponseStart"]

# Messages on which plugins enrich the response (once per response).
START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
WEBSOCKET_DENIAL = "websocket.http.response"
# RFC 6455 "policy violation": a websocket refused by a plugin.
WEBSOCKET_POLICY_VIOLATION = 1008

_message_headers = core.message_headers
_MutableHeaders = core.MutableHeaders
# The context the awaited-hooks layer built, while it runs its stage (read by the stage's source).
_AWAITED: ContextVar[dict[Any, Any]] = ContextVar("fastmw.awaited_context")


def _awaited_context(scope: Scope) -> dict[Any, Any]:
    return _AWAITED.get()


class ResponseStart(dict):  # type: ignore[type-arg]
    """A response start message that also looks like a ``Response`` to plugins.

    Raw-style plugins read ``arg["type"]`` and wrap it in ``MutableHeaders(scope=arg)``;
    Response-style plugins use ``arg.headers``/``arg.raw_headers``/``arg.status_code``.
    Both routes edit this dict, which is what is sent.
    """

    __slots__ = ()

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The message's header list (edits go out with the message)."""
        return _message_headers(self)

    @property
    def headers(self) -> Any:
        """``MutableHeaders`` over the message's header list."""
        return _MutableHeaders(raw=_message_headers(self))

    @property
    def status_code(self) -> int | None:
        """The response status (None on ``websocket.accept``)."""
        return self.get("status")

    @status_code.setter
    def status_code(self, value: int) -> None:
        self["status"] = value


class ContextMiddlewareBase(FusableMiddleware):
    """Builds the request context from plugins; subclasses choose the response style."""

    # The class used for the message custom ``enrich_response`` hooks receive.
    response_start_class: type[ResponseStart] = ResponseStart
    # True: echo headers replace the app's (Response-style); False: they are appended.
    replace_echo_headers = False

    def __init__(
        self,
        app: ASGIApp,
        plugins: Sequence[Plugin] | None = None,
        default_error_response: Response = Response(status_code=400),  # noqa: B008 - starlette-context's default
        *,
        fuse: bool = True,
    ) -> None:
        for plugin in plugins or ():
            if not isinstance(plugin, Plugin):
                raise ConfigurationError(f"Plugin {plugin} is not a valid instance")
        check_response(default_error_response, "default_error_response")
        self.plugins = plugins or ()
        self.error_response = default_error_response
        # Decided once: the user's hooks, each plugin's route, and so the path of every request.
        hooks = self._user_hooks()
        routes = [plugin._route() for plugin in self.plugins]
        self._readers: list[tuple[Any, FastReader | None, Plugin]] = []
        for plugin, route in zip(self.plugins, routes, strict=True):
            if "process_request" not in route.hooks and not isinstance(getattr(plugin, "key", None), str):
                raise ConfigurationError(f"Plugin {plugin.__class__.__name__} is missing a valid key.")
            reader = None if route.read == AWAITED else plugin._reader(route, self._core)
            self._readers.append((plugin.key if hasattr(plugin, "key") else None, reader, plugin))
        awaited = bool(hooks.intersection(("set_context", "get_request_object"))) or any(
            route.read == AWAITED or route.enrich for route in routes
        )
        # The overridden enrich_response hooks (a plugin with one makes the route awaited).
        self._enrichers = [plugin for plugin, route in zip(self.plugins, routes, strict=True) if route.enrich]
        stage = self._make_stage(routes, awaited)
        self._attach(app, stage, fuse, Route(AWAITED if awaited else ENGINE, hooks, awaits=awaited))

    def _user_hooks(self) -> frozenset[str]:
        """The middleware hooks the user's class overrides."""
        return overridden(type(self), ContextMiddlewareBase, ("set_context",))

    def _make_stage(self, routes: list[PluginRoute], awaited: bool) -> Any:
        """The core stage serving every plugin (on the awaited route, from the context the layer built)."""
        echo = [plugin.key for plugin, route in zip(self.plugins, routes, strict=True) if route.echo]
        readers: list[tuple[Any, FastReader | None]] = []
        # The request id is the last RequestIdPlugin's value (the one the context keeps); the
        # awaited route reads its header itself and takes no part in the one request id.
        request_id = -1
        if not awaited:
            readers = [(key, reader) for key, reader, _ in self._readers]
            for index, plugin in enumerate(self.plugins):
                if isinstance(plugin, RequestIdPlugin):
                    request_id = index
        return build_stage(
            self._core.ContextStage,
            readers,
            [(key, key) for key in echo],
            replace=self.replace_echo_headers,
            refuse=self._refuse_invalid,
            request_id=request_id,
            source=_awaited_context if awaited else None,
        )

    async def set_context(self, request: Request | HTTPConnection) -> dict[Any, Any]:
        """The dict stored as the request's context; override to add to it."""
        return {plugin.key: await plugin.process_request(request) for plugin in self.plugins}

    def _request_object(self, scope: Scope, receive: Receive, send: Send) -> Request | HTTPConnection:
        raise NotImplementedError  # pragma: no cover - subclasses decide

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        await response(scope, receive, send)

    def _refuse_invalid(self, scope: Scope, receive: Receive, send: Send, exc: MiddleWareValidationError) -> Any:
        return self._refuse(scope, receive, send, exc.error_response or self.error_response)

    # ----------------------------------------------------------------- the Python layer (awaited hooks)

    async def _layer(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        # ``app`` runs this middleware's stage around the inner app (other scopes pass through it).
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await app(scope, receive, send)
            return
        try:
            data, receive = await self._await_hooks(scope, receive, send)
        except MiddleWareValidationError as exc:
            await self._refuse(scope, receive, send, exc.error_response or self.error_response)
            return
        if self._enrichers:
            send = EnrichingSend(self, send)
        token = _AWAITED.set(data)
        try:
            await app(scope, receive, send)
        finally:
            _AWAITED.reset(token)

    async def _await_hooks(self, scope: Scope, receive: Receive, send: Send) -> tuple[dict[Any, Any], Receive]:
        """Await the overridden hooks with a Starlette request object."""
        request: Request | HTTPConnection | None = None
        if self.route.hooks.intersection(("set_context", "get_request_object")):
            request = self._request_object(scope, receive, send)
            returned = await self.set_context(request)
            if not isinstance(returned, dict):
                raise TypeError(f"set_context must return a dict, not {type(returned).__name__}")
            data = dict(returned)  # a copy, as starlette-context stores (an exact dict, for the stage)
        else:
            headers = scope.get("headers") or ()
            data = {}
            for key, read, plugin in self._readers:
                if read is not None:
                    data[key] = read(headers)
                    continue
                if request is None:
                    request = self._request_object(scope, receive, send)
                data[plugin.key] = await plugin.process_request(request)
        if request is not None:
            receive = replay_body(request, receive)
        return data, receive

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        """Send the error response, or refuse a websocket; the app is not called."""
        if scope["type"] == "websocket":
            if WEBSOCKET_DENIAL in (scope.get("extensions") or {}):
                await response(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        await self._send_error(scope, receive, send, response)


class EnrichingSend:
    """A ``send`` that runs the plugins' ``enrich_response`` hooks once, on the response start."""

    __slots__ = ("done", "middleware", "send")

    def __init__(self, middleware: ContextMiddlewareBase, send: Send) -> None:
        self.middleware = middleware
        self.send = send
        self.done = False

    async def __call__(self, message: Message) -> None:
        if not self.done and message.get("type") in START_TYPES:
            self.done = True
            view = self.middleware.response_start_class(message)
            _message_headers(view)
            for plugin in self.middleware._enrichers:
                await plugin.enrich_response(view)
            message = dict(view)
        await self.send(message)


def replay_body(request: Request | HTTPConnection, receive: Receive) -> Receive:
    """If a plugin read the request body, hand the app a ``receive`` that replays it."""
    body = getattr(request, "_body", None)
    if body is None:
        return receive
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

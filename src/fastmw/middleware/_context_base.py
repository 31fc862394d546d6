"""Shared engine of ``ContextMiddleware`` and ``RawContextMiddleware``.

Pure ASGI on the fastmw core: the request's context dict is built before the
app runs, made current for the whole call (every ``send``, background tasks,
streaming bodies) and reset when the app returns.

Hot path: plugins that keep the default hooks are read from the raw scope
headers by sync readers (``Plugin._fast_reader``) and the built-in echo of the
UUID plugins is applied by a ``SendRecorder`` start callback, so a request
costs no Starlette ``Request`` and no coroutine per plugin. Anything
overridden (``set_context``, ``get_request_object``, a plugin's
``process_request``/``extract_value_from_header_by_key``/``enrich_response``)
takes the compatible path that awaits the hooks like starlette-context does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core
from fastmw.errors import ConfigurationError, MiddleWareValidationError
from fastmw.middleware._pipeline import FusableMiddleware, Refuse
from fastmw.plugins.base import FastReader, Plugin, PluginUUIDBase

__all__ = ["ContextMiddlewareBase", "ResponseStart"]

# Messages on which plugins enrich the response (once per response).
START_TYPES = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
WEBSOCKET_DENIAL = "websocket.http.response"
# RFC 6455 "policy violation": a websocket refused by a plugin.
WEBSOCKET_POLICY_VIOLATION = 1008

_context_set = core.context_set
_context_reset = core.context_reset
_context_get = core.context_get
_SendRecorder = core.SendRecorder
_message_headers = core.message_headers
_MutableHeaders = core.MutableHeaders
_header_set = core.header_set
_encode_header_value = core.encode_header_value


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

    # Running alone (the common placement) a request is one compiled coroutine around
    # the core ContextRunner; otherwise the fused engine runs (FusableMiddleware.__call__).
    __call__ = core.solo_call
    _layer = FusableMiddleware.__call__

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
        self.app = app
        for plugin in plugins or ():
            if not isinstance(plugin, Plugin):
                raise ConfigurationError(f"Plugin {plugin} is not a valid instance")
        self.plugins = plugins or ()
        self.error_response = default_error_response
        self._readers: list[tuple[Any, FastReader | None, Plugin]] = []
        for plugin in self.plugins:
            self._check_key(plugin)
            reader = plugin._fast_reader()
            self._readers.append((plugin.key if hasattr(plugin, "key") else None, reader, plugin))
        custom_setup = type(self).set_context is not ContextMiddlewareBase.set_context or self._custom_request_object()
        self._custom_setup = custom_setup
        # The fast path: every value read straight from the raw headers.
        self._fast: list[tuple[Any, FastReader]] | None = None
        if not custom_setup and all(reader is not None for _, reader, _ in self._readers):
            self._fast = [(key, reader) for key, reader, _ in self._readers if reader is not None]
        echo = [p for p in self.plugins if type(p).enrich_response is PluginUUIDBase.enrich_response]
        self._enrichers = [p for p in self.plugins if type(p).enrich_response is not Plugin.enrich_response]
        self._custom_enrich = len(echo) != len(self._enrichers)
        # (context key, encoded header name) of each built-in echo, in plugin order:
        # the UUID plugins' enrich_response done by registering the value with the
        # core SendRecorder, which applies it on the response start in C. The value
        # echoed is the one in the context when the app starts (starlette-context
        # reads it again at response time; see docs/context.md).
        self._echo = [(plugin.key, core.encode_header_name(plugin.key)) for plugin in echo]
        self._put = _SendRecorder.set_header if self.replace_echo_headers else _SendRecorder.add_header
        # As a fused stage the echo is a start step; without one nothing wraps send.
        self._wraps_send = self._starts = bool(self._echo)
        self._fuse_init(fuse)

    @staticmethod
    def _check_key(plugin: Plugin) -> None:
        """A plugin on the default ``process_request`` needs a str key: fail at startup."""
        if type(plugin).process_request is Plugin.process_request and not isinstance(getattr(plugin, "key", None), str):
            raise ConfigurationError(f"Plugin {plugin.__class__.__name__} is missing a valid key.")

    def _custom_request_object(self) -> bool:
        return False

    async def set_context(self, request: Request | HTTPConnection) -> dict[Any, Any]:
        """The dict stored as the request's context; override to add to it."""
        return {plugin.key: await plugin.process_request(request) for plugin in self.plugins}

    def _request_object(self, scope: Scope, receive: Receive, send: Send) -> Request | HTTPConnection:
        raise NotImplementedError  # pragma: no cover - subclasses decide

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        await response(scope, receive, send)

    # ----------------------------------------------------------------- fused stage steps

    def _fusable(self) -> bool:
        # Awaited hooks (custom set_context, request objects, enrich_response) need a layer.
        return self._fast is not None and not self._custom_enrich

    def _stage_enter(self, scope: Scope, recorder: Any, receiver: Any) -> Any:
        headers = scope.get("headers") or ()
        data = {}
        try:
            for key, read in self._fast:  # type: ignore[union-attr]
                data[key] = read(headers)
        except MiddleWareValidationError as exc:
            return Refuse(partial(self._refuse_app, exc.error_response or self.error_response))
        echo: list[tuple[bytes, bytes]] | None = None
        if self._echo:
            echo = []
            for key, name in self._echo:
                value = data.get(key)
                try:
                    echo.append((name, _encode_header_value(value if type(value) is str else str(value))))
                except ValueError:
                    continue
        return _context_set(data), echo

    def _solo_runner(self) -> Any:
        # _fusable() held: every value comes from a fast reader and the only
        # enrichment is the built-in echo, which the core runner applies.
        return core.ContextRunner(
            self._terminal,
            self._fast or (),
            self._echo,
            replace=self.replace_echo_headers,
            refuse=self._refuse_invalid,
        )

    def _refuse_invalid(self, scope: Scope, receive: Receive, send: Send, exc: MiddleWareValidationError) -> Any:
        return self._refuse(scope, receive, send, exc.error_response or self.error_response)

    async def _refuse_app(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        await self._refuse(scope, receive, send, response)

    def _stage_start(self, state: Any, recorder: Any, message: Message) -> None:
        headers = message["headers"]
        if self.replace_echo_headers:
            for name, raw in state[1]:
                _header_set(headers, name, raw)
        else:
            headers.extend(state[1])

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        # Like starlette-context, an exception leaves the context readable by outer handlers.
        if exc is None:
            _context_reset(state[0])

    # ----------------------------------------------------------------- per request, unfused

    async def _unfused_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        fast = self._fast
        try:
            if fast is not None:
                headers = scope.get("headers") or ()
                data = {}
                for key, read in fast:
                    data[key] = read(headers)
            else:
                data, receive = await self._build(scope, receive, send)
        except MiddleWareValidationError as exc:
            await self._refuse(scope, receive, send, exc.error_response or self.error_response)
            return
        if self._echo:
            if self._custom_enrich:
                send = EnrichingSend(self, send)
            else:
                # The built-in echo: values registered with the C recorder, no coroutine.
                recorder = _SendRecorder(send)
                send = recorder  # type: ignore[assignment]
                put = self._put
                for key, name in self._echo:
                    value = data.get(key)
                    try:
                        put(recorder, name, value if type(value) is str else str(value))
                    except ValueError:
                        continue
        elif self._custom_enrich:
            send = EnrichingSend(self, send)
        token = _context_set(data)
        await self.app(scope, receive, send)
        # Reached only when the app returns: like starlette-context, an exception
        # leaves the context readable by outer exception handlers.
        _context_reset(token)

    async def _build(self, scope: Scope, receive: Receive, send: Send) -> tuple[dict[Any, Any], Receive]:
        """The compatible path: await the overridden hooks with a Starlette request object."""
        request: Request | HTTPConnection | None = None
        if self._custom_setup:
            request = self._request_object(scope, receive, send)
            data = (await self.set_context(request)).copy()
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

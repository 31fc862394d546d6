"""The context middleware's runner (replaced by the engine)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastmw._core_py._common import CO_ITERABLE_COROUTINE, HEADER_SEND_TYPES, _type_name
from fastmw._core_py.context import context_set
from fastmw._core_py.headers import _entry, _owned_headers, encode_header_name, encode_header_value, header_set
from fastmw._core_py.readers import _pair, _ReadOnly
from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import MiddleWareValidationError


class ContextRunner(_ReadOnly):
    """Runs ``app`` with a request context built from the raw request headers.

    ``runner(scope, receive, send)`` returns a coroutine (compiled: an awaitable that
    ``asyncio`` takes as one): nothing runs until it is first stepped, so the context
    is set in the task that awaits it. On ``http`` and ``websocket`` scopes the context
    dict is ``{key: reader(headers)}`` over ``readers`` (``(key, reader)`` pairs, in
    order); a reader raising
    ``MiddleWareValidationError`` hands the request to
    ``refuse(scope, receive, send, exc)`` instead (re-raised without ``refuse``).
    For each ``(key, header name)`` of ``echo`` the context value (``str()`` of it)
    goes on the response start, appended or, with ``replace``, set; a value that
    cannot be a header value is skipped. The context is reset when the app returns
    and left set when it raises, so outer exception handlers can read it. Other
    scopes go to ``app`` untouched.
    """

    __slots__ = ("app", "echo", "readers", "refuse", "replace")
    app: Callable[[Any, Any, Any], Awaitable[Any]]
    readers: tuple[tuple[Any, Callable[[Any], Any]], ...]
    echo: tuple[tuple[Any, bytes], ...]
    replace: bool
    refuse: Callable[[Any, Any, Any, MiddleWareValidationError], Awaitable[Any]] | None

    def __init__(
        self,
        app: Callable[[Any, Any, Any], Awaitable[Any]],
        readers: Iterable[tuple[Any, Callable[[Any], Any]]],
        echo: Iterable[tuple[Any, str | bytes]] = (),
        *,
        replace: bool = False,
        refuse: Callable[[Any, Any, Any, MiddleWareValidationError], Awaitable[Any]] | None = None,
    ) -> None:
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        init = object.__setattr__
        init(self, "app", app)
        init(self, "readers", tuple(_reader_pair(pair) for pair in readers))
        init(self, "echo", tuple(_echo_pair(pair) for pair in echo))
        init(self, "replace", bool(replace))
        init(self, "refuse", refuse)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[Any]:
        # A coroutine: nothing runs (not even the readers) until it is first stepped.
        return self._run(scope, receive, send)

    async def _run(self, scope: Any, receive: Any, send: Any) -> Any:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await _awaitable(self.app(scope, receive, send))
        headers = scope.get("headers") or ()
        data: dict[Any, Any] = {}
        try:
            for key, read in self.readers:
                data[key] = read(headers)
        except MiddleWareValidationError as exc:
            if self.refuse is None:
                raise
            return await _awaitable(self.refuse(scope, receive, send, exc))
        if self.echo:
            echoed = []
            for key, name in self.echo:
                value = data.get(key)
                if value is None:
                    continue  # nothing to echo (an absent header, a key no reader fills)
                try:
                    echoed.append((name, encode_header_value(value if type(value) is str else str(value))))
                except ValueError:
                    continue
            send = HeaderSend(send, echoed, replace=self.replace)
        token = context_set(data)
        result = await _awaitable(self.app(scope, receive, send))
        # Reached only when the app returns: an exception leaves the context set.
        REQUEST_CONTEXT.reset(token)
        return result


async def solo_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    """An ASGI ``__call__`` for a middleware that may run as one core runner.

    Awaits ``self._solo(scope, receive, send)`` when ``self._solo`` is set (a
    ``ContextRunner``), ``self._layer(scope, receive, send)`` otherwise. Compiled,
    it is a coroutine without a Python frame.
    """
    runner = self._solo
    if runner is not None:
        await runner(scope, receive, send)
    else:
        await self._layer(scope, receive, send)


class HeaderSend(_ReadOnly):
    """Wraps an ASGI ``send``: puts ``headers`` on the response start, passes the rest on.

    On the first ``http.response.start``, ``websocket.accept`` or
    ``websocket.http.response.start`` the message gets a copy of its header list
    (the app's may be shared) with each ``(name, value)`` of ``headers``
    appended or, with ``replace``, set (Starlette's ``MutableHeaders`` semantics).
    A second response start raises ``RuntimeError``; nothing is buffered.
    """

    __slots__ = ("headers", "replace", "send", "started")
    send: Callable[[dict[str, Any]], Awaitable[Any]]
    headers: tuple[tuple[bytes, bytes], ...]
    replace: bool
    started: bool

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[Any]],
        headers: Iterable[tuple[str | bytes, str | bytes]],
        *,
        replace: bool = False,
    ) -> None:
        pairs = [_pair(item, "a header") for item in headers]
        init = object.__setattr__
        init(self, "send", send)
        init(self, "headers", tuple((encode_header_name(name), encode_header_value(value)) for name, value in pairs))
        init(self, "replace", bool(replace))
        init(self, "started", False)

    def __call__(self, message: dict[str, Any]) -> Awaitable[Any]:
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        kind = dict.get(message, "type")  # the item itself, as the compiled twin reads it
        if type(kind) is str and kind in HEADER_SEND_TYPES:
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            headers = _owned_headers(message)
            # A malformed entry is refused here, before anything is sent.
            for entry in headers:
                _entry(entry)
            for name, value in self.headers:
                if self.replace:
                    header_set(headers, name, value)
                else:
                    headers.append((name, value))
            object.__setattr__(self, "started", True)
        return self.send(message)


def _reader_pair(pair: Any) -> tuple[Any, Callable[[Any], Any]]:
    key, reader = _pair(pair, "a context reader entry")
    if not callable(reader):
        raise TypeError(f"context reader for {key!r} must be callable, not {_type_name(reader)}")
    return key, reader


def _echo_pair(pair: Any) -> tuple[Any, bytes]:
    key, name = _pair(pair, "an echo entry")
    return key, encode_header_name(name)


def _awaitable(value: Any) -> Any:
    """``value`` when ``await`` takes it; the same TypeError in both twins otherwise."""
    if isinstance(value, Awaitable) or getattr(getattr(value, "gi_code", None), "co_flags", 0) & CO_ITERABLE_COROUTINE:
        return value
    raise TypeError(f"the app returned {_type_name(value)}, which cannot be awaited")

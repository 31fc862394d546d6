"""Type aliases for ASGI and the typed seam between the middleware layer and the core.

The ASGI aliases are Starlette's (``starlette.types``), so an app, ``receive`` or
``send`` typed for Starlette is one for fastmw and the other way round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

__all__ = ["ASGIApp", "Message", "PathFilter", "RawHeaders", "Receive", "Scope", "Send", "Stage"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# An ASGI header list: (lowercased name, value) byte pairs.
RawHeaders = list[tuple[bytes, bytes]]


class PathFilter(Protocol):
    """Decides per request whether a stage acts (``fastmw.middleware._paths.PathFilter``)."""

    everything: bool

    def applies(self, scope: Mapping[str, Any], /) -> bool: ...


class Stage(Protocol):
    """What Python sees of a core stage (``core.Stage`` and its subclasses): its
    configuration flags, its path filter, and ``answer`` for the stages that catch.

    The per-request steps (``enter``, ``start``, ``leave``) are the engine's own: C-level
    in the compiled core, plain methods in the pure twin.
    """

    @property
    def paths(self) -> PathFilter | None: ...
    @property
    def http_only(self) -> bool: ...
    @property
    def starts(self) -> bool: ...
    @property
    def catches(self) -> bool: ...
    @property
    def wraps_receive(self) -> bool: ...
    @property
    def publishes(self) -> bool: ...
    @property
    def timed(self) -> bool: ...
    @property
    def body_limit(self) -> int: ...
    def answer(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> Awaitable[bool]:
        """Answer ``exc`` raised inside the stage (a stage that ``catches``); True when it propagates."""
        ...

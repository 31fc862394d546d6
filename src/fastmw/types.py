"""Type aliases for ASGI and the typed seam between the middleware layer and the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PathFilter(Protocol):
    """Decides per request whether a stage acts (``fastmw.middleware._paths.PathFilter``)."""

    everything: bool

    def applies(self, scope: Scope) -> bool: ...


class Stage(Protocol):
    """What the engine reads of a core stage (``core.Stage`` and its subclasses)."""

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
    def body_limit(self) -> int: ...

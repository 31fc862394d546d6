"""Body cache: a capped copy of the request body as the app reads it.

The body is never read ahead of the app (``core.ReceiveRecorder`` copies what
passes). Inner middleware, plugins, error handlers and the access log read it
through ``cached_body()`` while the request runs; the copy is dropped after.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from fastmw._impl import core
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter

DEFAULT_MAX_BYTES = 64 * 1024
# Also put in scope["state"] under this key, for code that has the scope at hand.
STATE_KEY = "fastmw.body_cache"

ReceiveRecorder = core.ReceiveRecorder

BODY_RECORDER: ContextVar[Any] = ContextVar("fastmw_body_recorder", default=None)


class CachedBody(NamedTuple):
    """The request body read so far (at most ``max_bytes``), whether it was cut, and the full size read."""

    body: bytes
    truncated: bool
    total_bytes: int


def cached_body() -> CachedBody | None:
    """The current request's cached body, or None outside a BodyCacheMiddleware."""
    recorder = BODY_RECORDER.get()
    if recorder is None:
        return None
    return CachedBody(recorder.body, recorder.body_truncated, recorder.body_bytes)


class BodyCacheMiddleware:
    """Keeps up to ``max_bytes`` of each request body as the app reads it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
    ) -> None:
        if type(max_bytes) is not int or max_bytes < 0:
            raise ConfigurationError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.app = app
        self.max_bytes = max_bytes
        self._paths = PathFilter(include_paths, exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Websocket messages are not a request body: only http is cached.
        if scope["type"] != "http" or not self._paths.applies(scope):
            await self.app(scope, receive, send)
            return
        recorder: Any = ReceiveRecorder(receive, self.max_bytes)  # type: ignore[arg-type]
        token = BODY_RECORDER.set(recorder)
        state = scope.get("state")
        if isinstance(state, dict):
            state[STATE_KEY] = recorder
        try:
            await self.app(scope, recorder, send)
        finally:
            BODY_RECORDER.reset(token)
            if isinstance(state, dict):
                state.pop(STATE_KEY, None)
            recorder.release()

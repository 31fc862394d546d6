"""Body cache: a capped copy of the request body as the app reads it.

The body is never read ahead of the app (``core.ReceiveRecorder`` copies what
passes). Inner middleware, plugins, error handlers and the access log read it
through ``cached_body()`` while the request runs; the copy is dropped after.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, NamedTuple

from starlette.types import ASGIApp, Scope

from fastmw._impl import core
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter
from fastmw.middleware._pipeline import FusableMiddleware

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


class BodyCacheMiddleware(FusableMiddleware):
    """Keeps up to ``max_bytes`` of each request body as the app reads it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        if type(max_bytes) is not int or max_bytes < 0:
            raise ConfigurationError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.app = app
        self.max_bytes = max_bytes
        self._paths = PathFilter(include_paths, exclude_paths)
        # The pipeline's one receive recorder keeps the copy.
        self._body_limit = max_bytes
        self._fuse_init(fuse)

    # ------------------------------------------------------------------ stage steps

    # Websocket messages are not a request body: only http is cached.
    _http_only = True
    _wraps_send = False
    _wraps_receive = True
    _keeps_body = True

    def _stage_enter(self, scope: Scope, recorder: Any, receiver: Any) -> Any:
        token = BODY_RECORDER.set(receiver)
        state = scope.get("state")
        if isinstance(state, dict):
            state[STATE_KEY] = receiver
            return token, state
        return token, None

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        BODY_RECORDER.reset(state[0])
        if state[1] is not None:
            state[1].pop(STATE_KEY, None)
        receiver.release()

"""Body cache: a capped copy of the request body as the app reads it.

The body is never read ahead of the app (the request's ``core.ReceiveRecorder`` copies
what passes). Inner middleware, plugins, error handlers and the access log read it
through ``cached_body()`` while the request runs; the copy is dropped after.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.types import ASGIApp

from fastmw._impl import core
from fastmw._options import build_stage
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

DEFAULT_MAX_BYTES = 64 * 1024
# Also put in scope["state"] under this key, for code that has the scope at hand.
STATE_KEY = "fastmw.body_cache"


class CachedBody(NamedTuple):
    """The request body read so far (at most ``max_bytes``), whether it was cut, and the full size read."""

    body: bytes
    truncated: bool
    total_bytes: int


def cached_body() -> CachedBody | None:
    """The current request's cached body, or None outside a BodyCacheMiddleware."""
    recorder = core.current_body()
    if recorder is None:
        return None
    return CachedBody(recorder.body, recorder.body_truncated, recorder.body_bytes)


class BodyCacheMiddleware(FusableMiddleware):
    """Keeps up to ``max_bytes`` of each request body as the app reads it (http only)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        stage = build_stage(self._core.BodyCacheStage, max_bytes, paths=PathFilter(include_paths, exclude_paths))
        self.max_bytes = max_bytes
        self._attach(app, stage, fuse)

    def _keeps_body(self) -> bool:
        return True

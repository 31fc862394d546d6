"""Response timing: ``X-Process-Time`` and/or ``Server-Timing``, plus durations for others.

Times are taken on the core's monotonic clock by the request's ``core.SendRecorder``:
from the request reaching this middleware to ``http.response.start`` (time to first
byte) and to the last body byte (total).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Scope

from fastmw._impl import core
from fastmw._options import build_stage
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

DEFAULT_HEADER = "X-Process-Time"
DEFAULT_PRECISION = 4

TimingCallback = Callable[[Scope, "float | None", float], Any]


def current_timing() -> Any:
    """The ``core.SendRecorder`` timing the current request (``t_start``, ``t_first_byte``,
    ``t_last_byte`` on ``core.monotonic``'s clock), or None outside a TimingMiddleware."""
    return core.current_timing()


def durations(recorder: Any, now: float | None = None) -> tuple[float | None, float]:
    """(time to first byte or None, total) in seconds for a finished ``recorder``."""
    start = recorder.t_start
    ttfb = recorder.t_first_byte - start if recorder.t_first_byte else None
    end = recorder.t_last_byte or (core.monotonic() if now is None else now)
    return ttfb, end - start


class TimingMiddleware(FusableMiddleware):
    """Adds timing headers to every response start; ``callback(scope, ttfb, total)``
    (seconds; ttfb None when nothing was sent) is called when the response ends."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str | None = DEFAULT_HEADER,
        precision: int = DEFAULT_PRECISION,
        server_timing: bool = True,
        callback: TimingCallback | None = None,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        stage = build_stage(
            self._core.TimingStage,
            header_name,
            precision=precision,
            server_timing=server_timing,
            callback=callback,
            paths=PathFilter(include_paths, exclude_paths),
        )
        self.header_name = header_name
        self.precision = precision
        self.server_timing = bool(server_timing)
        self.callback = callback
        self._attach(app, stage, fuse)

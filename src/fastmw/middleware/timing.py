"""Response timing: ``X-Process-Time`` and/or ``Server-Timing``, plus durations for others.

Times are taken on the core's monotonic clock by a ``core.SendRecorder``: from the
request reaching this middleware to ``http.response.start`` (time to first byte)
and to the last body byte (total).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Scope

from fastmw._impl import core
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter
from fastmw.middleware._pipeline import FusableMiddleware

DEFAULT_HEADER = "X-Process-Time"
DEFAULT_PRECISION = 4
SERVER_TIMING = b"server-timing"
SERVER_TIMING_METRIC = "app"
SERVER_TIMING_NAME = SERVER_TIMING_METRIC.encode()

logger = logging.getLogger("fastmw.timing")

header_get = core.header_get
header_set = core.header_set
monotonic = core.monotonic
SendRecorder = core.SendRecorder

TimingCallback = Callable[[Scope, "float | None", float], Any]

# The recorder of the TimingMiddleware serving the current request, so inner
# middleware (the access log) report the same start time as the headers.
TIMING_RECORDER: ContextVar[Any] = ContextVar("fastmw_timing_recorder", default=None)


def current_timing() -> Any:
    """The ``core.SendRecorder`` timing the current request (``t_start``, ``t_first_byte``,
    ``t_last_byte`` on ``core.monotonic``'s clock), or None outside a TimingMiddleware."""
    return TIMING_RECORDER.get()


def durations(recorder: Any, now: float | None = None) -> tuple[float | None, float]:
    """(time to first byte or None, total) in seconds for a finished ``recorder``."""
    start = recorder.t_start
    ttfb = recorder.t_first_byte - start if recorder.t_first_byte else None
    end = recorder.t_last_byte or (monotonic() if now is None else now)
    return ttfb, end - start


class TimingMiddleware(FusableMiddleware):
    """Adds timing headers to every response start and reports durations when it ends."""

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
        self.app = app
        if header_name is not None:
            try:
                self._key: bytes | None = core.encode_header_name(header_name)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"header_name: {exc}") from None
        else:
            self._key = None
        if type(precision) is not int or not 0 <= precision <= 9:
            raise ConfigurationError(f"precision must be an int from 0 to 9, got {precision!r}")
        if callback is not None and not callable(callback):
            raise ConfigurationError(f"callback must be callable or None, got {callback!r}")
        self.precision = precision
        self._ms_precision = max(precision - 3, 0)
        self.server_timing = bool(server_timing)
        self.callback = callback
        self._paths = PathFilter(include_paths, exclude_paths)
        # No headers to write: skip the start hook altogether.
        self._on_start_hook = self._on_start if (self._key is not None or self.server_timing) else None
        self._starts = self._on_start_hook is not None
        self._fuse_init(fuse)

    # ------------------------------------------------------------------ response-start step

    def _on_start(self, recorder: Any, message: Message) -> None:
        self._stage_start(None, recorder, message)

    # ------------------------------------------------------------------ finish step

    def _finish(self, scope: Scope, recorder: Any) -> None:
        ttfb, total = durations(recorder)
        try:
            self.callback(scope, ttfb, total)  # type: ignore[misc]
        except Exception:
            logger.exception("timing callback %r failed", self.callback)

    # ------------------------------------------------------------------ stage steps

    def _stage_enter(self, scope: Scope, recorder: Any, receiver: Any) -> Any:
        # The pipeline's one recorder times the request (it was made as the request came in).
        return TIMING_RECORDER.set(recorder)

    def _stage_start(self, state: Any, recorder: Any, message: Message) -> None:
        elapsed = monotonic() - recorder.t_start
        headers = message["headers"]
        if self._key is not None:
            header_set(headers, self._key, b"%.*f" % (self.precision, elapsed))
        if self.server_timing:
            entry = b"%s;dur=%.*f" % (SERVER_TIMING_NAME, self._ms_precision, elapsed * 1000.0)
            existing = header_get(headers, SERVER_TIMING)
            header_set(headers, SERVER_TIMING, existing + b", " + entry if existing else entry)

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        TIMING_RECORDER.reset(state)
        if self.callback is not None:
            self._finish(scope, recorder)

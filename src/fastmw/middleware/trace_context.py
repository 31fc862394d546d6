"""W3C Trace Context: the request's ``traceparent``/``tracestate`` continued, this service's span current.

Per request the engine's trace stage (``core.TraceStage``) makes one call into the kernel: a valid
``traceparent`` is continued (same trace id and flags, a new span id for this service, the
kept ``tracestate``); a missing or invalid one starts a new trace. The result is
``fastmw.trace.current()`` for the rest of the request, so logs and ``fastmw.trace.inject()``
carry its ids. All trace semantics live in the core kernel; this class only configures it.

OpenTelemetry (decided once, in ``__init__``): when ``opentelemetry`` is installed (or
``opentelemetry=True``), a valid OpenTelemetry span current when the request arrives (its
ASGI instrumentation outside fastmw) is adopted instead of the headers; and with
``update_request_header`` (default: the same decision) the request's ``traceparent`` and
``tracestate`` are rewritten in the scope (a copied header list) to name this span, so an
instrumentation inside fastmw makes its span a child of fastmw's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp

from fastmw._options import build_stage
from fastmw.errors import ConfigurationError
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

__all__ = ["TraceContextMiddleware"]


def _flag(value: object, option: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if type(value) is not bool:
        allowed = "a bool or None" if optional else "a bool"
        raise ConfigurationError(f"{option} must be {allowed}, got {value!r}")
    return value


def _otel_source(wanted: bool | None) -> Callable[[], Any] | None:
    """``current_otel_context`` when OpenTelemetry is wanted and importable, else None."""
    if wanted is False:
        return None
    try:
        from fastmw.extensions.otel import current_otel_context
    except ImportError:
        if wanted:
            raise ConfigurationError("opentelemetry=True needs the opentelemetry-api package (fastmw[otel])") from None
        return None
    return current_otel_context


class TraceContextMiddleware(FusableMiddleware):
    """Continues the caller's W3C trace (or starts one) and makes this service's span current.

    ``traceresponse`` adds a ``traceresponse`` header (Level 2) naming this span to the
    response start. ``sample_new_traces`` marks the traces this middleware starts as sampled
    (the spec's default is not sampled). ``include_paths``/``exclude_paths`` choose the paths
    traced (elsewhere ``fastmw.trace.current()`` is None). A core stage: it fuses with the
    other fastmw middlewares.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        traceresponse: bool = False,
        sample_new_traces: bool = False,
        opentelemetry: bool | None = None,
        update_request_header: bool | None = None,
        fuse: bool = True,
    ) -> None:
        self._traceresponse: bool = _flag(traceresponse, "traceresponse")
        self._sample_new: bool = _flag(sample_new_traces, "sample_new_traces")
        # Where the context comes from and what is rewritten, decided here once.
        self._adopt = _otel_source(_flag(opentelemetry, "opentelemetry", optional=True))
        rewrite = _flag(update_request_header, "update_request_header", optional=True)
        self._rewrite: bool = self._adopt is not None if rewrite is None else rewrite
        stage = build_stage(
            self._core.TraceStage,
            traceresponse=self._traceresponse,
            sample_new=self._sample_new,
            adopt=self._adopt,
            rewrite=self._rewrite,
            paths=PathFilter(include_paths, exclude_paths),
        )
        self._attach(app, stage, fuse)

    @property
    def adopts_opentelemetry(self) -> bool:
        """Whether a current OpenTelemetry span is adopted (decided at construction)."""
        return self._adopt is not None

    @property
    def updates_request_header(self) -> bool:
        """Whether the scope's traceparent/tracestate are rewritten to this span."""
        return self._rewrite

"""Request metrics: per-route latency and body-size histograms and the active-requests gauge.

Per request the core's metrics stage counts into this process's shared-memory counters
(``fastmw.metrics.MetricsStore``); ``fastmw.metrics.asgi_app()`` serves the sum over the
server's processes. No Python runs per request unless ``route_label`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Scope

from fastmw._options import build_stage, check_callable
from fastmw.errors import ConfigurationError
from fastmw.metrics import MetricsStore, default_store
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

__all__ = ["MetricsMiddleware"]

RouteLabel = Callable[[Scope], "str | None"]


class MetricsMiddleware(FusableMiddleware):
    """Counts every http request: ``http_server_request_duration_seconds`` (start to last
    byte), ``http_server_request_body_size_bytes`` and ``http_server_response_body_size_bytes``
    (bytes that passed), ``http_server_active_requests``; labelled by method, route template
    and status.

    The route template is read after the app ran from what the framework left in the scope
    (Starlette/FastAPI ``scope["route"].path``, Litestar ``scope["path_template"]``), or from
    ``route_label(scope)`` when given; a request no route matched has ``http_route`` empty
    (absent, as OpenTelemetry's exporter has it). ``exemplars``: "sampled" (the default: the
    current trace's ids on the duration bucket when the trace is sampled), "all", or None.
    ``exclude_paths``/``include_paths`` leave requests out. ``store`` defaults to
    ``fastmw.metrics.default_store()`` (made with ``duration_buckets``/``size_buckets``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        route_label: RouteLabel | None = None,
        exemplars: str | None = "sampled",
        duration_buckets: Sequence[float] | None = None,
        size_buckets: Sequence[float] | None = None,
        store: MetricsStore | None = None,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        check_callable(route_label, "route_label", optional=True)
        if store is None:
            store = default_store(duration_buckets=duration_buckets, size_buckets=size_buckets)
        elif not isinstance(store, MetricsStore):
            raise ConfigurationError(f"store must be a fastmw.metrics.MetricsStore, got {store!r}")
        elif duration_buckets is not None or size_buckets is not None:
            raise ConfigurationError("give the buckets to the MetricsStore, not with store=")
        stage = build_stage(
            self._core.MetricsStage,
            store.table_for(self._core),
            route_label=route_label,
            exemplars=exemplars,
            paths=PathFilter(include_paths, exclude_paths),
        )
        self.store = store
        self.route_label = route_label
        self.exemplars = exemplars
        self._attach(app, stage, fuse)

"""fastmw's request metrics for OpenTelemetry's SDK (the ``fastmw[otel]`` extra), without a
per-request SDK call.

The Python SDK has no metric producer (the specification's way to feed metrics counted
elsewhere into a reader) and no observable histogram, so the bridge works at the two ends
it does offer:

* ``MetricsBridge.exporter(exporter)`` wraps any ``MetricExporter`` (OTLP, console, ...): each
  export the SDK makes also carries fastmw's histograms and gauge, read from the store then;
* ``MetricsBridge.metrics_data(into)`` gives the same as SDK ``MetricsData`` (added to what a
  reader such as ``InMemoryMetricReader`` collected, when given);
* ``MetricsBridge.observe(meter_provider)`` registers ``http.server.active_requests`` as an
  observable up-down counter, for readers that only see instruments.

Names, units and attributes are OpenTelemetry's HTTP server semantic conventions; the
histograms are cumulative, summed over the server's processes as a scrape is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from fastmw import metrics
from fastmw._core_py.metrics import METRIC_METHODS
from fastmw._core_py.metrics_render import sum_files
from fastmw._metrics_files import read_file

__all__ = ["MetricsBridge"]

SCOPE = InstrumentationScope("fastmw.metrics")
# (OpenTelemetry name, description, unit) of the histograms, in the series' order.
HISTOGRAMS = (
    ("http.server.request.duration", "Duration of HTTP server requests.", "s"),
    ("http.server.request.body.size", "Size of HTTP server request bodies.", "By"),
    ("http.server.response.body.size", "Size of HTTP server response bodies.", "By"),
)


class MetricsBridge:
    """Reads ``store`` (default: ``fastmw.metrics.default_store()``) into OpenTelemetry's SDK types.

    ``whole_server=False`` (the default, as OpenTelemetry has one resource per process): this
    process's counts only, each worker exporting its own; True: the sum over the server's
    processes, as a scrape answers (then export from one process only)."""

    def __init__(
        self,
        store: metrics.MetricsStore | None = None,
        *,
        resource: Resource | None = None,
        whole_server: bool = False,
    ) -> None:
        self._store = store
        self.whole_server = bool(whole_server)
        self.resource = resource if resource is not None else Resource.create()
        self.start_time_unix_nano = time.time_ns()

    @property
    def store(self) -> metrics.MetricsStore:
        return self._store if self._store is not None else metrics.default_store()

    def metrics_data(self, into: MetricsData | None = None) -> MetricsData:
        """fastmw's metrics now, as SDK ``MetricsData`` (appended to ``into``'s when given)."""
        store = self.store
        files, active = self._read(store)
        nd, ns = len(store.duration_buckets) + 1, len(store.size_buckets) + 1
        summed = sum_files(files, nd - 1, ns - 1)
        now = time.time_ns()
        start = self.start_time_unix_nano
        found: list[Metric] = []
        slices = (
            (0, nd, store.duration_buckets),
            (nd, nd + ns, store.size_buckets),
            (nd + ns, nd + 2 * ns, store.size_buckets),
        )
        for position, (name, description, unit) in enumerate(HISTOGRAMS):
            first, last, bounds = slices[position]
            points = []
            for (route, method, status), series in sorted(summed.items()):
                counts = series.counts[first:last]
                attributes: dict[str, Any] = {"http.request.method": METRIC_METHODS[method]}
                if status:
                    attributes["http.response.status_code"] = status
                if route:
                    attributes["http.route"] = route.decode("utf-8", "surrogatepass")
                points.append(
                    HistogramDataPoint(
                        attributes=attributes,
                        start_time_unix_nano=start,
                        time_unix_nano=now,
                        count=sum(counts),
                        sum=series.sums[position],
                        bucket_counts=counts,
                        explicit_bounds=list(bounds),
                        # Not kept per series: NaN, as the SDK reports an unrecorded min/max.
                        min=float("nan"),
                        max=float("nan"),
                    )
                )
            data = Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
            found.append(Metric(name=name, description=description, unit=unit, data=data))
        gauge = [
            NumberDataPoint(
                attributes={"http.request.method": METRIC_METHODS[method]},
                start_time_unix_nano=start,
                time_unix_nano=now,
                value=value,
            )
            for method, value in enumerate(active)
            if value
        ]
        active_sum = Sum(
            data_points=gauge, aggregation_temporality=AggregationTemporality.CUMULATIVE, is_monotonic=False
        )
        found.append(
            Metric(
                name="http.server.active_requests",
                description="Number of active HTTP server requests.",
                unit="{request}",
                data=active_sum,
            )
        )
        ours = ResourceMetrics(
            resource=self.resource,
            scope_metrics=[ScopeMetrics(scope=SCOPE, metrics=found, schema_url="")],
            schema_url="",
        )
        earlier = list(into.resource_metrics) if into is not None else []
        return MetricsData(resource_metrics=[*earlier, ours])

    def _read(self, store: metrics.MetricsStore) -> tuple[list[bytes], list[int]]:
        """The counters files to report and the active requests per method."""
        if self.whole_server:
            files, active, _, _ = store.collect()
            return files, active
        path = store.path
        snapshot = None if path is None else read_file(path)
        if snapshot is None:
            return [], [0] * len(METRIC_METHODS)
        return [snapshot.data], list(snapshot.counters[: len(METRIC_METHODS)])

    def exporter(self, exporter: MetricExporter) -> MetricExporter:
        """``exporter``, each of whose exports also carries fastmw's metrics."""
        return _BridgedExporter(self, exporter)

    def observe(self, meter_provider: MeterProvider) -> None:
        """Register ``http.server.active_requests`` (an observable up-down counter read from the store)."""
        meter = meter_provider.get_meter("fastmw.metrics")

        def active(options: CallbackOptions) -> Iterable[Observation]:
            _, counts = self._read(self.store)
            return [
                Observation(value, {"http.request.method": METRIC_METHODS[method]})
                for method, value in enumerate(counts)
                if value
            ]

        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )


class _BridgedExporter(MetricExporter):
    def __init__(self, bridge: MetricsBridge, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._bridge = bridge
        self._inner = inner

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return self._inner.export(self._bridge.metrics_data(metrics_data), timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

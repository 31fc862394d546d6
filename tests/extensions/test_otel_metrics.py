"""The metrics bridge to OpenTelemetry's SDK: the same counts as a scrape, no per-request SDK call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from fastmw import metrics
from fastmw.extensions.otel_metrics import MetricsBridge


def points(data: MetricsData, name: str) -> dict[tuple[Any, ...], Any]:
    found = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        found[tuple(sorted((point.attributes or {}).items()))] = point
    return found


@pytest.fixture
def store(tmp_path: Path) -> metrics.MetricsStore:
    store = metrics.MetricsStore(directory=tmp_path)
    store.table.record("GET", "/items/{id}", 200, 0.003, 0, 120)
    store.table.record("GET", "/items/{id}", 200, 0.2, 10, 80)
    store.table.record("POST", None, 404, 0.02)
    return store


def test_in_memory_reader_data_gets_the_histograms(store: metrics.MetricsStore) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("app").create_counter("app.jobs").add(3)
    bridge = MetricsBridge(store, whole_server=True)
    bridge.observe(provider)
    counters = store.open().cast("q")
    counters[2] = 4  # four GETs in progress
    data = bridge.metrics_data(reader.get_metrics_data())
    assert points(data, "app.jobs")[()].value == 3  # what the reader had is kept
    active = points(data, "http.server.active_requests")
    assert {key: point.value for key, point in active.items()} == {(("http.request.method", "GET"),): 4}
    durations = points(data, "http.server.request.duration")
    item = durations[
        (("http.request.method", "GET"), ("http.response.status_code", 200), ("http.route", "/items/{id}"))
    ]
    assert item.count == 2 and item.sum == pytest.approx(0.203)
    assert list(item.explicit_bounds) == list(metrics.DURATION_BUCKETS)
    assert item.bucket_counts[0] == 1 and sum(item.bucket_counts) == 2
    unmatched = durations[(("http.request.method", "POST"), ("http.response.status_code", 404))]
    assert unmatched.count == 1
    sizes = points(data, "http.server.response.body.size")
    assert (
        sizes[(("http.request.method", "GET"), ("http.response.status_code", 200), ("http.route", "/items/{id}"))].sum
        == 200
    )
    counters[2] = 0


def test_exports_carry_fastmw_s_metrics(store: metrics.MetricsStore) -> None:
    exported: list[MetricsData] = []

    class Collecting(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            exported.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    reader = PeriodicExportingMetricReader(
        MetricsBridge(store).exporter(Collecting()), export_interval_millis=3_600_000
    )
    # This process's own counts (the default): the store's file is this process's.
    provider = MeterProvider(metric_readers=[reader])
    # The SDK exports nothing when it collected nothing of its own: one app instrument.
    provider.get_meter("app").create_counter("app.jobs").add(1)
    provider.force_flush()
    store.table.record("GET", "/items/{id}", 200, 0.5)
    provider.force_flush()
    provider.shutdown()
    counts = [
        points(data, "http.server.request.duration")[
            (("http.request.method", "GET"), ("http.response.status_code", 200), ("http.route", "/items/{id}"))
        ].count
        for data in exported[:2]
    ]
    assert counts == [2, 3]  # cumulative, read at each export

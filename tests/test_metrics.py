"""The metrics store and exposition (``fastmw.metrics``): files per process, sums, formats."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from fastmw import _metrics_files as files
from fastmw import metrics
from fastmw._impl import core
from fastmw.errors import ConfigurationError
from tests.helpers import Recorder, call_app, feeder, http_scope, run

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
OPENMETRICS = (b"accept", b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4")


def samples(text: str, openmetrics: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample
        for family in parse(text)
        for sample in family.samples
    }


def value(found: dict[Any, Any], name: str, **labels: str) -> float:
    return float(found[(name, tuple(sorted(labels.items())))].value)


def scrape(store: metrics.MetricsStore, *headers: tuple[bytes, bytes], method: str = "GET") -> Recorder:
    return run(call_app(metrics.asgi_app(store), http_scope("/metrics", method=method, headers=headers)))


@pytest.fixture
def store(tmp_path: Path) -> metrics.MetricsStore:
    return metrics.MetricsStore(directory=tmp_path / "server")


def test_exposition_sums_in_both_formats(store: metrics.MetricsStore) -> None:
    table = store.table
    table.record("GET", "/items/{id}", 200, 0.003, 0, 120, TRACE, SPAN, 1700000000.5)
    table.record("GET", "/items/{id}", 200, 0.2, 10, 80)
    table.record("POST", None, 404, 0.02)
    found = samples(scrape(store).body.decode())
    labels = {"http_request_method": "GET", "http_response_status_code": "200", "http_route": "/items/{id}"}
    assert value(found, "http_server_request_duration_seconds_count", **labels) == 2
    assert value(found, "http_server_request_duration_seconds_sum", **labels) == pytest.approx(0.203)
    assert value(found, "http_server_request_duration_seconds_bucket", le="0.005", **labels) == 1
    assert value(found, "http_server_request_duration_seconds_bucket", le="0.25", **labels) == 2
    assert value(found, "http_server_request_duration_seconds_bucket", le="+Inf", **labels) == 2
    assert value(found, "http_server_response_body_size_bytes_sum", **labels) == 200
    assert value(found, "http_server_request_body_size_bytes_bucket", le="10.0", **labels) == 2
    # The unmatched route: no http_route label, as OpenTelemetry's exporter has it.
    unmatched = {"http_request_method": "POST", "http_response_status_code": "404"}
    assert value(found, "http_server_request_duration_seconds_count", **unmatched) == 1
    assert value(found, "http_server_active_requests", http_request_method="GET") == 0
    assert value(found, "fastmw_metrics_dropped_requests_total") == 0

    recorder = scrape(store, OPENMETRICS)
    assert recorder.header(b"content-type") == metrics.CONTENT_TYPE_OPENMETRICS
    text = recorder.body.decode()
    assert text.endswith("# EOF\n")
    found = samples(text, openmetrics=True)
    bucket = found[("http_server_request_duration_seconds_bucket", tuple(sorted({**labels, "le": "0.005"}.items())))]
    assert bucket.value == 1
    assert bucket.exemplar.labels == {"trace_id": TRACE, "span_id": SPAN}
    assert bucket.exemplar.value == pytest.approx(0.003) and float(bucket.exemplar.timestamp) == 1700000000.5
    assert value(found, "http_server_request_duration_seconds_count", **labels) == 2


def test_asgi_app_answers(store: metrics.MetricsStore) -> None:
    recorder = scrape(store)
    assert recorder.status == 200 and recorder.header(b"content-type") == metrics.CONTENT_TYPE_TEXT
    # Streamed: no Content-Length (the server sends it chunked); HEAD gets the same headers.
    assert recorder.header(b"content-length") is None
    head = scrape(store, method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers == recorder.headers
    post = scrape(store, method="POST")
    assert post.status == 405 and post.header(b"allow") == b"GET, HEAD"
    refused = scrape(store, (b"accept", b"application/openmetrics-text; q=0"))
    assert refused.header(b"content-type") == metrics.CONTENT_TYPE_TEXT


def test_a_large_scrape_is_streamed_in_chunks(store: metrics.MetricsStore) -> None:
    for route in range(120):
        store.table.record("GET", f"/r{route}/{{id}}", 404, 0.01, 1, 2)
    for headers, openmetrics in (((), False), ((OPENMETRICS,), True)):
        recorder = scrape(store, *headers)
        bodies = [m for m in recorder.messages if m["type"] == "http.response.body"]
        assert len(bodies) > 10 and [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
        assert all(len(m["body"]) < 2 * core.CHUNK_SIZE for m in bodies)
        text = recorder.body.decode()
        assert text.endswith("# EOF\n") == openmetrics and text == store.exposition(openmetrics).decode()
        found = samples(text, openmetrics)
        for route in (0, 119):
            labels = {
                "http_request_method": "GET",
                "http_response_status_code": "404",
                "http_route": f"/r{route}/{{id}}",
            }
            assert value(found, "http_server_response_body_size_bytes_count", **labels) == 1
        assert value(found, "http_server_active_requests", http_request_method="GET") == 0


class KeptChunks(metrics.MetricsStore):
    """A store that keeps the last renderer it handed out."""

    kept: Any = None

    def exposition_chunks(self, openmetrics: bool = False) -> tuple[Any, bytes]:
        histograms, rest = super().exposition_chunks(openmetrics)
        self.kept = histograms
        return histograms, rest


def test_a_scrape_stopped_midway_frees_its_renderer(tmp_path: Path) -> None:
    store = KeptChunks(directory=tmp_path / "server")
    for route in range(300):
        store.table.record("GET", f"/r{route}", 200, 0.01)
    sent: list[Any] = []

    async def gone(message: Any) -> None:
        sent.append(message)
        if len(sent) == 3:
            raise OSError("client went away")

    with pytest.raises(OSError) as failed:
        run(metrics.asgi_app(store)(http_scope("/metrics"), feeder([]), gone))
    # Closed while the traceback (which holds the app's frame) is still alive.
    assert failed.value.__traceback__ is not None and list(store.kept) == []

    async def cancelled() -> None:
        blocked = asyncio.Event()

        async def stuck(message: Any) -> None:
            if message["type"] == "http.response.body":
                await blocked.wait()

        task = asyncio.ensure_future(metrics.asgi_app(store)(http_scope("/metrics"), feeder([]), stuck))
        await asyncio.sleep(0)
        assert next(store.kept)  # the scrape is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert list(store.kept) == []

    run(cancelled())


def test_route_labels_are_escaped(store: metrics.MetricsStore) -> None:
    store.table.record("GET", 'a"b\\c\nd', 200, 0.1)
    found = samples(scrape(store).body.decode())
    labels = {"http_request_method": "GET", "http_response_status_code": "200", "http_route": 'a"b\\c\nd'}
    assert value(found, "http_server_request_duration_seconds_count", **labels) == 1


def _child(directory: str, requests: int, active: int) -> None:
    store = metrics.MetricsStore(directory=directory)
    for _ in range(requests):
        store.table.record("GET", "/child", 200, 0.01)
    counters = store.open().cast("q")
    counters[2] = active  # an active request the dead process never finished


def test_processes_add_up_and_the_dead_count(store: metrics.MetricsStore) -> None:
    store.table.record("GET", "/child", 200, 0.01)
    context = multiprocessing.get_context("spawn")
    for requests in (3, 4):
        process = context.Process(target=_child, args=(str(store.directory), requests, 7))
        process.start()
        process.join(60)
        assert process.exitcode == 0
    found = samples(scrape(store).body.decode())
    labels = {"http_request_method": "GET", "http_response_status_code": "200", "http_route": "/child"}
    assert value(found, "http_server_request_duration_seconds_count", **labels) == 8
    # The dead processes' active requests are not active any more.
    assert value(found, "http_server_active_requests", http_request_method="GET") == 0
    assert len(list(store.directory.glob("*.fmw"))) == 3


def test_a_forked_child_gets_its_own_file(store: metrics.MetricsStore) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    store.table.record("GET", "/fork", 200, 0.01)
    parent_file = store.path
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store.table.record("GET", "/fork", 200, 0.01)
            os._exit(0 if store.path != parent_file else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    found = samples(scrape(store).body.decode())
    labels = {"http_request_method": "GET", "http_response_status_code": "200", "http_route": "/fork"}
    assert value(found, "http_server_request_duration_seconds_count", **labels) == 2


def test_unreadable_and_foreign_files_are_reported(store: metrics.MetricsStore, tmp_path: Path) -> None:
    store.table.record("GET", "/a", 200, 0.1)
    (store.directory / "1-1.fmw").write_bytes(b"not a counters file")
    other = metrics.MetricsStore(directory=store.directory, duration_buckets=(1.0, 2.0))
    other.table.record("GET", "/a", 200, 0.1)  # another layout: not added up
    found = samples(scrape(store).body.decode())
    assert value(found, "fastmw_metrics_unread_files") == 2


def test_many_series_grow_the_file(store: metrics.MetricsStore) -> None:
    for route in range(300):
        for status in (200, 500):
            store.table.record("PUT", f"/r/{route}/" + "x" * route, status, 0.1)
    found = samples(scrape(store).body.decode())
    total = sum(
        sample.value for (name, _), sample in found.items() if name == "http_server_request_duration_seconds_count"
    )
    assert total == 600
    assert store.path is not None and store.path.stat().st_size > files.FIRST_CHUNK


def test_stale_server_directories_are_removed(tmp_path: Path) -> None:
    base = tmp_path / "base"
    dead = base / "999999999-12345"
    mine = base / f"{os.getpid()}-{files.process_start(os.getpid())}"
    for directory in (dead, mine, base / "not-a-server"):
        directory.mkdir(parents=True)
    files.remove_stale(base, keep=base / "other")
    assert not dead.exists() and mine.exists() and (base / "not-a-server").exists()


def _report_master(queue: Any) -> None:
    queue.put((files.master_pid(), str(files.server_directory())))


def test_workers_spawned_by_a_server_share_its_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(files.ENV_DIRECTORY, raising=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_report_master, args=(queue,))
    process.start()
    master, directory = queue.get(timeout=60)
    process.join(60)
    assert master == os.getpid()
    assert directory == str(files.base_directory() / f"{os.getpid()}-{files.process_start(os.getpid())}")
    monkeypatch.setenv(files.ENV_DIRECTORY, "/somewhere")
    assert files.server_directory() == Path("/somewhere")


def test_default_store_keeps_one_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_default", None)
    first = metrics.default_store()
    assert metrics.default_store(duration_buckets=metrics.DURATION_BUCKETS) is first
    with pytest.raises(ConfigurationError, match="duration_buckets"):
        metrics.default_store(duration_buckets=(1.0,))
    with pytest.raises(ConfigurationError, match="size_buckets must"):
        metrics.MetricsStore(size_buckets=())

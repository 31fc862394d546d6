"""Request metrics: the multi-process store and the exposition (``asgi_app()``).

The metrics stage (``MetricsMiddleware``, ``fastmw.stack(app, metrics=True)``) counts each
request into memory-mapped counters, one file per process; ``asgi_app()`` answers a
scrape with the sum over every process of the server, in the Prometheus text format
0.0.4, or OpenMetrics 1.0 (with trace exemplars) when the scraper asks for it. Names and
labels are those OpenTelemetry's Prometheus exporter gives its HTTP server metrics.
See docs/metrics.md.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from fastmw import _metrics_files as files
from fastmw._impl import core
from fastmw._metrics_text import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, render, wants_openmetrics
from fastmw.errors import ConfigurationError
from fastmw.types import Receive, Scope, Send

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "DURATION_BUCKETS",
    "SIZE_BUCKETS",
    "UNMATCHED_ROUTE",
    "MetricsApp",
    "MetricsStore",
    "asgi_app",
    "default_store",
]

DURATION_BUCKETS: tuple[float, ...] = tuple(core.DURATION_BUCKETS)
SIZE_BUCKETS: tuple[float, ...] = tuple(core.SIZE_BUCKETS)
UNMATCHED_ROUTE: str = core.UNMATCHED_ROUTE
OVERFLOW_ROUTE: str = core.OVERFLOW_ROUTE


class MetricsStore:
    """This process's request counters and the reader of its server's.

    ``directory`` (default: ``FASTMW_METRICS_DIR``, else the server's own directory, see
    ``server_directory()``) holds one counters file per process; this process's is made
    on its first request. ``exposition()`` reads them all.
    """

    def __init__(
        self,
        *,
        duration_buckets: Iterable[float] = DURATION_BUCKETS,
        size_buckets: Iterable[float] = SIZE_BUCKETS,
        max_routes: int = core.DEFAULT_MAX_ROUTES,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        try:
            self.table = core.MetricsTable(duration_buckets, size_buckets, self, max_routes=max_routes)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        # The table of each core twin a middleware runs on (they share this process's file).
        self._tables: dict[str, Any] = {core.__name__: self.table}
        self._configured = None if directory is None else Path(directory)
        self._file: files.WorkerFile | None = None
        self._lock = threading.Lock()
        _STORES.add(self)

    def table_for(self, twin: ModuleType) -> Any:
        """This store's counters table for a stage of the core ``twin`` (``fastmw._core`` or
        ``fastmw._core_py``); each twin's table writes its own series into the same file."""
        table = self._tables.get(twin.__name__)
        if table is None:
            table = self._tables[twin.__name__] = twin.MetricsTable(
                self.duration_buckets, self.size_buckets, self, max_routes=self.table.max_routes
            )
        return table

    @property
    def duration_buckets(self) -> tuple[float, ...]:
        return tuple(self.table.duration_buckets)

    @property
    def size_buckets(self) -> tuple[float, ...]:
        return tuple(self.table.size_buckets)

    @property
    def directory(self) -> Path:
        """Where this server's counters files are."""
        return self._configured if self._configured is not None else files.server_directory()

    @property
    def path(self) -> Path | None:
        """This process's counters file (None before its first request)."""
        return None if self._file is None else self._file.path

    # ------------------------------------------------------------------ the core table's provider

    def open(self) -> memoryview:
        """The counter words of this process's file (made now if needed)."""
        return self._worker().counters()

    def allocate(self, method: int, route: str, status: int) -> memoryview:
        """A new series' counters in this process's file."""
        return self._worker().series(method, route, status, self.table.series_words)

    def _worker(self) -> files.WorkerFile:
        with self._lock:
            if self._file is None:
                directory = self.directory
                if self._configured is None and not os.environ.get(files.ENV_DIRECTORY, "").strip():
                    files.remove_stale(directory.parent, directory)
                self._file = files.WorkerFile(directory, self.duration_buckets, self.size_buckets)
            return self._file

    def _forked(self) -> None:
        # The child must not write into its parent's file: it gets one of its own.
        for table in self._tables.values():
            table.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def collect(self) -> tuple[list[bytes], list[int], int, int]:
        """(the counters files of the server's processes that share this store's layout, active
        requests per method of the live ones, requests dropped, files not read)."""
        snapshots, unread = files.read_directory(self.directory)
        active = [0] * len(core.METRIC_METHODS)
        dropped = sum(table.dropped for table in self._tables.values())
        kept = []
        for snapshot in snapshots:
            if snapshot.duration_bounds != self.duration_buckets or snapshot.size_bounds != self.size_buckets:
                unread += 1
                continue
            if snapshot.live:
                active = [a + b for a, b in zip(active, snapshot.counters[: len(active)], strict=True)]
            dropped += snapshot.counters[-1]
            kept.append(snapshot.data)
        return kept, active, dropped, unread

    def exposition(self, openmetrics: bool = False) -> bytes:
        """The server's metrics as Prometheus text 0.0.4, or OpenMetrics 1.0 with exemplars."""
        histograms, rest = self.exposition_chunks(openmetrics)
        return b"".join([*histograms, rest])

    def exposition_chunks(self, openmetrics: bool = False) -> tuple[core.HistogramChunks, bytes]:
        """``exposition()`` as ``asgi_app()`` sends it: the histograms, an iterator of chunks
        of about ``core.CHUNK_SIZE`` bytes (``close()`` it to stop early), then the rest."""
        data, active, dropped, unread = self.collect()
        return render(data, active, dropped, unread, self.duration_buckets, self.size_buckets, openmetrics)


_STORES: weakref.WeakSet[MetricsStore] = weakref.WeakSet()
_default: MetricsStore | None = None


def _after_fork() -> None:
    for store in list(_STORES):
        store._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def default_store(
    *,
    duration_buckets: Sequence[float] | None = None,
    size_buckets: Sequence[float] | None = None,
) -> MetricsStore:
    """The process's store, made on first use (with these buckets, or the defaults). Asking
    for other buckets than it has is a ConfigurationError: one server, one layout."""
    global _default
    if _default is None:
        _default = MetricsStore(
            duration_buckets=DURATION_BUCKETS if duration_buckets is None else duration_buckets,
            size_buckets=SIZE_BUCKETS if size_buckets is None else size_buckets,
        )
        return _default
    for name, wanted, have in (
        ("duration_buckets", duration_buckets, _default.duration_buckets),
        ("size_buckets", size_buckets, _default.size_buckets),
    ):
        if wanted is not None and tuple(float(v) for v in wanted) != have:
            raise ConfigurationError(f"{name} {tuple(wanted)!r} differ from the metrics store's {have!r}")
    return _default


class MetricsApp:
    """The ASGI app ``asgi_app()`` returns (an instance, so Starlette's ``Route`` and ``mount``
    treat it as an ASGI app, not as a request handler)."""

    def __init__(self, store: MetricsStore | None = None) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _answer(send, 405, b"text/plain; charset=utf-8", b"Method Not Allowed\n", [(b"allow", b"GET, HEAD")])
            return
        accept = b", ".join(value for name, value in scope.get("headers") or () if name.lower() == b"accept")
        openmetrics = wants_openmetrics(accept)
        # No Content-Length: the body is streamed as it is rendered (the server sends it chunked).
        content_type = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}
        if scope.get("method") == "HEAD":
            # The headers a GET gets, and nothing rendered.
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        histograms, rest = (self.store or default_store()).exposition_chunks(openmetrics)
        try:
            await send(start)
            for chunk in histograms:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": rest})
        finally:
            # A client gone or a task cancelled mid-scrape: the renderer's memory goes now,
            # not when the exception's traceback (which holds this frame) is dropped.
            histograms.close()


def asgi_app(store: MetricsStore | None = None) -> MetricsApp:
    """An ASGI app answering a scrape (mount it at ``/metrics``) with ``store``'s server (default:
    ``default_store()``): Prometheus text 0.0.4, or OpenMetrics 1.0 when the request's Accept
    asks for ``application/openmetrics-text``."""
    return MetricsApp(store)


async def _answer(send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

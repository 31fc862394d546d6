"""The metrics stage: per request, counts into per-series counters in shared memory.

A ``MetricsTable`` maps a series (method, route, status) to its counters, memory that
its ``provider`` hands out (``fastmw.metrics``: a memory-mapped file per process). The
``MetricsStage`` records each request into it when the request ends. Series layout, in
8-byte words (``series_words``): the duration sum (double), the request and response
body byte sums, the duration buckets, the request and response size buckets (each
non-cumulative, the last one +Inf), then one exemplar per duration bucket (trace id and
span id as hex, the value, the wall time).
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from fastmw._core_py._common import _type_name
from fastmw._core_py.access import access_status
from fastmw._core_py.engine import Stage, _published_trace
from fastmw._core_py.ids import monotonic
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder

# OpenTelemetry's known HTTP methods (index = position); anything else is _OTHER.
METRIC_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "_OTHER")
OTHER_METHOD = 9
# OpenTelemetry's default buckets: http.server.request.duration (seconds), other histograms.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SIZE_BUCKETS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
# The http_route of a request no route matched, and of routes past ``max_routes``.
UNMATCHED_ROUTE = ""
OVERFLOW_ROUTE = "_OTHER"
DEFAULT_MAX_ROUTES = 2000
# The stage reads the label of this many route objects once each; of later ones, every time.
ROUTE_CACHE_LIMIT = 1024
MAX_BUCKETS = 64
# ``provider.open()``'s words: the active requests per method, then the requests dropped.
COUNTER_WORDS = len(METRIC_METHODS) + 1
DROPPED_WORD = len(METRIC_METHODS)
# Words before the buckets; words per exemplar (trace id 4, span id 2, value, time).
SERIES_HEAD = 3
EXEMPLAR_WORDS = 8
EXEMPLAR_MODES = ("sampled", "all", None)
# A status outside 0-999 (which no server sends) is counted as 0.
MAX_STATUS = 999

_metrics_logger = logging.getLogger("fastmw.metrics")

Provider = Any


def series_words(duration_buckets: int, size_buckets: int) -> int:
    """Words (8 bytes) of one series with that many finite bucket bounds."""
    return SERIES_HEAD + (duration_buckets + 1) * (1 + EXEMPLAR_WORDS) + 2 * (size_buckets + 1)


def method_index(method: object) -> int:
    """The index of ``method`` in ``METRIC_METHODS`` (case-sensitive; 9 for anything else)."""
    if type(method) is str:
        try:
            return METRIC_METHODS.index(method, 0, OTHER_METHOD)
        except ValueError:
            pass
    return OTHER_METHOD


def _bounds(values: Iterable[float], name: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, not {_type_name(values)}")
    result: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must hold numbers, not {_type_name(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if result and value <= result[-1]:
            raise ValueError(f"{name} must be strictly increasing, got {value!r} after {result[-1]!r}")
        result.append(float(value))
    if not 1 <= len(result) <= MAX_BUCKETS:
        raise ValueError(f"{name} must have 1 to {MAX_BUCKETS} bounds, got {len(result)}")
    return tuple(result)


class _Series:
    """One series' counters: views of the provider's memory."""

    __slots__ = ("raw", "real", "words")

    def __init__(self, memory: Any, size: int) -> None:
        raw = memoryview(memory)
        if raw.readonly or not raw.c_contiguous or raw.nbytes != size * 8:
            raise ValueError(f"the provider must give {size * 8} writable bytes, got {raw.nbytes}")
        self.raw = raw.cast("B")
        self.words = self.raw.cast("Q")
        self.real = self.raw.cast("d")


class MetricsTable:
    """The counters of one process's series, in memory from ``provider``: ``provider.open()``
    gives the active-requests words (one per method), ``provider.allocate(method, route,
    status)`` a new series' words (zeroed). Route labels beyond ``max_routes`` count as
    ``OVERFLOW_ROUTE``. ``clear()`` forgets the memory (a forked child gets its own).
    ``dropped``: requests that could not be counted here (no memory for them)."""

    def __init__(
        self,
        duration_buckets: Iterable[float],
        size_buckets: Iterable[float],
        provider: Provider,
        *,
        max_routes: int = DEFAULT_MAX_ROUTES,
    ) -> None:
        self.duration_buckets = _bounds(duration_buckets, "duration_buckets")
        self.size_buckets = _bounds(size_buckets, "size_buckets")
        for name in ("open", "allocate"):
            if not callable(getattr(provider, name, None)):
                raise TypeError(f"provider must have open() and allocate(), not {_type_name(provider)}")
        if type(max_routes) is not int or max_routes < 1:
            raise ValueError(f"max_routes must be a positive int, got {max_routes!r}")
        self.provider = provider
        self.max_routes = max_routes
        self.series_words = series_words(len(self.duration_buckets), len(self.size_buckets))
        self.dropped = 0
        self._labels: dict[str, int] = {UNMATCHED_ROUTE: 0}
        self._names: list[str] = [UNMATCHED_ROUTE]
        self._series: dict[int, _Series] = {}
        self._active: Any = None

    @property
    def routes(self) -> int:
        """How many route labels the table knows (the unmatched one included)."""
        return len(self._names)

    def clear(self) -> None:
        """Forget the provider's memory: the next request asks it again."""
        self._series = {}
        self._active = None

    def record(
        self,
        method: str,
        route: str | None,
        status: int,
        duration: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
        trace_id: str | None = None,
        span_id: str | None = None,
        wall_time: float = 0.0,
    ) -> None:
        """Count one request (what the stage does per request), with an exemplar when ``trace_id`` is given."""
        if route is not None and not isinstance(route, str):
            raise TypeError(f"route must be a str or None, not {_type_name(route)}")
        if type(status) is not int:
            raise TypeError(f"status must be an int, not {_type_name(status)}")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool):
            raise TypeError(f"duration must be a number, not {_type_name(duration)}")
        for name, value in (("request_bytes", request_bytes), ("response_bytes", response_bytes)):
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        exemplar = None
        if trace_id is not None:
            exemplar = (_hex(trace_id, 32, "trace_id"), _hex(span_id, 16, "span_id"), float(wall_time))
        rid = self._label_id(UNMATCHED_ROUTE if route is None else route)
        self._count(method_index(method), rid, status, float(duration), request_bytes, response_bytes, exemplar)

    # ------------------------------------------------------------------ the stage's steps

    def _active_words(self) -> Any:
        if self._active is None:
            memory = memoryview(self.provider.open())
            if memory.readonly or not memory.c_contiguous or memory.nbytes != COUNTER_WORDS * 8:
                raise ValueError(
                    f"the provider must give {COUNTER_WORDS * 8} writable bytes from open(), got {memory.nbytes}"
                )
            self._active = memory.cast("B").cast("q")
        return self._active

    def _drop(self) -> None:
        """Count a request that could not be counted (in shared memory when there is some)."""
        if self._active is not None:
            self._active[DROPPED_WORD] += 1
        else:
            self.dropped += 1

    def _label_id(self, label: str) -> int:
        rid = self._labels.get(label)
        if rid is None:
            if len(self._names) >= self.max_routes:
                label = OVERFLOW_ROUTE
                rid = self._labels.get(label)
            if rid is None:
                rid = self._labels[label] = len(self._names)
                self._names.append(label)
        return rid

    def _count(
        self,
        method: int,
        rid: int,
        status: int,
        duration: float,
        request_bytes: int,
        response_bytes: int,
        exemplar: tuple[bytes, bytes, float] | None,
    ) -> None:
        # The int's own value, as the compiled twin reads it: not what a subclass's comparisons say.
        status = int.__index__(status)
        if not 0 <= status <= MAX_STATUS:
            status = 0
        key = (rid << 16) | (method << 10) | status
        series = self._series.get(key)
        if series is None:
            memory = self.provider.allocate(method, self._names[rid], status)
            series = self._series[key] = _Series(memory, self.series_words)
        d = len(self.duration_buckets) + 1
        s = len(self.size_buckets) + 1
        words = series.words
        series.real[0] += duration
        words[1] += request_bytes
        words[2] += response_bytes
        bucket = bisect_left(self.duration_buckets, duration)
        words[SERIES_HEAD + bucket] += 1
        words[SERIES_HEAD + d + bisect_left(self.size_buckets, request_bytes)] += 1
        words[SERIES_HEAD + d + s + bisect_left(self.size_buckets, response_bytes)] += 1
        if exemplar is not None:
            at = SERIES_HEAD + d + 2 * s + bucket * EXEMPLAR_WORDS
            series.raw[at * 8 : at * 8 + 48] = exemplar[0] + exemplar[1]
            series.real[at + 6] = duration
            series.real[at + 7] = exemplar[2]


def _hex(value: object, size: int, name: str) -> bytes:
    if type(value) is not str or len(value) != size or value.strip("0123456789abcdef"):
        raise ValueError(f"{name} must be {size} lower-case hex characters, got {value!r}")
    return value.encode("ascii")


def _mounted_route(scope: Any, route: Any) -> str | None:
    """The label of a route inside a mounted app: the mount's matched prefix and the route's path."""
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
    path = getattr(route, "path", None)
    if type(root) is not str or type(app_root) is not str or type(path) is not str:
        return None
    prefix = root[len(app_root) :] if root.startswith(app_root) else ""
    # A mount whose app is no router: the prefix already holds the mount's path.
    if getattr(route, "routes", None) is not None or path == prefix:
        return prefix or path
    return prefix + path


class MetricsStage(Stage):
    """Counts each http request into ``table`` when it ends: the duration (start to last
    byte), the body bytes both ways, the status, the route template (``route_label(scope)``
    when given, else what the framework left in the scope), and an exemplar from the
    current trace (``exemplars``: "sampled" traces, "all", or None). Also keeps the
    active-requests gauge. A failure is counted in ``table.dropped`` and logged."""

    def __init__(
        self,
        table: MetricsTable,
        *,
        route_label: Callable[[Any], Any] | None = None,
        exemplars: str | None = "sampled",
        paths: Any = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        if not isinstance(table, MetricsTable):
            raise TypeError(f"table must be a MetricsTable, not {_type_name(table)}")
        if route_label is not None and not callable(route_label):
            raise TypeError(f"route_label must be callable or None, not {_type_name(route_label)}")
        if exemplars not in EXEMPLAR_MODES:
            raise ValueError(f"exemplars must be one of {EXEMPLAR_MODES}, got {exemplars!r}")
        self.table = table
        self.route_label = route_label
        self.exemplars = exemplars
        self.http_only = True
        self.wraps_receive = True
        self.timed = True
        # Route id by the route object's id(), the object held so that its id is not reused.
        self._routes: dict[int, tuple[object, int]] = {}
        self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Any, index: int) -> int:
        method = method_index(scope.get("method"))
        try:
            self.table._active_words()[method] += 1
        except Exception:
            _metrics_logger.exception("fastmw metrics could not count an active request")
            method = -1 - method  # counted nowhere: not taken back on leave
        ex._states[index] = method  # type: ignore[index]
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Any, state: Any, exc: BaseException | None
    ) -> BaseException | None:
        # What fails here is dropped by drops_failure (the engine calls it), not propagated.
        table = self.table
        method = state
        if method >= 0:
            table._active[method] -= 1
        else:
            method = -1 - method
        end = ex.t_last_byte or monotonic()
        status = access_status(scope, ex, rx, exc)
        rid = self._route_id(scope)
        exemplar = None
        if self.exemplars is not None:
            trace = _published_trace(ex)
            if trace is not None and (self.exemplars == "all" or trace.flags & 1):
                exemplar = (trace.trace_id.encode(), trace.span_id.encode(), round(time.time(), 6))
        table._count(
            method,
            rid,
            status,
            end - ex.t_start,
            0 if rx is None else rx.body_bytes,
            ex.body_bytes,
            exemplar,
        )
        return exc

    def drops_failure(self, exc: Exception) -> bool:
        """A request that could not be counted: counted in ``table.dropped`` and logged."""
        self.table._drop()
        _metrics_logger.error("fastmw metrics dropped a request", exc_info=exc)
        return True

    def _route_id(self, scope: Any) -> int:
        table = self.table
        if self.route_label is not None:
            try:
                label = self.route_label(scope)
            except Exception:
                _metrics_logger.exception("fastmw metrics route_label %r failed", self.route_label)
                return 0
            if label is None:
                return 0
            if type(label) is not str:
                _metrics_logger.error(
                    "fastmw metrics route_label %r gave %s, not str", self.route_label, _type_name(label)
                )
                return 0
            return table._label_id(label)
        route = scope.get("route")
        if route is not None:
            if "app_root_path" in scope:
                label = _mounted_route(scope, route)
                return table._label_id(label) if type(label) is str else 0
            return self._route_object_id(route)
        template = scope.get("path_template")  # Litestar
        return table._label_id(template) if type(template) is str else 0

    def _route_object_id(self, route: object) -> int:
        """The id of the label ``route.path`` gives, read once per route object (the first
        ROUTE_CACHE_LIMIT of them; later ones every time)."""
        cached = self._routes.get(id(route))
        if cached is not None:
            return cached[1]
        label = getattr(route, "path", None)
        rid = self.table._label_id(label) if type(label) is str else 0
        if len(self._routes) < ROUTE_CACHE_LIMIT:
            self._routes[id(route)] = (route, rid)
        return rid

"""The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0 (with exemplars).

Metric and label names are those OpenTelemetry's Prometheus exporter gives the HTTP server
semantic conventions, so dashboards built on them work unchanged.
"""

from __future__ import annotations

from typing import Any

from fastmw._impl import core

CONTENT_TYPE_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = b"application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS = b"application/openmetrics-text"

DURATION = "http_server_request_duration_seconds"
ACTIVE = "http_server_active_requests"
REQUEST_SIZE = "http_server_request_body_size_bytes"
RESPONSE_SIZE = "http_server_response_body_size_bytes"
DROPPED = "fastmw_metrics_dropped_requests"
UNREAD = "fastmw_metrics_unread_files"
# (name, help, unit) per histogram, in the series' order.
HISTOGRAMS = (
    (DURATION, "Duration of HTTP server requests.", "seconds"),
    (REQUEST_SIZE, "Size of HTTP server request bodies.", "bytes"),
    (RESPONSE_SIZE, "Size of HTTP server response bodies.", "bytes"),
)
EXEMPLAR_WORDS = 8


def wants_openmetrics(accept: bytes) -> bool:
    """Whether an Accept header asks for OpenMetrics (with a non-zero q)."""
    for item in accept.split(b","):
        media, *params = item.split(b";")
        if media.strip().lower() != OPENMETRICS:
            continue
        for param in params:
            key, _, value = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    if float(value) <= 0:
                        break
                except ValueError:
                    break
        else:
            return True
    return False


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


class Series:
    """One series summed over the server's processes."""

    __slots__ = ("_nd", "_ns", "counts", "exemplars", "method", "route", "status", "sums")

    def __init__(self, route: str, method: int, status: int, nd: int, ns: int) -> None:
        self.route = route
        self.method = method
        self.status = status
        self._nd, self._ns = nd + 1, ns + 1
        self.sums = [0.0, 0, 0]
        self.counts = [0] * (self._nd + 2 * self._ns)
        # Per duration bucket: (time, value, trace id, span id) or None.
        self.exemplars: list[tuple[float, float, str, str] | None] = [None] * self._nd

    def add(self, words: Any, reals: Any, data: bytes, at: int) -> None:
        """Add the counters at word ``at`` of a file's ``data``."""
        head = core.SERIES_HEAD
        self.sums[0] += reals[at]
        self.sums[1] += words[at + 1]
        self.sums[2] += words[at + 2]
        counts = words[at + head : at + head + len(self.counts)].tolist()
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        base = at + head + len(self.counts)
        for bucket in range(self._nd):
            word = base + bucket * EXEMPLAR_WORDS
            when = reals[word + 7]
            if when > 0 and (self.exemplars[bucket] is None or when > self.exemplars[bucket][0]):  # type: ignore[index]
                raw = data[word * 8 : word * 8 + 48].decode("ascii", "replace")
                self.exemplars[bucket] = (when, reals[word + 6], raw[:32], raw[32:])

    def labels(self) -> str:
        parts = [f'http_request_method="{core.METRIC_METHODS[self.method]}"']
        if self.status:
            parts.append(f'http_response_status_code="{self.status}"')
        if self.route:
            parts.append(f'http_route="{_escape(self.route)}"')
        return ",".join(parts)


def _histogram(
    out: list[str],
    name: str,
    labels: str,
    counts: list[int],
    bounds: tuple[float, ...],
    total: float,
    exemplars: list[Any] | None,
    openmetrics: bool,
) -> None:
    running = 0
    for index, count in enumerate(counts):
        running += count
        le = _number(bounds[index]) if index < len(bounds) else "+Inf"
        line = f'{name}_bucket{{{labels},le="{le}"}} {running}'
        exemplar = exemplars[index] if exemplars is not None else None
        if exemplar is not None:
            when, value, trace_id, span_id = exemplar
            line += f' # {{trace_id="{trace_id}",span_id="{span_id}"}} {value!r} {when!r}'
        out.append(line)
    if openmetrics:
        out.append(f"{name}_count{{{labels}}} {running}")
        out.append(f"{name}_sum{{{labels}}} {total!r}")
    else:
        out.append(f"{name}_sum{{{labels}}} {total!r}")
        out.append(f"{name}_count{{{labels}}} {running}")


def render(
    series: list[Series],
    active: list[int],
    dropped: int,
    unread: int,
    duration_bounds: tuple[float, ...],
    size_bounds: tuple[float, ...],
    openmetrics: bool,
) -> bytes:
    """The exposition of ``series`` and the gauges, in either format."""
    out: list[str] = []
    nd = len(duration_bounds) + 1
    ns = len(size_bounds) + 1
    slices = ((0, nd, duration_bounds), (nd, nd + ns, size_bounds), (nd + ns, nd + 2 * ns, size_bounds))
    labels = [item.labels() for item in series]
    for position, (name, help_text, unit) in enumerate(HISTOGRAMS):
        out.append(f"# TYPE {name} histogram")
        if openmetrics:
            out.append(f"# UNIT {name} {unit}")
        out.append(f"# HELP {name} {help_text}")
        start, stop, bounds = slices[position]
        for item, label in zip(series, labels, strict=True):
            exemplars = item.exemplars if openmetrics and position == 0 else None
            total = item.sums[position]
            _histogram(out, name, label, item.counts[start:stop], bounds, total, exemplars, openmetrics)
    out.append(f"# TYPE {ACTIVE} gauge")
    out.append(f"# HELP {ACTIVE} Number of active HTTP server requests.")
    seen = {item.method for item in series}
    for method, value in enumerate(active):
        if value or method in seen:
            out.append(f'{ACTIVE}{{http_request_method="{core.METRIC_METHODS[method]}"}} {value}')
    family = DROPPED if openmetrics else f"{DROPPED}_total"
    out.append(f"# TYPE {family} counter")
    out.append(f"# HELP {family} Requests the metrics stage could not count.")
    out.append(f"{DROPPED}_total {dropped}")
    out.append(f"# TYPE {UNREAD} gauge")
    out.append(f"# HELP {UNREAD} Counters files of this server that could not be read.")
    out.append(f"{UNREAD} {unread}")
    if openmetrics:
        out.append("# EOF")
    return ("\n".join(out) + "\n").encode("utf-8", "surrogatepass")

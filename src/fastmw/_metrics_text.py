"""The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0 (with exemplars).

Metric and label names are those OpenTelemetry's Prometheus exporter gives the HTTP server
semantic conventions, so dashboards built on them work unchanged.
"""

from __future__ import annotations

from fastmw._impl import core

CONTENT_TYPE_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = b"application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS = b"application/openmetrics-text"

ACTIVE = "http_server_active_requests"
DROPPED = "fastmw_metrics_dropped_requests"
UNREAD = "fastmw_metrics_unread_files"


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


def _number(value: float) -> str:
    """A bucket bound as Prometheus writes it: ``0.005``, ``1.0``, ``10000.0``."""
    return repr(float(value))


def render(
    files: list[bytes],
    active: list[int],
    dropped: int,
    unread: int,
    duration_bounds: tuple[float, ...],
    size_bounds: tuple[float, ...],
    openmetrics: bool,
) -> tuple[core.HistogramChunks, bytes]:
    """The exposition of the counters ``files`` (one layout) and the gauges, in either format:
    the histograms as chunks (tens of megabytes on a large router, never held whole), then the
    rest (which ends with ``# EOF`` in OpenMetrics)."""
    duration_le = [_number(bound) for bound in duration_bounds]
    size_le = [_number(bound) for bound in size_bounds]
    histograms = core.HistogramChunks(files, duration_le, size_le, openmetrics)
    seen = histograms.methods
    out: list[str] = [f"# TYPE {ACTIVE} gauge", f"# HELP {ACTIVE} Number of active HTTP server requests."]
    for method, value in enumerate(active):
        if value or seen >> method & 1:
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
    return histograms, ("\n".join(out) + "\n").encode("ascii")

"""The metrics stage's delta in ``make bench-instructions``: ``fastmw.stack()`` around a Starlette
app with one route, without and with ``metrics=``, sent the same request.

A routed app, not the raw endpoint the other groups use: the stage reads the route its router
leaves in the scope (``scope["route"]``, as FastAPI's does too), so that is what it costs in.
Starlette's router rather than FastAPI's: FastAPI spends about 330k instructions per request
of its own, and the heap's layout moves that by more than the whole budget from one process
to the next. Both sides build the app the same way and ignore the raw app they are handed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks._driver import ASGIApp

ROUTE = "/"
COUNT_LINE = (
    'http_server_request_duration_seconds_count{http_request_method="GET",'
    f'http_response_status_code="200",http_route="{ROUTE}"}} '
)


def routed_app() -> ASGIApp:
    """A Starlette app whose one route answers ``ok`` (what the bench request asks for)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def root(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(ROUTE, root)])


def store() -> Any:
    """A metrics store of its own (a fresh directory), so no other run's counts mix in."""
    from fastmw import metrics

    return metrics.MetricsStore(directory=tempfile.mkdtemp(prefix="fastmw-bench-metrics-"))


def _fm() -> Any:
    import fastmw

    return fastmw


def stack(app: ASGIApp) -> ASGIApp:
    return _fm().stack(routed_app())  # type: ignore[no-any-return]


def stack_with_metrics(app: ASGIApp, metrics_store: Any = None) -> ASGIApp:
    return _fm().stack(routed_app(), metrics={"store": metrics_store or store()})  # type: ignore[no-any-return]


def verify(answer: Callable[[ASGIApp], object]) -> Callable[[], list[str]]:
    """The stage counts each request under the route's template (three requests, count 3)."""

    def check() -> list[str]:
        metrics_store = store()
        app = stack_with_metrics(routed_app(), metrics_store)
        for _ in range(3):
            answer(app)
        text = metrics_store.exposition().decode()
        if f"{COUNT_LINE}3\n" not in text:
            raise AssertionError(f"expected {COUNT_LINE}3 in the exposition, got:\n{text[:2000]}")
        return []

    return check

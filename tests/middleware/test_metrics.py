"""MetricsMiddleware and ``stack(metrics=...)`` on real FastAPI and Starlette apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import fastmw
from fastmw import metrics
from fastmw.errors import ConfigurationError
from fastmw.middleware.metrics import MetricsMiddleware

COUNT = "http_server_request_duration_seconds_count"


def counts(store: metrics.MetricsStore) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> request count, read back through the Prometheus text parser."""
    text = store.exposition().decode()
    return {
        (
            s.labels["http_request_method"],
            s.labels.get("http_route", ""),
            s.labels["http_response_status_code"],
        ): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == COUNT
    }


def fastapi_app() -> FastAPI:
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @api.post("/items")
    async def create(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for _ in range(4):
                yield b"0123456789"

        return StreamingResponse(chunks())

    @api.get("/health")
    async def health() -> str:
        return "ok"

    return api


async def drive(app: Any, requests: list[tuple[str, str, bytes]]) -> list[int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"content-type": "application/json"}
        return [
            (await client.request(m, path, content=body, headers=headers)).status_code for m, path, body in requests
        ]


@pytest.fixture
def store(tmp_path: Path) -> metrics.MetricsStore:
    return metrics.MetricsStore(directory=tmp_path)


@pytest.mark.anyio
async def test_stack_counts_fastapi_routes(store: metrics.MetricsStore) -> None:
    app = fastmw.stack(fastapi_app(), metrics={"store": store, "exclude_paths": ["/health"]})
    statuses = await drive(
        app,
        [
            ("GET", "/items/1", b""),
            ("GET", "/items/2", b""),
            ("GET", "/items/x", b""),
            ("POST", "/items", b'{"a": 1}'),
            ("GET", "/nowhere/3", b""),
            ("GET", "/boom", b""),
            ("GET", "/stream", b""),
            ("GET", "/health", b""),
            ("BREW", "/items/1", b""),
        ],
    )
    assert statuses == [200, 200, 422, 200, 404, 500, 200, 200, 405]
    assert counts(store) == {
        ("GET", "/items/{item_id}", "200"): 2,
        ("GET", "/items/{item_id}", "422"): 1,
        ("POST", "/items", "200"): 1,
        ("GET", "", "404"): 1,
        ("GET", "/boom", "500"): 1,
        ("GET", "/stream", "200"): 1,
        ("_OTHER", "/items/{item_id}", "405"): 1,
    }
    text = store.exposition().decode()
    assert (
        'http_server_response_body_size_bytes_sum{http_request_method="GET",http_response_status_code="200",'
        'http_route="/stream"} 40' in text
    )
    assert (
        'http_server_request_body_size_bytes_sum{http_request_method="POST",http_response_status_code="200",'
        'http_route="/items"} 8' in text
    )


@pytest.mark.anyio
async def test_starlette_mounts_and_route_function(store: metrics.MetricsStore) -> None:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    inner = Starlette(routes=[Route("/users/{user_id}", hello)])
    app = Starlette(routes=[Route("/", hello), Mount("/api", app=inner)])
    await drive(MetricsMiddleware(app, store=store), [("GET", "/", b""), ("GET", "/api/users/7", b"")])
    assert counts(store) == {("GET", "/", "200"): 1, ("GET", "/api/users/{user_id}", "200"): 1}

    other = metrics.MetricsStore(directory=store.directory / "other")
    await drive(
        MetricsMiddleware(app, store=other, route_label=lambda scope: scope["path"][:4]), [("GET", "/api/users/8", b"")]
    )
    assert counts(other) == {("GET", "/api", "200"): 1}


def test_options_are_checked(store: metrics.MetricsStore) -> None:
    app = fastapi_app()
    with pytest.raises(ConfigurationError, match="route_label must be callable"):
        MetricsMiddleware(app, route_label="/x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="exemplars"):
        MetricsMiddleware(app, exemplars="always")
    with pytest.raises(ConfigurationError, match="store must be"):
        MetricsMiddleware(app, store=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="give the buckets"):
        MetricsMiddleware(app, store=store, duration_buckets=(1.0,))
    with pytest.raises(ConfigurationError, match="exclude_paths"):
        MetricsMiddleware(app, store=store, exclude_paths=["health"])


def test_it_fuses_with_the_other_middlewares(store: metrics.MetricsStore) -> None:
    app = fastmw.stack(fastapi_app(), metrics={"store": store})
    kinds = [type(stage).__name__ for stage in app.stages]
    assert kinds == ["RequestIdStage", "TimingStage", "MetricsStage", "AccessLogStage", "ErrorStage"]
    assert fastmw.stack(fastapi_app()).stages[2].__class__.__name__ != "MetricsStage"

"""The app tests/test_metrics_e2e.py serves under gunicorn and ``uvicorn --workers``.

FastAPI routes with a path parameter, a 500, a streamed body, an excluded health check,
each worker's pid at ``/pid`` (and at ``/health``), and the scrape endpoint at ``/metrics`` (not counted).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import fastmw
from fastmw import metrics

api = FastAPI()


@api.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@api.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@api.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"chunk"

    return StreamingResponse(chunks())


@api.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


@api.get("/pid")
async def pid() -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


api.router.routes.append(Route("/metrics", metrics.asgi_app()))

app = fastmw.stack(api, metrics={"exclude_paths": ["/health", "/metrics"]}, access_log=False)

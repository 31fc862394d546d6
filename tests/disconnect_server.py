"""ASGI apps for tests/test_disconnects.py, served by real servers in a subprocess.

``raw``: a raw ASGI app that streams ``FASTMW_DC_TOTAL`` bytes in 64 KiB chunks and never
calls ``receive``; ``starlette``: Starlette's ``StreamingResponse`` of the same bytes (it
listens for ``http.disconnect``). Both sit inside ``fastmw.stack()`` writing access records to
the JSON-lines file ``FASTMW_DC_LOG`` (one line per request, written at once).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

import fastmw
from fastmw.types import Scope

CHUNK = 64 * 1024
TOTAL = int(os.environ.get("FASTMW_DC_TOTAL", str(64 * 1024 * 1024)))
SINK = fastmw.JsonLinesSink(os.environ.get("FASTMW_DC_LOG", os.devnull), flush_interval=0)


async def _raw(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    chunk = b"x" * CHUNK
    for _ in range(TOTAL // CHUNK - 1):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": chunk})


def _chunks() -> Iterator[bytes]:
    chunk = b"x" * CHUNK
    for _ in range(TOTAL // CHUNK):
        yield chunk


async def _stream(request: Any) -> StreamingResponse:
    return StreamingResponse(_chunks())


raw = fastmw.stack(_raw, access_log={"sink": SINK})
starlette = fastmw.stack(Starlette(routes=[Route("/", _stream)]), access_log={"sink": SINK})

"""Leak script: stream a large body through the full stack in 64 KiB chunks, both ways.

The request body arrives in ``CHUNK``-sized ``http.request`` messages and the app
echoes each chunk as an ``http.response.body`` with ``more_body=True``; nothing in
the stack may buffer it. Reports the peak and final RSS growth over the stream.

Usage: python -m tests.leak_scripts.stack_stream <mebibytes>
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from typing import Any

import fastmw
from fastmw.types import Scope
from tests.hardening._stack import full_stack, null_logger
from tests.leak_scripts._measure import report, rss_kib

MEBIBYTES = int(sys.argv[1])
CHUNK = 64 * 1024
SAMPLE_EVERY = 64  # chunks between RSS samples (4 MiB)


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}
    )
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
        await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream(app: Any, chunks: int, samples: list[int]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com"), (b"content-type", b"application/octet-stream")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = 0
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent >= chunks:
            return {"type": "http.disconnect"}
        sent += 1
        # A fresh chunk each time, as a server reading a socket would make.
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": sent < chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal received
        if message["type"] == "http.response.body":
            received += len(message["body"])
            if sent % SAMPLE_EVERY == 0:
                samples.append(rss_kib())

    await app(scope, receive, send)
    return received


async def main() -> None:
    devnull = open(os.devnull, "wb")
    app, _ = full_stack(echo_app, logger=null_logger(), sink_stream=devnull)
    await stream(app, 256, [])  # warm-up: 16 MiB
    gc.collect()
    rss0 = rss_kib()
    samples: list[int] = []
    chunks = MEBIBYTES * 1024 * 1024 // CHUNK
    received = await stream(app, chunks, samples)
    gc.collect()
    rss1 = rss_kib()
    report(
        compiled=fastmw.COMPILED,
        mebibytes=MEBIBYTES,
        chunks=chunks,
        bytes_echoed=received,
        peak_growth_kib=max([*samples, rss1]) - rss0,
        rss_growth_kib=rss1 - rss0,
    )


if __name__ == "__main__":
    asyncio.run(main())

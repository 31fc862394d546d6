"""A server for tests/test_uvicorn_e2e.py: ``python -m tests.uvicorn_server KIND PORT JSON_PATH``.

Runs plain ``uvicorn.run(app)`` with no interface flag, so uvicorn must detect the
fastmw-wrapped app as ASGI3 by itself.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import fastmw
from fastmw.sink import JsonLinesSink


def boom(request: Any) -> Any:
    raise RuntimeError("boom")


def build(kind: str, json_path: str) -> Any:
    if kind == "fastapi":
        from fastapi import FastAPI

        inner: Any = FastAPI()
        inner.get("/ok")(lambda: {"ok": True})
        inner.get("/boom")(lambda: boom(None))
        inner.get("/stream")(lambda: StreamingResponse(iter([b"a"] * 20)))
    else:
        inner = Starlette(
            routes=[
                Route("/ok", lambda r: PlainTextResponse("ok")),
                Route("/boom", boom),
                Route("/stream", lambda r: StreamingResponse(iter([b"a"] * 20))),
            ]
        )
    # FastAPI: the JSON-lines sink; Starlette: the default logging sink (text lines on stderr).
    access_log: Any = True
    if kind == "fastapi":
        access_log = {"sink": JsonLinesSink(json_path, batch_lines=1000, flush_interval=3600)}
    return fastmw.stack(inner, access_log=access_log, exclude_paths=["/health"])


def main() -> None:
    kind, port, json_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s|%(message)s")
    uvicorn.run(build(kind, json_path), host="127.0.0.1", port=port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()

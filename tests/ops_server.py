"""The app the operations tests serve (tests/test_operations_e2e.py, tests/test_sink_disk.py).

``fastmw.stack()`` around a raw ASGI app: ``/ok`` answers 200, ``/boom`` raises before
responding, ``/wait`` answers 200 once told the client went away. With ``FASTMW_TEST_SINK``
set, access records go to a ``JsonLinesSink`` at that path (``flush_interval`` 0.05 s);
otherwise to stdlib logging (``fastmw.access``). ``FASTMW_TEST_STARLETTE=1`` serves the same
``/ok`` and ``/boom`` from a Starlette app instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import fastmw
from fastmw.sink import JsonLinesSink

SINK_PATH = os.environ.get("FASTMW_TEST_SINK")


async def endpoints(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] == "/wait":
        # Waits for the client to go away, then sends the whole response anyway.
        while (await receive())["type"] != "http.disconnect":
            pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def starlette_app() -> Any:
    """The same endpoints in Starlette: its ServerErrorMiddleware sends the 500 and re-raises."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def boom(request: Any) -> Any:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/ok", lambda request: PlainTextResponse("ok")), Route("/boom", boom)])


def build() -> Any:
    inner = starlette_app() if os.environ.get("FASTMW_TEST_STARLETTE") else endpoints
    if SINK_PATH:
        return fastmw.stack(inner, access_log={"sink": JsonLinesSink(SINK_PATH, flush_interval=0.05)})
    return fastmw.stack(inner)


if os.environ.get("FASTMW_TEST_LOG_TEXT"):
    # Text access lines on stderr, one record per line as the message formats it.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s|%(message)s"))
    access = logging.getLogger("fastmw.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False

app = build()

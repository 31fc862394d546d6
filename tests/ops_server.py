"""The app the operations tests serve (tests/test_operations_e2e.py, tests/test_sink_disk.py).

``fastmw.stack()`` around a raw ASGI app: ``/ok`` answers 200, ``/boom`` raises before
responding, ``/wait`` answers 200 once told the client went away. With ``FASTMW_TEST_SINK``
set, access records go to a ``JsonLinesSink`` at that path (``flush_interval`` 0.05 s);
otherwise to stdlib logging (``fastmw.access``).
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


def build() -> Any:
    if SINK_PATH:
        return fastmw.stack(endpoints, access_log={"sink": JsonLinesSink(SINK_PATH, flush_interval=0.05)})
    return fastmw.stack(endpoints)


if os.environ.get("FASTMW_TEST_LOG_TEXT"):
    # Text access lines on stderr, one record per line as the message formats it.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s|%(message)s"))
    access = logging.getLogger("fastmw.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False

app = build()

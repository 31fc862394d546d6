"""The app tests/test_sink_e2e.py serves: one JSON line per request in ``$FASTMW_SINK_PATH``.

``uvicorn tests.sink_server:app`` or ``gunicorn -k tests.sink_server.Worker tests.sink_server:app``.
``$FASTMW_SINK_INTERVAL`` (default one hour, so only a shutdown flush can save the lines) is
the sink's ``flush_interval``; ``$FASTMW_SINK_SIGNALS=0`` turns its signal handlers off.
Each response body is the serving process's pid.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from fastmw import AccessLogMiddleware, JsonLinesSink
from fastmw.types import Scope

SINK = JsonLinesSink(
    os.environ["FASTMW_SINK_PATH"],
    batch_lines=1000,
    flush_interval=float(os.environ.get("FASTMW_SINK_INTERVAL", "3600")),
    handle_signals=os.environ.get("FASTMW_SINK_SIGNALS", "1") == "1",
)


async def pid_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


app = AccessLogMiddleware(pid_app, sink=SINK)

try:
    from uvicorn_worker import UvicornWorker
except ImportError:  # pragma: no cover - gunicorn tests skip without it
    pass
else:

    class Worker(UvicornWorker):
        """gunicorn's uvicorn worker with lifespan off: no lifespan.shutdown flush to rely on."""

        CONFIG_KWARGS: ClassVar[dict[str, Any]] = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}

"""The full production stack the hardening tests drive, built only from public API.

``fastmw.stack`` (RequestId -> Timing -> AccessLog(stdlib) -> Error) around a JSON-lines
``AccessLogMiddleware`` and a ``RawContextMiddleware`` with the request/correlation id
plugins, so a request touches every layer, both access log outputs and both ContextVars.
"""

from __future__ import annotations

import logging
from typing import IO, Any

import fastmw

ASGIApp = Any


def null_logger(name: str = "fastmw.hardening.access") -> logging.Logger:
    """An enabled INFO logger whose records go to a NullHandler (records are still built)."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.NullHandler()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def full_stack(
    app: ASGIApp,
    *,
    logger: logging.Logger,
    sink_stream: IO[bytes] | None = None,
    batch_lines: int = 64,
    reraise: bool = True,
    timing_callback: Any = None,
    request_id: dict[str, Any] | None = None,
    mw: Any = fastmw,
) -> tuple[ASGIApp, Any]:
    """``app`` wrapped in the whole stack; returns (asgi app, the JSON sink or None).
    ``mw`` is the fastmw package to build from (or a ``tests.conftest.Twin``: fastmw on one core twin)."""
    plugins = [mw.plugins.RequestIdPlugin(), mw.plugins.CorrelationIdPlugin()]
    inner: ASGIApp = mw.RawContextMiddleware(app, plugins=plugins)
    sink = None
    if sink_stream is not None:
        sink = mw.JsonLinesSink(sink_stream, batch_lines=batch_lines)
        inner = mw.AccessLogMiddleware(inner, sink=sink)
    timing: dict[str, Any] = {} if timing_callback is None else {"callback": timing_callback}
    outer = mw.stack(
        inner,
        request_id=request_id or True,
        timing=timing,
        access_log={"logger": logger},
        errors={"reraise": reraise},
    )
    return outer, sink

"""The service the W3C Trace Context validation harness tests: ``TraceContextMiddleware`` + ``inject()``.

The harness POSTs a JSON list of ``{"url": ..., "arguments": [...]}``; for each item the
service POSTs ``arguments`` as JSON to ``url``, with the trace propagated by
``fastmw.trace.httpx_hooks()`` (``inject()`` on every call). See docs/tracing.md for how
to run the harness against it::

    python -m tests.w3c_service --port 5000     # serves http://127.0.0.1:5000/test
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

import fastmw
from fastmw import TraceContextMiddleware, trace

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
CALL_TIMEOUT = 5.0


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def build(transport: httpx.AsyncBaseTransport | None = None) -> Any:
    """The harness's service as an ASGI app (``transport`` replaces the network in tests)."""

    async def forward(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = 200
        try:
            calls = json.loads(await read_body(receive) or b"[]")
            async with httpx.AsyncClient(
                transport=transport, event_hooks=trace.httpx_hooks(), timeout=CALL_TIMEOUT
            ) as client:
                for call in calls if isinstance(calls, list) else [calls]:
                    await client.post(call["url"], json=call.get("arguments") or [])
        except (ValueError, KeyError, TypeError, httpx.HTTPError):
            status = 400
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": b"[]"})

    return TraceContextMiddleware(forward, opentelemetry=False)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    port = parser.parse_args().port
    core = "compiled" if fastmw.COMPILED else "pure-Python"
    print(f"W3C harness service ({core} core) on http://{HOST}:{port}/test", flush=True)
    uvicorn.run(build(), host=HOST, port=port, lifespan="off", log_level="warning")


if __name__ == "__main__":
    main()

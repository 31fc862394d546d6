"""Isolation: thousands of in-flight requests on one loop (and in Starlette's thread pool,
and in background tasks) each see only their own context, ids and timing; ContextVars are
reset when a request ends.

FASTMW_LEAK_SCALE scales the request counts (default 10^4 on the loop, 10^3 threaded).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import fastmw
from fastmw.types import Scope
from tests.hardening._stack import full_stack, null_logger
from tests.hardening._subprocess import scaled
from tests.helpers import Recorder, call_app, http_scope, plain_app, run

LOOP_REQUESTS = 10_000
THREADED_REQUESTS = 1_000
SLOW_EVERY = 50  # every 50th request really sleeps, so its timing differs from its neighbours'
SLOW_SECONDS = 0.05
BODY_CHUNKS = 3


def ids(index: int) -> tuple[str, str]:
    """The (request id, correlation id) request ``index`` sends: distinct valid uuid4 hex."""
    return uuid.UUID(int=index * 2 + 1, version=4).hex, uuid.UUID(int=index * 2 + 2, version=4).hex


def own_view(index: int) -> list[str]:
    """What request ``index`` must see right now; [] when it sees only its own values."""
    request_id, correlation = ids(index)
    wrong = []
    if fastmw.correlation_id.get() != request_id:
        wrong.append(f"correlation_id {fastmw.correlation_id.get()}")
    if fastmw.context.get("X-Request-ID") != request_id:
        wrong.append(f"context X-Request-ID {fastmw.context.get('X-Request-ID')}")
    if fastmw.context.get("X-Correlation-ID") != correlation:
        wrong.append(f"context X-Correlation-ID {fastmw.context.get('X-Correlation-ID')}")
    if fastmw.context.get("mine", index) != index:
        wrong.append(f"context mine {fastmw.context.get('mine')}")
    return wrong


async def interleaving_app(scope: Scope, receive: Any, send: Any) -> None:
    """Checks its own view between every await; reports crossings in the body."""
    index = int(scope["path"].rsplit("/", 1)[1])
    wrong = own_view(index)
    fastmw.context["mine"] = index
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
        wrong += own_view(index)
    if index % SLOW_EVERY == 0:
        await asyncio.sleep(SLOW_SECONDS)
    wrong += own_view(index)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await asyncio.sleep(0)
    wrong += own_view(index)
    await send({"type": "http.response.body", "body": json.dumps(wrong).encode()})


def test_ten_thousand_interleaved_requests_never_cross() -> None:
    count = scaled(LOOP_REQUESTS)
    callbacks: dict[int, Any] = {}

    def on_timing(scope: Scope, ttfb: float | None, total: float) -> None:
        # Runs inside the request id middleware, so the id is still the request's own.
        callbacks[int(scope["path"].rsplit("/", 1)[1])] = (fastmw.correlation_id.get(), ttfb, total)

    sink_stream = io.BytesIO()
    app, sink = full_stack(interleaving_app, logger=null_logger(), sink_stream=sink_stream, timing_callback=on_timing)

    async def one(index: int) -> tuple[Recorder, float]:
        request_id, correlation = ids(index)
        scope = http_scope(
            f"/r/{index}", headers=[(b"x-request-id", request_id.encode()), (b"x-correlation-id", correlation.encode())]
        )
        chunks = [{"type": "http.request", "body": b"x", "more_body": n < BODY_CHUNKS - 1} for n in range(BODY_CHUNKS)]

        async def receive() -> dict[str, Any]:
            await asyncio.sleep(0)  # every read lets the other requests run
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        started = time.perf_counter()
        sent = Recorder()
        await app(scope, receive, sent)
        return sent, time.perf_counter() - started

    async def main() -> list[tuple[Recorder, float]]:
        return await asyncio.gather(*(one(index) for index in range(count)))

    results = run(main())
    assert sink is not None
    sink.flush()
    lines = [json.loads(line) for line in sink_stream.getvalue().splitlines()]
    logged = {int(line["path"].rsplit("/", 1)[1]): line["request_id"] for line in lines}
    crossings: list[str] = []
    for index, (sent, wall) in enumerate(results):
        request_id, correlation = ids(index)
        seen = json.loads(sent.body)
        crossings += [f"{index}: app saw {item}" for item in seen]
        if sent.header(b"x-request-id") != request_id.encode():
            crossings.append(f"{index}: response x-request-id {sent.header(b'x-request-id')!r}")
        if sent.header(b"x-correlation-id") != correlation.encode():
            crossings.append(f"{index}: response x-correlation-id {sent.header(b'x-correlation-id')!r}")
        if logged.get(index) != request_id:
            crossings.append(f"{index}: access log request_id {logged.get(index)}")
        callback_id, ttfb, total = callbacks[index]
        process_time = float(sent.header(b"x-process-time"))  # type: ignore[arg-type]
        if callback_id != request_id or not process_time <= wall or not (ttfb is not None and ttfb <= total <= wall):
            crossings.append(f"{index}: timing {callback_id} {process_time} {ttfb} {total} wall {wall}")
        if index % SLOW_EVERY == 0 and not process_time >= SLOW_SECONDS:
            crossings.append(f"{index}: slow request timed {process_time}")
    assert len(lines) == count
    assert crossings == [], crossings[:20]


def sync_endpoint(request: Request) -> JSONResponse:
    """A sync route: Starlette runs it in its thread pool with a copy of the request's context."""
    index = int(request.path_params["index"])
    wrong = own_view(index)
    fastmw.context["mine"] = index
    time.sleep(0)
    wrong += own_view(index)
    seen_later: dict[str, Any] = BACKGROUND_SEEN

    def sync_background() -> None:
        seen_later[f"sync-{index}"] = own_view(index)

    async def async_background() -> None:
        await asyncio.sleep(0)
        seen_later[f"async-{index}"] = own_view(index)
        sync_background()

    return JSONResponse(wrong, background=BackgroundTask(async_background))


BACKGROUND_SEEN: dict[str, Any] = {}


def test_sync_endpoints_and_background_tasks_never_cross() -> None:
    count = scaled(THREADED_REQUESTS)
    BACKGROUND_SEEN.clear()
    starlette_app = Starlette(routes=[Route("/r/{index}", sync_endpoint)])
    app, _ = full_stack(starlette_app, logger=null_logger())

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            calls = []
            for index in range(count):
                request_id, correlation = ids(index)
                headers = {"X-Request-ID": request_id, "X-Correlation-ID": correlation}
                calls.append(client.get(f"/r/{index}", headers=headers))
            return await asyncio.gather(*calls)

    responses = run(main())
    crossings: list[str] = []
    for index, response in enumerate(responses):
        request_id, correlation = ids(index)
        crossings += [f"{index}: endpoint saw {item}" for item in response.json()]
        if response.headers["x-request-id"] != request_id or response.headers["x-correlation-id"] != correlation:
            crossings.append(f"{index}: response headers {response.headers}")
        for kind in ("sync", "async"):
            crossings += [f"{index}: {kind} background saw {item}" for item in BACKGROUND_SEEN[f"{kind}-{index}"]]
    assert len(BACKGROUND_SEEN) == 2 * count
    assert crossings == [], crossings[:20]


async def websocket_app(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()


@pytest.mark.parametrize("kind", ["http", "websocket", "rejected"])
def test_contextvars_are_reset_on_the_task_after_success(kind: str) -> None:
    app: Any
    if kind == "rejected":
        app, _ = full_stack(plain_app, logger=null_logger(), request_id={"on_invalid": "reject"})
        scope = http_scope(headers=[(b"x-request-id", b"bad id")])
    else:
        app, _ = full_stack(plain_app if kind == "http" else websocket_app, logger=null_logger())
        scope = http_scope(scope_type=kind)
    incoming = [{"type": "websocket.connect"}] if kind == "websocket" else [{"type": "http.request", "body": b""}]

    async def main() -> tuple[Any, bool, Recorder]:
        sent = await call_app(
            app, scope, incoming, then={"type": f"{'websocket' if kind == 'websocket' else 'http'}.disconnect"}
        )
        return fastmw.correlation_id.get(), fastmw.context.exists(), sent

    correlation, exists, sent = run(main())
    assert (correlation, exists) == (None, False)
    assert sent.messages, "the request produced no response"
    if kind == "rejected":
        assert sent.status == 400


def test_raising_request_resets_the_id_and_keeps_the_context_for_handlers() -> None:
    """Documented: the request id is reset in ``finally``; like starlette-context, an
    exception leaves the request context on the task for outer exception handlers."""

    async def boom(scope: Scope, receive: Any, send: Any) -> None:
        raise LookupError("boom")

    app, _ = full_stack(boom, logger=null_logger())

    async def main() -> tuple[Any, bool, int]:
        sent = Recorder()
        with pytest.raises(LookupError):
            await call_app(app, http_scope(), send=sent)
        return fastmw.correlation_id.get(), fastmw.context.exists(), sent.status

    assert run(main()) == (None, True, 500)

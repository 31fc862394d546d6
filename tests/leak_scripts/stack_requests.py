"""Leak script: many requests through the full stack in one process.

Reports RSS growth after warm-up (total, first half, second half), the change in
pymalloc's allocated block count and in the number of gc-tracked objects, and the
reference counts of probe objects (scope, message, headers, context dict).

Usage: python -m tests.leak_scripts.stack_requests <http|websocket|raising|rejected|context> <requests>
(rejected: a bad X-Correlation-ID, refused with the context middleware's 400; context: the
context middleware alone, one context stage in the engine)
The core is whatever ``fastmw`` picks (set FASTMW_NO_EXTENSIONS=1 for the pure twin).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import fastmw
from fastmw.types import Message, Scope
from tests.hardening._stack import full_stack, null_logger
from tests.leak_scripts._measure import report, rss_kib

SCENARIO, REQUESTS = sys.argv[1], int(sys.argv[2])
WARMUP = max(REQUESTS // 10, 2000)
BODY = b"hello"
REQUEST_ID = b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d"
START: Message = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


class Boom(Exception):
    """The app's failure in the raising scenario."""


async def http_app(scope: Scope, receive: Any, send: Any) -> None:
    message = await receive()
    if SCENARIO != "context":
        assert fastmw.correlation_id.get() == fastmw.context["X-Request-ID"]
    if SCENARIO == "raising":
        raise Boom("app failed")
    # A fresh start message each time (the stack edits it); the probe one is kept.
    await send({**START, "headers": list(START["headers"])})
    await send({"type": "http.response.body", "body": message.get("body", b"") + BODY})


async def ws_app(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"] + fastmw.context["X-Request-ID"]})
    await receive()


def http_scope(index: int) -> dict[str, Any]:
    headers = [(b"host", b"example.com"), (b"user-agent", b"leak")]
    if index & 1:  # half the requests bring their own id, half get a generated one
        headers.append((b"x-request-id", REQUEST_ID))
    if SCENARIO == "rejected":
        headers.append((b"x-correlation-id", b"not-a-uuid"))
    kind = "websocket" if SCENARIO == "websocket" else "http"
    scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "query_string": b"a=1",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    if kind == "http":
        scope["method"] = "POST"
    return scope


def inbox(scope: Scope) -> list[dict[str, Any]]:
    if scope["type"] == "websocket":
        return [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "ping"},
            {"type": "websocket.disconnect", "code": 1000},
        ]
    return [{"type": "http.request", "body": b"abc", "more_body": False}, {"type": "http.disconnect"}]


async def one(app: Any, index: int) -> None:
    scope = http_scope(index)
    messages = inbox(scope)
    position = 0

    async def receive() -> dict[str, Any]:
        nonlocal position
        message = messages[min(position, len(messages) - 1)]
        position += 1
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    try:
        await app(scope, receive, send)
    except Boom:
        pass


async def probe_refcounts(app: Any) -> dict[str, int]:
    """One request with kept probe objects: their refcounts must not change."""
    scope = http_scope(1)
    headers = scope["headers"]
    message = {"type": "http.request", "body": b"abc", "more_body": False}
    seen: dict[str, Any] = {}

    async def probe_app(inner_scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        seen["context"] = fastmw.context.data
        if SCENARIO == "raising":
            raise Boom("app failed")
        await send(START)  # the probe start message itself goes through the stack
        await send({"type": "http.response.body", "body": BODY})

    async def receive() -> dict[str, Any]:
        return message

    async def send(out: dict[str, Any]) -> None:
        return None

    stacked = app_factory(probe_app)
    # Warm the probe path once so lazily created caches do not count.
    for _ in range(2):
        seen.clear()
        try:
            await stacked(http_scope(1), receive, send)
        except Boom:
            pass
    probes = {"scope": scope, "headers": headers, "message": message, "start": START}
    before = {name: sys.getrefcount(obj) for name, obj in probes.items()}

    async def request() -> None:
        try:
            await stacked(scope, receive, send)
        except Boom:
            pass

    # Its own task, as a server runs each request: a raising request leaves its context
    # set on its task (starlette-context semantics), which must go away with the task.
    await asyncio.create_task(request())
    await asyncio.sleep(0)  # the loop drops its last reference to the finished task
    context = seen.pop("context")
    gc.collect()
    context_refs = sys.getrefcount(context)
    # What getrefcount says of an object only one local name of this frame holds: 2 before
    # CPython 3.14, 1 since (its argument, a borrowed local, is no longer counted).
    held_by_one_local: dict[str, Any] = {}
    sole_refs = sys.getrefcount(held_by_one_local)
    deltas = {name: sys.getrefcount(obj) - before[name] for name, obj in probes.items()}
    # Only our local name should hold the context dict now.
    deltas["context"] = context_refs - sole_refs
    return deltas


def app_factory(app: Any) -> Any:
    if SCENARIO == "context":
        plugins = [fastmw.plugins.RequestIdPlugin(), fastmw.plugins.CorrelationIdPlugin()]
        solo = fastmw.RawContextMiddleware(app, plugins=plugins)
        assert solo._stage is not None
        return solo
    # No JSON sink: it writes from its own thread, whose malloc arena moves RSS by hundreds of
    # KiB between runs (seen up to 528 KiB in the second half with no object or block growth),
    # more than the trend check's slack. The sink's backlog is bounded by max_pending.
    stacked, _ = full_stack(app, logger=null_logger())
    return stacked


async def main() -> None:
    app = app_factory(ws_app if SCENARIO == "websocket" else http_app)
    for index in range(WARMUP):  # warm-up: caches, free lists, arenas, the logger
        await one(app, index)
    objects0 = len(gc.get_objects())
    gc.collect()
    # RSS last: the object list above must not count as growth.
    blocks0, rss0 = sys.getallocatedblocks(), rss_kib()
    half = REQUESTS // 2
    for index in range(half):
        await one(app, index)
    gc.collect()
    rss1 = rss_kib()
    for index in range(half, REQUESTS):
        await one(app, index)
    gc.collect()
    rss2, blocks2, objects2 = rss_kib(), sys.getallocatedblocks(), len(gc.get_objects())
    ref_deltas = await probe_refcounts(app) if SCENARIO in ("http", "raising", "context") else {}
    report(
        scenario=SCENARIO,
        compiled=fastmw.COMPILED,
        requests=REQUESTS,
        rss_growth_kib=rss2 - rss0,
        first_half_kib=rss1 - rss0,
        second_half_kib=rss2 - rss1,
        blocks_delta=blocks2 - blocks0,
        objects_delta=objects2 - objects0,
        ref_deltas=ref_deltas,
    )


if __name__ == "__main__":
    asyncio.run(main())

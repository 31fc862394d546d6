"""In-process request drivers and the interleaved timer.

Two drivers, one per group: ``sync`` drives a never-suspending ASGI app with
``coro.send(None)`` (cheap, no loop noise); ``loop`` awaits each request on one
persistent event loop (needed by BaseHTTPMiddleware's anyio task groups). Every
stack of a group uses the same driver, and the rounds of a group alternate the
order of its stacks (forward, then backward) so drift on a noisy box hits all.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from time import process_time
from typing import Any

# The process's CPU time, not the wall clock: on a shared machine the time this process spends
# waiting for a core does not count (interleaved rounds and medians still absorb the rest).
clock = process_time
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

# A valid uuid4 for the echo path (the id middlewares validate and echo it back).
REQUEST_ID = b"7c4a8d09ca3742af91e59520943dc264"
CORRELATION_ID = b"5f0c3b1e9a4d4c2e8b7f6a5d4c3b2a19"
REQUEST_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
    (b"accept", b"application/json, text/plain, */*"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"connection", b"keep-alive"),
    (b"x-request-id", REQUEST_ID),
    (b"x-correlation-id", CORRELATION_ID),
]
# W3C trace context: only the trace group's requests carry it, after the headers above.
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
TRACE_HEADERS = ((b"traceparent", TRACEPARENT), (b"tracestate", TRACESTATE))
TRACE_REQUEST_HEADERS = [*REQUEST_HEADERS, *TRACE_HEADERS]
SENT_TRACE_ID, SENT_PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}
DISCONNECT = {"type": "http.disconnect"}


def new_scope(headers: list[tuple[bytes, bytes]] = REQUEST_HEADERS) -> dict[str, Any]:
    """A fresh scope per request (middlewares and Starlette write into it), with a copy of ``headers``."""
    scope = dict(SCOPE)
    scope["headers"] = list(headers)
    scope["state"] = {}
    return scope


class Receive:
    """One request's ``receive``: the empty body, then disconnect forever."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    async def __call__(self) -> dict[str, Any]:
        if self.done:
            return dict(DISCONNECT)
        self.done = True
        return dict(REQUEST_MESSAGE)


async def discard(message: dict[str, Any]) -> None:
    """The benchmark ``send``: drops every message."""


class Capture:
    """A ``send`` that keeps the messages of one request (for checks, not timing)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if len(starts) == 1 else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return {k.lower(): v for k, v in starts[0].get("headers", [])} if starts else {}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


def run_sync(app: ASGIApp, count: int, headers: list[tuple[bytes, bytes]] = REQUEST_HEADERS) -> float:
    """CPU seconds to drive ``count`` requests with ``coro.send(None)``; refuses apps that suspend."""
    start = clock()
    for _ in range(count):
        coro = app(new_scope(headers), Receive(), discard)
        try:
            coro.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            continue
        coro.close()  # type: ignore[attr-defined]
        raise RuntimeError("the app suspended: this group needs the loop driver")
    return clock() - start


async def _batch(app: ASGIApp, count: int, headers: list[tuple[bytes, bytes]]) -> float:
    start = clock()
    for _ in range(count):
        await app(new_scope(headers), Receive(), discard)
    return clock() - start


_LOOP: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The persistent event loop of the loop driver (uvloop when installed)."""
    global _LOOP
    if _LOOP is None:
        try:
            import uvloop
        except ImportError:
            _LOOP = asyncio.new_event_loop()
        else:
            _LOOP = uvloop.new_event_loop()
    return _LOOP


def loop_name() -> str:
    return type(loop()).__module__.split(".")[0]


def run_loop(app: ASGIApp, count: int, headers: list[tuple[bytes, bytes]] = REQUEST_HEADERS) -> float:
    """CPU seconds to drive ``count`` requests one after another on the persistent loop."""
    return loop().run_until_complete(_batch(app, count, headers))


def request_once(app: ASGIApp, headers: list[tuple[bytes, bytes]] = REQUEST_HEADERS) -> Capture:
    """Drive one request on the persistent loop and capture what the app sent."""
    capture = Capture()
    loop().run_until_complete(app(new_scope(headers), Receive(), capture))
    return capture


def interleave(
    batches: dict[str, Callable[[], float]],
    rounds: int,
    warmup: int = 1,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Per-round seconds of every batch, rounds alternating forward and backward order."""
    before = before or {}
    names = list(batches)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            if name in before:
                before[name]()
            # Start every batch with no garbage pending, so one stack's garbage
            # (BaseHTTPMiddleware makes plenty) is not collected on another's clock.
            gc.collect()
            seconds = batches[name]()
            if index >= warmup:
                samples[name].append(seconds)
    return samples

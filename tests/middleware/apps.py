"""Small raw ASGI apps and drivers shared by the middleware tests."""

from __future__ import annotations

import asyncio
from typing import Any

from fastmw.types import Scope
from tests.helpers import Message, Recorder, feeder, http_scope

CHUNKS = 50
CHUNK = b"x" * 100


class Boom(RuntimeError):
    """The app's own failure."""


async def streaming_app(scope: Scope, receive: Any, send: Any) -> None:
    """Reads the whole request body, then streams CHUNKS chunks."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for _ in range(CHUNKS - 1):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": CHUNK})


async def raise_before_start(scope: Scope, receive: Any, send: Any) -> None:
    raise Boom("before start")


async def raise_after_start(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise Boom("after start")


async def disconnecting_app(scope: Scope, receive: Any, send: Any) -> None:
    """Starts streaming, then sees the client disconnect and stops."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


async def hanging_app(scope: Scope, receive: Any, send: Any) -> None:
    """Starts a response and then waits forever (to be cancelled)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.Event().wait()


async def websocket_app(scope: Scope, receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "headers": [(b"x-ws", b"1")]})
    await send({"type": "websocket.send", "text": "hi"})
    await send({"type": "websocket.close", "code": 1000})


async def websocket_raises(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    raise Boom("ws before accept")


class LifespanApp:
    """Records the scope and messages it sees on the lifespan protocol."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        self.seen.append(scope)
        while True:
            message = await receive()
            self.seen.append(message)
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


async def run_lifespan(app: Any) -> Recorder:
    """Drive startup + shutdown through ``app`` (which must wrap a LifespanApp)."""
    sent = Recorder()
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, feeder(LIFESPAN_IN), sent)
    return sent


LIFESPAN_IN: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]


def ws_scope(path: str = "/ws", **kwargs: Any) -> dict[str, Any]:
    return http_scope(path, scope_type="websocket", **kwargs)


WS_IN: list[Message] = [{"type": "websocket.connect"}]


async def cancel_after_start(app: Any, scope: Scope) -> Recorder:
    """Run ``app`` until its response started, then cancel it like a server would."""
    sent = Recorder()
    task = asyncio.ensure_future(app(scope, feeder([{"type": "http.request", "body": b""}]), sent))
    for _ in range(100):
        await asyncio.sleep(0)
        if sent.messages:
            break
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the task was not cancelled")
    return sent

"""Shared pieces of the context-middleware tests: the two libraries side by side and a test app."""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.helpers import Recorder, call_app, http_scope

LIBRARIES = ("starlette_context", "fastmw")
UUID_HEX = "4d4b7a3e2f7c4e0b9a1c2b3d4e5f6a7b"


@dataclass
class Lib:
    """One library's public names, imported by the paths starlette-context documents."""

    name: str
    root: ModuleType
    middleware: ModuleType
    plugins: ModuleType
    errors: ModuleType
    header_keys: ModuleType

    @property
    def context(self) -> Any:
        return self.root.context

    @classmethod
    def load(cls, name: str) -> Lib:
        return cls(
            name,
            importlib.import_module(name),
            importlib.import_module(f"{name}.middleware"),
            importlib.import_module(f"{name}.plugins"),
            importlib.import_module(f"{name}.errors"),
            importlib.import_module(f"{name}.header_keys"),
        )


def dump(data: Any) -> dict[str, str]:
    """The context as JSON-able strings.

    Keys are plugin keys (``HeaderKeys`` members): their ``.value``, because on Python 3.10
    starlette-context's ``str(HeaderKeys.x)`` is ``"HeaderKeys.x"`` (fastmw's is the value,
    which ``tests/test_header_keys.py`` checks), and this module compares the two libraries.
    """
    return {str(getattr(key, "value", key)): str(value) for key, value in data.items()}


def make_app(lib: Lib, seen: list[Any]) -> Starlette:
    """A Starlette app whose endpoints report what they see in ``lib.context``."""
    context = lib.context

    async def show(request: Request) -> Response:
        return JSONResponse(dump(context.data))

    async def thread(request: Request) -> Response:
        await run_in_threadpool(context.__setitem__, "thread", "yes")
        await asyncio.create_task(_child(context))
        return JSONResponse(dump(context.data))

    def sync_endpoint(request: Request) -> Response:
        context["sync"] = "yes"
        return PlainTextResponse("sync")

    async def background(request: Request) -> Response:
        return PlainTextResponse("bg", background=BackgroundTask(lambda: seen.append(dict(context.data))))

    async def app_header(request: Request) -> Response:
        return PlainTextResponse("h", headers={"X-Request-ID": "from-app"})

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def on_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"rid": str(context.get("X-Request-ID"))}, status_code=500)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(json.dumps(dump(context.data)))
        await websocket.close()

    return Starlette(
        routes=[
            Route("/", show),
            Route("/thread", thread),
            Route("/sync", sync_endpoint),
            Route("/background", background),
            Route("/app-header", app_header),
            Route("/boom", boom),
            WebSocketRoute("/ws", ws),
        ],
        exception_handlers={Exception: on_error},
    )


async def _child(context: Any) -> None:
    context["child"] = "yes"


def get(app: Any, path: str = "/", headers: dict[str, str] | None = None) -> Recorder:
    """Drive one GET request through ``app``."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return asyncio.run(call_app(app, http_scope(path, headers=raw)))


def ws_connect(app: Any, path: str = "/ws", headers: dict[str, str] | None = None, **extra: Any) -> Recorder:
    """Drive one websocket session (connect, then disconnect once the app is done)."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = http_scope(path, headers=raw, scope_type="websocket", **extra)
    return asyncio.run(
        call_app(app, scope, [{"type": "websocket.connect"}], then={"type": "websocket.disconnect", "code": 1000})
    )


def header_values(recorder: Recorder, name: bytes, kind: str = "http.response.start") -> list[bytes]:
    """Every value of header ``name`` on the first ``kind`` message."""
    message = next(m for m in recorder.messages if m["type"] == kind)
    return [v for k, v in message.get("headers", []) if k.lower() == name]

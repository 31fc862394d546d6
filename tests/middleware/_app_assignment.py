"""Which app each entry point of a middleware chain serves after ``.app`` is set at one level.

Run in the test process (fusion on) and as ``python -m tests.middleware._app_assignment``
under ``FASTMW_NO_FUSE=1`` (every middleware a layer of its own): the two reports must be
equal, on both core twins. Prints the report as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import fastmw
from fastmw import _core_py
from fastmw._impl import building_on
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.plugins import CorrelationIdPlugin, RequestIdPlugin
from fastmw.stack import StackedApp
from fastmw.types import Scope
from tests.conftest import _core_c

Chain = Callable[[Any], Any]


def answering(name: str) -> Any:
    """An ASGI app whose body names it."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    return app


def nested(app: Any) -> Any:
    return fastmw.RequestIdMiddleware(fastmw.TimingMiddleware(fastmw.BodyCacheMiddleware(fastmw.ErrorMiddleware(app))))


def stacked(app: Any) -> Any:
    return fastmw.stack(app, body_cache=True)


def context_around_stack(app: Any) -> Any:
    plugins = [RequestIdPlugin(), CorrelationIdPlugin()]
    return fastmw.RawContextMiddleware(fastmw.stack(app), plugins=plugins)


def stack_of_context(app: Any) -> Any:
    plugins = [RequestIdPlugin(), CorrelationIdPlugin()]
    return fastmw.stack(fastmw.TimingMiddleware(fastmw.RawContextMiddleware(app, plugins=plugins)), timing=False)


def mixed_fuse(app: Any) -> Any:
    inner = fastmw.TimingMiddleware(fastmw.ErrorMiddleware(app), fuse=False)
    return fastmw.AccessLogMiddleware(fastmw.RequestIdMiddleware(inner), logger="fastmw.test.assignment")


CHAINS: dict[str, Chain] = {
    "nested": nested,
    "stack": stacked,
    "context_around_stack": context_around_stack,
    "stack_of_context": stack_of_context,
    "mixed_fuse": mixed_fuse,
}


def levels(outermost: Any) -> list[Any]:
    """Every fastmw middleware of the chain that takes ``.app``, outermost first (a stacked
    app's own ``app`` is read-only: its levels are the middlewares inside it)."""
    found = []
    layer = outermost
    while isinstance(layer, FusableMiddleware):
        if not isinstance(layer, StackedApp):
            found.append(layer)
        layer = layer.app
    return found


def served(app: Any) -> str:
    """The body one request through ``app`` gets."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "state": {}}
    asyncio.run(app(scope, receive, send))
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def report(core: Any) -> dict[str, list[list[str]]]:
    """Per chain and level set: what the outermost app and every level serve afterwards."""
    result: dict[str, list[list[str]]] = {}
    with building_on(core):
        for name, chain in CHAINS.items():
            count = len(levels(chain(answering("old"))))
            rows = []
            for level in range(count):
                for replacement in ("app", "middleware"):
                    outermost = chain(answering("old"))
                    target = levels(outermost)[level]
                    new = answering(f"new {level}")
                    target.app = new if replacement == "app" else fastmw.TimingMiddleware(new)
                    rows.append([replacement, served(outermost), *(served(layer) for layer in levels(outermost))])
            result[name] = rows
    return result


def cores() -> dict[str, Any]:
    found = {"pure": _core_py}
    if _core_c is not None and not fastmw._impl.extensions_disabled():
        found["compiled"] = _core_c
    return found


if __name__ == "__main__":
    json.dump({name: report(core) for name, core in cores().items()}, sys.stdout)
    print()

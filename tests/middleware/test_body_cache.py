"""BodyCacheMiddleware: a capped copy of the body as the app reads it."""

from __future__ import annotations

from typing import Any

import pytest

from fastmw import BodyCacheMiddleware
from fastmw.errors import ConfigurationError
from fastmw.middleware.body_cache import STATE_KEY, CachedBody, cached_body
from fastmw.types import Scope
from tests.helpers import Recorder, call_app, http_scope, plain_app, run
from tests.middleware.apps import (
    CHUNK,
    CHUNKS,
    WS_IN,
    Boom,
    LifespanApp,
    cancel_after_start,
    hanging_app,
    run_lifespan,
    streaming_app,
    websocket_app,
    ws_scope,
)

BODY = [
    {"type": "http.request", "body": b"hello ", "more_body": True},
    {"type": "http.request", "body": b"world", "more_body": False},
]


def reading_app(snapshots: list[Any], *, fail: bool = False) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        snapshots.append(cached_body())  # nothing read yet: never read ahead
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        snapshots.append(cached_body())
        snapshots.append(scope["state"].get(STATE_KEY) is not None)
        if fail:
            raise Boom("after reading")
        await plain_app(scope, receive, send)

    return app


def test_copies_what_the_app_reads() -> None:
    snapshots: list[Any] = []
    state: dict[str, Any] = {}
    run(call_app(BodyCacheMiddleware(reading_app(snapshots)), http_scope(state=state), BODY))
    assert snapshots == [CachedBody(b"", False, 0), CachedBody(b"hello world", False, 11), True]
    assert cached_body() is None and STATE_KEY not in state  # released after the response


def test_cap_sets_truncated_flag() -> None:
    snapshots: list[Any] = []
    run(call_app(BodyCacheMiddleware(reading_app(snapshots), max_bytes=8), http_scope(), BODY))
    assert snapshots[1] == CachedBody(b"hello wo", True, 11)


def test_readable_by_outer_error_path_while_raising() -> None:
    snapshots: list[Any] = []
    with pytest.raises(Boom):
        run(call_app(BodyCacheMiddleware(reading_app(snapshots, fail=True)), http_scope(), BODY))
    assert snapshots[1].body == b"hello world"
    assert cached_body() is None


def test_passthroughs() -> None:
    assert len(run(run_lifespan(BodyCacheMiddleware(LifespanApp()))).messages) == 2
    ws = run(call_app(BodyCacheMiddleware(websocket_app), ws_scope(), WS_IN))
    assert ws.messages[0]["type"] == "websocket.accept"
    sent = run(call_app(BodyCacheMiddleware(streaming_app), http_scope()))
    assert sent.body == CHUNK * CHUNKS and len(sent.messages) == CHUNKS + 1
    assert [m["type"] for m in run(cancel_after_start(BodyCacheMiddleware(hanging_app), http_scope())).messages] == [
        "http.response.start"
    ]


def test_exclude_paths_and_validation() -> None:
    snapshots: list[Any] = []
    run(call_app(BodyCacheMiddleware(reading_app(snapshots), exclude_paths=["/upload"]), http_scope("/upload"), BODY))
    assert snapshots[:2] == [None, None]
    with pytest.raises(ConfigurationError):
        BodyCacheMiddleware(plain_app, max_bytes=-1)
    assert isinstance(Recorder(), Recorder)

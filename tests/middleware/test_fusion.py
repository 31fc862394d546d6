"""Fusion: adjacent fastmw middlewares run as one core pipeline and behave exactly like
the same middlewares as nested layers.

The differential test builds every combination three ways on each core twin (the
``Twin`` of ``tests/conftest.py``: one package, the middleware layer bound to each core):
fused, with ``fuse=False`` on each middleware (one pipeline each), and as an
independent reference of hand-written nested layers (own recorders,
try/except/finally) over the pure twin's stage steps. It demands identical sent
messages (headers in order), outcome (exception type, message and ``__context__``
chain), log records (minus durations), sink lines, what the app saw and the context
left behind, on both twins.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import subprocess
import sys
from typing import Any

import pytest

from fastmw.types import Scope
from tests.middleware._fusion_harness import (
    COMBINATIONS,
    RID,
    SCENARIOS,
    TWIN_NAMES,
    LogCapture,
    Server,
    build,
    drive,
    fusable_run,
    fuse_flag,
    fused_stages,
    make_app,
    package,
    reference_package,
    request_scope,
    run_case,
    server_for,
)


@pytest.mark.parametrize("layers", COMBINATIONS, ids="-".join)
def test_fused_equals_nested(layers: tuple[str, ...], capture: LogCapture) -> None:
    seen_any = False
    for scenario in SCENARIOS:
        expected = run_case(layers, scenario, "reference", capture, reference_package())
        seen_any = seen_any or bool(expected[0])
        for twin in TWIN_NAMES:
            mw = package(twin)
            assert run_case(layers, scenario, "fused", capture, mw) == expected, (twin, "fused", scenario)
            assert run_case(layers, scenario, "layers", capture, mw) == expected, (twin, "layers", scenario)
    assert seen_any


@pytest.mark.parametrize("layers", COMBINATIONS, ids="-".join)
def test_combinations_really_fuse(layers: tuple[str, ...], mw: Any) -> None:
    app = build(layers, make_app("ok", [], mw), True, "ok", None, [], mw)
    unfused = build(layers, make_app("ok", [], mw), False, "ok", None, [], mw)
    expected = fusable_run(layers) if fuse_flag(mw) else min(1, fusable_run(layers))
    assert len(fused_stages(mw, app)) == expected
    assert len(fused_stages(mw, unfused)) == min(1, fusable_run(layers))
    assert all(isinstance(stage, mw.core.Stage) for stage in fused_stages(mw, app))


# --------------------------------------------------------------------------- one pipeline per request


def test_full_stack_is_one_pipeline_per_request(mw: Any) -> None:
    wrappers: list[Any] = []
    frames: list[int] = []
    core = mw.core

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        wrappers.append((send, receive))
        if not mw.COMPILED:
            # The pure engine's coroutine frames between the server and the app.
            frame, layers = sys._getframe().f_back, 0
            while frame is not None:
                layers += frame.f_code is core.run_pipeline.__code__
                frame = frame.f_back
            frames.append(layers)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    plugins = [mw.plugins.RequestIdPlugin(), mw.plugins.CorrelationIdPlugin()]
    wrapped = mw.RawContextMiddleware(mw.stack(app, body_cache=True), plugins=plugins)
    fused = fuse_flag(mw)
    assert len(fused_stages(mw, wrapped)) == (6 if fused else 1)
    server = Server([{"type": "http.request", "body": b"x"}], {"type": "http.disconnect"})
    scope = {"type": "http", "path": "/", "headers": [(b"x-request-id", RID)], "method": "GET", "state": {}}
    contextvars.Context().run(drive, wrapped(scope, server.receive, server.send))
    if fused:
        send, receive = wrappers[0]
        # One send wrapper and one receive wrapper, straight onto the server's callables.
        assert type(send) is core.SendRecorder and send.send == server.send
        assert type(receive) is core.ReceiveRecorder and receive.receive == server.receive
        assert frames == ([] if mw.COMPILED else [1])  # one engine coroutine (the compiled one has no frame)
    assert server.sent[0]["status"] == 200
    # The context middleware decides the request id: it echoes it, the request-id stage does not again.
    names = [name for name, _ in server.sent[0]["headers"]]
    assert names == [b"x-process-time", b"server-timing", b"x-request-id", b"x-correlation-id"]


def test_starlette_middleware_list_add_middleware_and_wrapping_fuse(mw: Any) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    middleware = mw.middleware
    listed = Starlette(
        middleware=[
            Middleware(middleware.RequestIdMiddleware),
            Middleware(middleware.TimingMiddleware),
            Middleware(middleware.ErrorMiddleware),
        ]
    )
    added = Starlette()
    added.add_middleware(middleware.ErrorMiddleware)
    added.add_middleware(middleware.TimingMiddleware)
    added.add_middleware(middleware.RequestIdMiddleware)
    # Inside ServerErrorMiddleware:
    outers = [getattr(app.build_middleware_stack(), "app", None) for app in (listed, added)]
    outers.append(middleware.RequestIdMiddleware(middleware.TimingMiddleware(middleware.ErrorMiddleware(Starlette()))))
    for outer in outers:
        assert isinstance(outer, middleware.RequestIdMiddleware)
        names = [type(stage).__name__ for stage in fused_stages(mw, outer)]
        assert names == (["RequestIdStage", "TimingStage", "ErrorStage"] if fuse_flag(mw) else ["RequestIdStage"])


def test_inner_instance_stays_usable_and_app_reassignment_rebuilds(mw: Any) -> None:
    inner = mw.TimingMiddleware(make_app("ok", [], mw))
    outer = mw.RequestIdMiddleware(inner)
    assert fused_stages(mw, inner) == (inner._stage,)
    other = make_app("ok", [], mw)
    inner.app = other
    assert inner.terminal is other and inner.app is other
    outer.app = inner
    assert len(fused_stages(mw, outer)) == (2 if fuse_flag(mw) else 1)
    assert outer.terminal is (other if fuse_flag(mw) else inner)


def test_custom_hooks_stay_unfused_layers(mw: Any) -> None:
    class Custom(mw.RawContextMiddleware):  # type: ignore[misc]
        async def set_context(self, request: Any) -> dict[str, Any]:
            return {"a": 1}

    class OwnCall(mw.TimingMiddleware):  # type: ignore[misc]
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    inner = mw.TimingMiddleware(make_app("ok", [], mw))
    custom = Custom(inner)
    assert fused_stages(mw, custom) == ()
    outer = mw.RequestIdMiddleware(custom)
    assert fused_stages(mw, outer) == (outer._stage,)
    own = mw.RequestIdMiddleware(OwnCall(inner))
    assert fused_stages(mw, own) == (own._stage,)


@pytest.mark.parametrize("inner_fuse", [True, False])
def test_fuse_false_on_either_side_keeps_two_pipelines(mw: Any, inner_fuse: bool) -> None:
    inner = mw.TimingMiddleware(make_app("ok", [], mw), fuse=inner_fuse)
    outer = mw.RequestIdMiddleware(inner, fuse=not inner_fuse)
    assert fused_stages(mw, outer) == (outer._stage,)
    assert outer.terminal is inner


def test_no_fuse_environment_switch() -> None:
    code = (
        "from fastmw.middleware._fusion import FUSE, fused_stages\n"
        "from fastmw.middleware import RequestIdMiddleware, TimingMiddleware\n"
        "app = RequestIdMiddleware(TimingMiddleware(lambda s, r, c: None))\n"
        "print(FUSE, len(fused_stages(app)))\n"
    )
    for value, expected in (("1", ["False", "1"]), ("true", ["False", "1"]), ("0", ["True", "2"]), ("", ["True", "2"])):
        env = {**os.environ, "FASTMW_NO_FUSE": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected, value


def test_generated_id_fast_path_matches_the_header_it_writes(mw: Any, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    app = mw.stack(make_app("ok", seen, mw), access_log=False)
    original = [(b"user-agent", b"ua")]
    scope = {"type": "http", "path": "/", "method": "GET", "headers": original, "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    contextvars.Context().run(drive, app(scope, server.receive, server.send))
    echoed = dict(server.sent[0]["headers"])[b"x-request-id"]
    assert mw.core.is_uuid4(echoed.decode()) and len(echoed) == 32
    assert seen[0]["request_id_header"] == echoed == seen[0]["correlation_id"].encode()
    assert scope["headers"] == [(b"user-agent", b"ua"), (b"x-request-id", echoed)]
    assert original == [(b"user-agent", b"ua")]  # the server's list is not mutated
    # A user's generator giving an id the stage cannot use: the warning and a core id.
    oversize = mw.RequestIdMiddleware(make_app("ok", [], mw), generator=lambda: "x" * 129)
    scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    with caplog.at_level(logging.WARNING, logger="fastmw.request_id"):
        contextvars.Context().run(drive, oversize(scope, server.receive, server.send))
    assert "unusable id" in caplog.text
    assert mw.core.is_uuid4(dict(server.sent[0]["headers"])[b"x-request-id"].decode())


@pytest.mark.parametrize("scenario", ["ok", "error_before", "error_after", "bad_id", "bad_cid", "websocket_error"])
def test_no_reference_cycles_per_request(mw: Any, scenario: str, capture: LogCapture) -> None:
    """A request leaves no garbage for the cycle collector (the middleware are built once)."""
    layers = ("context_outer", "request_id", "timing", "body_cache", "access_log", "errors")
    seen: list[Any] = []
    app = build(layers, make_app(scenario, seen, mw), True, scenario, None, [], mw)

    def one() -> None:
        scope = request_scope(scenario)
        server = server_for(scenario)
        try:
            contextvars.Context().run(drive, app(scope, server.receive, server.send))
        except ValueError:
            pass

    one()
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            one()
        found = gc.collect()
    finally:
        gc.enable()
    seen.clear()
    capture.records.clear()
    assert found == 0

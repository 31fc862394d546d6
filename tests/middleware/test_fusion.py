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
import io
import itertools
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.responses import PlainTextResponse, Response

import fastmw
from fastmw.types import Message, Scope
from tests.conftest import PURE_RUN, twin_named

RID = b"0123456789abcdef0123456789abcdef"
CID = b"fedcba9876543210fedcba9876543210"
# Refused by the default request-id validator (a space) and by the UUID plugins.
BAD_ID = b"not a uuid"
FIXED_ID = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb"
KNOWN_IDS = (RID, CID, FIXED_ID.encode())
NEW_ID = re.compile(rb"[0-9a-f]{32}")
VARYING_HEADERS = (b"x-process-time", b"server-timing")
VARYING_FIELDS = ("duration_ms", "ttfb_ms", "time")
STACK_ORDER = ("request_id", "timing", "body_cache", "access_log", "errors")
HTTP_SCENARIOS = ("ok", "stream", "error_before", "error_after", "send_oserror", "disconnect", "bad_id", "bad_cid")
WEBSOCKET_SCENARIOS = ("websocket", "websocket_error", "websocket_deny", "websocket_bad_id")
SCENARIOS = (*HTTP_SCENARIOS, "excluded", "lifespan", "ok_sink", *WEBSOCKET_SCENARIOS)
# In the pure run both names give the (pure) fastmw package itself.
TWIN_NAMES = ["compiled", "pure"] if fastmw.COMPILED and not PURE_RUN else ["pure"]


def package(twin: str) -> Any:
    """fastmw on the ``twin`` core."""
    return twin_named(twin)


# The nested reference runs the pure twin's stage steps (the compiled ones are C methods).
def reference_package() -> Any:
    return package("pure")


@pytest.fixture(params=TWIN_NAMES)
def mw(request: pytest.FixtureRequest) -> Any:
    """fastmw on each core twin in turn."""
    return package(request.param)


def fuse_flag(mw: Any) -> bool:
    return mw.middleware._fusion.FUSE  # type: ignore[no-any-return]


def fused_stages(mw: Any, app: Any) -> tuple[Any, ...]:
    return mw.middleware._fusion.fused_stages(app)  # type: ignore[no-any-return]


class Stop(Exception):
    """A driver failure: the app suspended (nothing here should)."""


# --------------------------------------------------------------------------- the app and the server side


class Server:
    """The fake server: a receive queue and a send that records copies (or raises OSError)."""

    def __init__(
        self, incoming: list[Message], then: dict[str, Any], fail_on_body: bool = False, mask: bool = False
    ) -> None:
        self.incoming = list(incoming)
        self.then = then
        self.fail_on_body = fail_on_body
        self.mask = mask
        self.sent: list[Any] = []

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else dict(self.then)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_on_body and message["type"] == "http.response.body":
            raise OSError("client went away")
        copy = dict(message)
        if "headers" in copy and self.mask:
            copy["headers"] = [(k, b"*" if k in VARYING_HEADERS else masked(v)) for k, v in copy["headers"]]
        self.sent.append(copy)


def masked(value: bytes) -> bytes:
    """A request id the core made (a refusal's) differs per run: compare it as a marker."""
    if value not in KNOWN_IDS and NEW_ID.fullmatch(value):
        return b"<new id>"
    return value


def observe(mw: Any, scope: Scope) -> dict[str, Any]:
    """What the app can see of the middleware around it."""
    data = mw._storage.REQUEST_CONTEXT.get(None)
    body = mw.middleware.body_cache.cached_body()
    return {
        "context": dict(data) if data is not None else None,
        "correlation_id": mw._storage.CORRELATION_ID.get(),
        "timed": mw.middleware.timing.current_timing() is not None,
        "cached": tuple(body) if body is not None else None,
        "request_id_header": mw.core.header_get(scope["headers"], b"x-request-id"),
        "scope_id": scope.get("fastmw.request_id"),
    }


def make_app(scenario: str, seen: list[Any], mw: Any) -> Callable[..., Any]:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                seen.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.append(observe(mw, scope))
        if kind == "websocket":
            await receive()
            if scenario == "websocket_error":
                raise ValueError("ws boom")
            if scenario == "websocket_deny":
                await send({"type": "websocket.close", "code": 1003})
                return
            await send({"type": "websocket.accept", "headers": [(b"x-app", b"1")]})
            await send({"type": "websocket.send", "text": "hi"})
            await send({"type": "websocket.close", "code": 1000})
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append(observe(mw, scope))
                return
            if not message.get("more_body"):
                break
        seen.append(observe(mw, scope))
        if scenario == "error_before":
            raise ValueError("boom")
        headers = [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        if scenario in ("stream", "error_after", "send_oserror"):
            await send({"type": "http.response.body", "body": b"one", "more_body": True})
            if scenario == "error_after":
                raise ValueError("late boom")
            await send({"type": "http.response.body", "body": b"two", "more_body": True})
        await send({"type": "http.response.body", "body": b"done"})

    return app


# --------------------------------------------------------------------------- building stacks


def fixed_id() -> str:
    return FIXED_ID


def make_layer(name: str, app: Any, fuse: bool, options: dict[str, Any], mw: Any) -> Any:
    middleware = mw.middleware
    plugins = [mw.plugins.RequestIdPlugin(), mw.plugins.CorrelationIdPlugin()]
    if name == "request_id":
        return middleware.RequestIdMiddleware(app, generator=fixed_id, fuse=fuse, **options)
    if name == "correlation_id":
        return middleware.CorrelationIdMiddleware(app, generator=fixed_id, fuse=fuse, **options)
    if name == "timing":
        return middleware.TimingMiddleware(app, fuse=fuse, **options)
    if name == "body_cache":
        return middleware.BodyCacheMiddleware(app, max_bytes=3, fuse=fuse, **options)
    if name == "access_log":
        return middleware.AccessLogMiddleware(app, fuse=fuse, **options)
    if name == "errors":
        return middleware.ErrorMiddleware(app, fuse=fuse, **options)
    if name == "starlette_context":
        return middleware.ContextMiddleware(app, plugins=plugins, fuse=fuse, **options)
    if name.startswith("context"):
        return middleware.RawContextMiddleware(app, plugins=plugins, fuse=fuse, **options)
    if name == "custom":
        return HeaderAdder(app)
    raise AssertionError(name)


class HeaderAdder:
    """A user's own middleware: appends a header to the response start."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        async def adding(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-custom", b"1"))
            await send(message)

        await self.app(scope, receive, adding)


def layer_options(name: str, position: int, scenario: str, sink: Any, calls: list[Any]) -> tuple[str, dict[str, Any]]:
    options: dict[str, Any] = {}
    if name == "errors_quiet":
        name, options = "errors", {"reraise": False}
    elif name == "errors_handler":
        name, options = "errors", {"handler": lambda scope, exc: PlainTextResponse("sorry", status_code=503)}
    elif name == "request_id_reject":
        name, options = "request_id", {"on_invalid": "reject"}
    if name == "timing":
        options["callback"] = lambda scope, ttfb, total: calls.append((scope["path"], ttfb is None))
    if name == "access_log" and sink is not None:
        options["sink"] = sink
    filtered = name not in ("custom", "starlette_context") and not name.startswith("context")
    if scenario == "excluded" and filtered and position % 2 == 0:
        options["exclude_paths"] = ["/health"]
    elif scenario == "excluded" and filtered and position % 3 == 1:
        options["include_paths"] = ["/api", "/health/*"]
    return name, options


def build(layers: tuple[str, ...], app: Any, fuse: bool, scenario: str, sink: Any, calls: list[Any], mw: Any) -> Any:
    """``layers`` outermost first, each middleware built around the next (direct wrapping)."""
    for position, layer in reversed(list(enumerate(layers))):
        name, options = layer_options(layer, position, scenario, sink, calls)
        app = make_layer(name, app, fuse, options, mw)
    return app


# --------------------------------------------------------------------------- an independent nested reference


class NestedLayer:
    """One stage as a classic nested layer, written independently of the engine: its own
    send and receive recorders, the app called inside try/except/finally, an exception
    answered in the ``except`` block and the exit step in the ``finally`` block."""

    def __init__(self, stage: Any, app: Any, other: Any, mw: Any) -> None:
        self.stage = stage
        self.app = app
        self.other = other
        self.core = mw.core
        self.request_state = mw._storage.REQUEST_STATE

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        stage = self.stage
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.other(scope, receive, send)
            return
        if (stage.http_only and kind != "http") or (stage.paths is not None and not stage.paths.applies(scope)):
            await self.app(scope, receive, send)
            return
        # The pure twin's recorder running this one stage's start step (at _live == 1).
        ex = self.core.SendRecorder(send)
        ex._stages, ex._states, ex._edits, ex._live = (stage,), [None], stage.starts, 0
        rx = self.core.ReceiveRecorder(receive, stage.body_limit) if stage.wraps_receive else None
        inner_receive = receive if rx is None else rx
        token = None
        if stage.publishes:
            # Its own holder of what it publishes, the outer layers' values inherited.
            outer = self.request_state.get()
            ex._published = self.core.Published(*((outer.timing, outer.body, outer.trace) if outer else ()))
            token = self.request_state.set(ex._published)
        try:
            await self._run(scope, inner_receive, ex, rx)
        finally:
            if token is not None:
                self.request_state.reset(token)

    async def _run(self, scope: Scope, inner_receive: Any, ex: Any, rx: Any) -> None:
        stage = self.stage
        if stage.enter(ex, rx, scope, 0):
            # A refusal answers instead of the app; only the outer layers edit its start.
            await ex._refusal(scope, inner_receive, ex)
            return
        ex._live = 1
        raised: BaseException | None = None
        try:
            caught: Exception | None = None
            try:
                await self.app(scope, inner_receive, ex)
            except Exception as error:
                if not stage.catches:
                    raise
                caught = error
            if caught is not None:
                # Answered after the except block, as the engine does: while answering, no
                # exception is being handled (an outer error stage tells fastmw's own answers
                # from a 5xx an app sends while it handles one, which it then re-raises).
                ex._live = 0  # the answer gets only the outer layers' start steps
                try:
                    propagates = await stage.answer(scope, inner_receive, ex, caught)
                except BaseException as failed:
                    if failed is not caught and failed.__context__ is None:
                        failed.__context__ = caught
                    raise
                if propagates:
                    raise caught
        except BaseException as error:
            raised = error
            raise
        finally:
            if stage.leave(ex, rx, scope, ex._states[0], raised) is not raised:
                raise AssertionError("the reference expects exit steps to return the exception they get")


def build_reference(layers: tuple[str, ...], app: Any, scenario: str, sink: Any, calls: list[Any]) -> Any:
    """The same layers as ``build``, each stage run by a ``NestedLayer``."""
    mw = reference_package()
    for position, layer in reversed(list(enumerate(layers))):
        name, options = layer_options(layer, position, scenario, sink, calls)
        built = make_layer(name, app, False, options, mw)
        stages = fused_stages(mw, built)
        if stages:
            assert len(stages) == 1
            app = NestedLayer(stages[0], app, built.other, mw)
        else:
            app = built
    return app


# --------------------------------------------------------------------------- one run


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = {
            key: getattr(record, key) for key in ("method", "path", "status", "request_id") if hasattr(record, key)
        }
        for key in ("query", "response_bytes", "request_bytes", "client_addr", "user_agent"):
            if hasattr(record, key):
                fields[key] = getattr(record, key)
        exc = record.exc_info[1] if record.exc_info else None
        self.records.append((record.name, record.levelname, record.msg, fields, repr(exc)))


def drive(coro: Any) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise Stop("the stack suspended")


def exception_chain(exc: BaseException | None) -> tuple[Any, ...] | None:
    """Type, message and the ``__context__`` chain's types: what an outer layer would see."""
    if exc is None:
        return None
    chain: list[str] = []
    inner = exc.__context__
    while inner is not None and len(chain) < 5:
        chain.append(type(inner).__name__)
        inner = inner.__context__
    return (type(exc).__name__, str(exc), tuple(chain))


def request_scope(scenario: str) -> dict[str, Any]:
    headers = [(b"user-agent", b"ua"), (b"x-request-id", RID), (b"x-correlation-id", CID)]
    if scenario.endswith("bad_id"):
        headers[1] = (b"x-request-id", BAD_ID)
    elif scenario == "bad_cid":
        headers[2] = (b"x-correlation-id", BAD_ID)
    if scenario.startswith("websocket"):
        return ws_scope(headers)
    path = "/health/db" if scenario == "excluded" else "/x"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"q=1",
        "headers": headers,
        "client": ("10.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }


def ws_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": list(headers),
        "client": ("10.0.0.1", 1234),
        "server": ("test", 80),
        "subprotocols": [],
        "state": {},
    }


def server_for(scenario: str, mask: bool = False) -> Server:
    """The server side of ``scenario``; ``mask`` hides what differs run to run (times, new ids)."""
    if scenario == "lifespan":
        return Server([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}], {"type": "lifespan.shutdown"})
    if scenario.startswith("websocket"):
        return Server([{"type": "websocket.connect"}], {"type": "websocket.disconnect", "code": 1000}, mask=mask)
    if scenario == "disconnect":
        return Server([{"type": "http.disconnect"}], {"type": "http.disconnect"}, mask=mask)
    body: list[Message] = [
        {"type": "http.request", "body": b"hello", "more_body": True},
        {"type": "http.request", "body": b"!"},
    ]
    return Server(body, {"type": "http.disconnect"}, fail_on_body=scenario == "send_oserror", mask=mask)


def run_case(layers: tuple[str, ...], scenario: str, mode: str, capture: LogCapture, mw: Any) -> tuple[Any, ...]:
    """One request; ``mode`` is "fused", "layers" (fuse=False) or "reference"."""
    if mode == "reference":
        mw = reference_package()
    seen: list[Any] = []
    calls: list[Any] = []
    stream = io.BytesIO()
    sink = None
    if scenario in ("ok_sink", "lifespan"):
        sink = mw.JsonLinesSink(stream, batch_lines=1000, flush_interval=1e9)
    if mode == "reference":
        app = build_reference(layers, make_app(scenario, seen, mw), scenario, sink, calls)
    else:
        app = build(layers, make_app(scenario, seen, mw), mode == "fused", scenario, sink, calls, mw)
    if scenario == "lifespan":
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    else:
        scope = request_scope(scenario)
    server = server_for(scenario, mask=True)
    capture.records.clear()
    context = contextvars.Context()
    outcome = None
    try:
        context.run(drive, app(scope, server.receive, server.send))
    except Stop:
        raise
    except BaseException as exc:
        outcome = exception_chain(exc)
    lines = []
    if sink is not None:
        sink.flush()
        for line in stream.getvalue().splitlines():
            record = json.loads(line)
            lines.append({key: value for key, value in record.items() if key not in VARYING_FIELDS})
    storage = mw._storage
    data = context.get(storage.REQUEST_CONTEXT, None)
    left = (dict(data) if data is not None else None, context.get(storage.CORRELATION_ID, None))
    return (server.sent, outcome, seen, list(capture.records), lines, calls, left, scope.get("headers"))


# --------------------------------------------------------------------------- the combinations


def stack_combinations() -> list[tuple[str, ...]]:
    """Every subset stack() can produce, without, inside and outside a context middleware."""
    combos = []
    for size in range(1, len(STACK_ORDER) + 1):
        for subset in itertools.combinations(STACK_ORDER, size):
            combos.append(subset)
            combos.append(("context_outer", *subset))
            combos.append((*subset, "context_inner"))
    return combos


def other_combinations() -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = list(itertools.permutations(("request_id", "timing", "access_log", "errors")))
    combos += [
        ("request_id", "timing", "custom", "access_log", "errors"),
        ("custom", "request_id", "errors"),
        ("access_log", "errors", "custom"),
        ("correlation_id", "context_inner", "timing", "access_log", "errors"),
        ("request_id_reject", "timing", "access_log", "errors"),
        ("access_log", "request_id_reject", "errors"),
        ("timing", "request_id_reject", "context_inner"),
        ("context_outer", "request_id_reject", "timing"),
        ("request_id", "timing", "access_log", "errors_quiet", "context_inner"),
        ("context_outer", "access_log", "errors_handler", "timing"),
        ("timing", "errors_handler", "context_inner"),
        ("errors", "access_log", "errors_quiet"),
        ("body_cache", "access_log", "body_cache"),
        ("timing", "timing", "request_id", "request_id"),
        ("context_outer", "context_inner"),
        ("access_log", "context_inner", "errors"),
        ("starlette_context", "request_id", "timing", "access_log", "errors"),
        ("request_id", "errors", "starlette_context"),
        ("timing", "starlette_context", "context_inner"),
        ("errors", "timing"),
        ("errors_quiet", "request_id"),
        ("timing", "errors_quiet", "context_inner"),
    ]
    return combos


COMBINATIONS = stack_combinations() + other_combinations()


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    handler = LogCapture()
    logger = logging.getLogger("fastmw")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def fusable_run(layers: tuple[str, ...]) -> int:
    """How many stages the outermost pipeline should hold (built inner first, like the code)."""
    current: list[str] = []
    for name in reversed(layers):
        if name == "custom":
            current = []
        elif name == "body_cache" and "body_cache" in current:
            current = [name]  # one receive recorder holds one body copy
        else:
            current = [name, *current]
    return 0 if layers[0] == "custom" else len(current)


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


# --------------------------------------------------------------------------- exceptions, as nested layers


def failing_send_case(mw: Any, mode: str) -> tuple[Any, ...]:
    """An app failing before its response, under errors and timing, on a send that fails."""

    async def failing_send(message: dict[str, Any]) -> None:
        raise OSError("client went away")

    if mode == "reference":
        mw = reference_package()
        app = build_reference(("timing", "errors"), make_app("error_before", [], mw), "error_before", None, [])
    else:
        fuse = mode == "fused"
        middleware = mw.middleware
        errors = middleware.ErrorMiddleware(make_app("error_before", [], mw), fuse=fuse)
        app = middleware.TimingMiddleware(errors, fuse=fuse)
    scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    try:
        contextvars.Context().run(drive, app(scope, server.receive, failing_send))
    except BaseException as exc:
        return exception_chain(exc)  # type: ignore[return-value]
    raise AssertionError("the send failure was swallowed")


@pytest.mark.parametrize("mode", ["fused", "layers"])
def test_failure_while_answering_is_chained_to_the_apps_error(mw: Any, mode: str) -> None:
    # As raised inside an ``except`` block of a nested error layer.
    assert failing_send_case(mw, mode) == ("OSError", "client went away", ("ValueError",))
    assert failing_send_case(mw, mode) == failing_send_case(mw, "reference")


class Abort(BaseException):
    """Not an ``Exception``: no fastmw hook swallows it."""


def test_a_failing_exit_step_replaces_the_exception_like_a_finally_block(mw: Any) -> None:
    results = {mode: failing_exit_case(mw, mode) for mode in ("fused", "layers", "reference")}
    outcome, calls, records, sent = results["fused"]
    # The callback's Abort replaces the app's ValueError; the outer access log still writes
    # its record and the error layer's 500 was sent.
    assert outcome[:2] == ("Abort", "callback")
    assert calls == [False] and records == [500] and sent == ["http.response.start", "http.response.body"]
    assert results["layers"][1:] == results["fused"][1:] == results["reference"][1:]
    assert results["layers"][0][:2] == results["reference"][0][:2]


def test_a_failing_exit_step_is_chained_like_a_finally_block(mw: Any) -> None:
    expected = failing_exit_case(mw, "reference")[0]
    assert expected == ("Abort", "callback", ("ValueError",))
    assert failing_exit_case(mw, "fused")[0] == expected
    assert failing_exit_case(mw, "layers")[0] == expected


def failing_exit_case(mw: Any, mode: str) -> tuple[Any, ...]:
    """A timing callback raising ``Abort`` while the app's ValueError propagates, under an access log."""
    calls: list[Any] = []
    stream = io.BytesIO()
    base = reference_package() if mode == "reference" else mw
    sink = base.JsonLinesSink(stream, batch_lines=1000, flush_interval=1e9)

    def abort(scope: Any, ttfb: Any, total: Any) -> None:
        calls.append(ttfb is None)
        raise Abort("callback")

    inner = make_app("error_before", [], base)
    fuse = mode == "fused"
    errors = base.ErrorMiddleware(inner, fuse=fuse)
    timing = base.TimingMiddleware(errors, callback=abort, fuse=fuse)
    app: Any = base.AccessLogMiddleware(timing, sink=sink, fuse=fuse)
    if mode == "reference":
        nested = NestedLayer(errors._stage, inner, inner, base)
        nested = NestedLayer(timing._stage, nested, nested, base)
        app = NestedLayer(app._stage, nested, nested, base)
    scope = request_scope("error_before")
    server = server_for("error_before")
    outcome = None
    try:
        contextvars.Context().run(drive, app(scope, server.receive, server.send))
    except BaseException as exc:
        outcome = exception_chain(exc)
    sink.flush()
    records = [json.loads(line)["status"] for line in stream.getvalue().splitlines()]
    return outcome, calls, records, [message["type"] for message in server.sent]


# --------------------------------------------------------------------------- refusals and shared responses


def test_a_shared_error_response_is_never_edited(mw: Any) -> None:
    # One Response answers every refused request: the start steps edit a copy of its headers.
    refusal = Response("bad", status_code=400, headers={"x-app": "1"})
    before = list(refusal.raw_headers)
    plugins = [mw.plugins.RequestIdPlugin(), mw.plugins.CorrelationIdPlugin()]
    context = mw.RawContextMiddleware(make_app("ok", [], mw), plugins=plugins, default_error_response=refusal)
    app = mw.RequestIdMiddleware(mw.TimingMiddleware(context))
    for index in range(3):
        scope = request_scope("bad_cid")
        scope["headers"][1] = (b"x-request-id", b"%032x" % index)
        server = server_for("bad_cid")
        contextvars.Context().run(drive, app(scope, server.receive, server.send))
        start = server.sent[0]
        assert start["status"] == 400
        # The outer stages' headers only: the refusing context stage echoes nothing.
        names = [name for name, _ in start["headers"]]
        assert names == [*(name for name, _ in before), b"x-process-time", b"server-timing", b"x-request-id"]
        assert dict(start["headers"])[b"x-request-id"] == b"%032x" % index
    assert refusal.raw_headers == before


# --------------------------------------------------------------------------- the 0.1 None-echo drift


def none_id_plugins(mw: Any) -> dict[str, Any]:
    """RequestIdPlugin subclasses whose value is None when no id is sent."""

    class NoneFromHooks(mw.plugins.RequestIdPlugin):  # type: ignore[misc]
        # Served by the core stage (a reader calling the overridden hooks).
        def get_new_uuid(self) -> Any:
            return None

        def validate_uuid(self, uuid_to_validate: Any) -> None:
            return None

    class NoneFromRequest(mw.plugins.RequestIdPlugin):  # type: ignore[misc]
        # Served by the Python layer (an awaited process_request).
        async def process_request(self, request: Any) -> Any:
            return None

    return {"hooks": NoneFromHooks, "process_request": NoneFromRequest}


def none_echo_case(mw: Any, plugin: str, middleware: str, wrapped: bool) -> tuple[Any, ...]:
    seen: list[Any] = []
    context_class = getattr(mw, middleware)
    app = context_class(make_app("ok", seen, mw), plugins=[none_id_plugins(mw)[plugin]()])
    if wrapped:
        app = mw.TimingMiddleware(app)
    scope = request_scope("ok")
    scope["headers"] = [(b"user-agent", b"ua")]
    server = server_for("ok")
    contextvars.Context().run(drive, app(scope, server.receive, server.send))
    echoed = [value for name, value in server.sent[0]["headers"] if name == b"x-request-id"]
    return echoed, seen[-1]["context"], len(fused_stages(mw, app))


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_echoes_no_header_alone_and_fused(mw: Any, middleware: str) -> None:
    alone = none_echo_case(mw, "hooks", middleware, wrapped=False)
    fused = none_echo_case(mw, "hooks", middleware, wrapped=True)
    assert alone == ([], {"X-Request-ID": None}, 1)
    assert fused == ([], {"X-Request-ID": None}, 2 if fuse_flag(mw) else 1)


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_from_an_awaited_hook_echoes_alike_alone_and_wrapped(mw: Any, middleware: str) -> None:
    # The awaited-hooks layer (in front of its own stage, no fusion) behaves the same whatever wraps it.
    alone = none_echo_case(mw, "process_request", middleware, wrapped=False)
    wrapped = none_echo_case(mw, "process_request", middleware, wrapped=True)
    assert alone[:2] == wrapped[:2]
    assert alone[1] == {"X-Request-ID": None}
    assert (alone[2], wrapped[2]) == (0, 1)


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_from_an_awaited_hook_echoes_no_header(mw: Any, middleware: str) -> None:
    assert none_echo_case(mw, "process_request", middleware, wrapped=False)[0] == []


def test_a_refusal_echoes_an_id_from_the_generator(mw: Any) -> None:
    app = build(("request_id_reject",), make_app("ok", [], mw), True, "bad_id", None, [], mw)
    server = server_for("bad_id")
    contextvars.Context().run(drive, app(request_scope("bad_id"), server.receive, server.send))
    assert server.sent[0]["status"] == 400
    assert dict(server.sent[0]["headers"])[b"x-request-id"] == FIXED_ID.encode()

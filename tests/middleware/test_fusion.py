"""Fusion: a fused pipeline behaves exactly like the same middlewares as nested layers.

The differential test builds every combination twice (fused, and with ``fuse=False``
on each middleware, i.e. one layer each) and demands identical sent messages
(headers in order), outcome, log records (minus durations), sink lines, what the
app saw and the context left behind.
"""

from __future__ import annotations

import contextvars
import gc
import io
import itertools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from starlette.responses import PlainTextResponse

from fastmw._impl import core
from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.middleware import (
    AccessLogMiddleware,
    BodyCacheMiddleware,
    ContextMiddleware,
    CorrelationIdMiddleware,
    ErrorMiddleware,
    RawContextMiddleware,
    RequestIdMiddleware,
    TimingMiddleware,
)
from fastmw.middleware._pipeline import FUSE, FusableMiddleware, Refuse, fused_stages
from fastmw.middleware.body_cache import cached_body
from fastmw.middleware.timing import current_timing
from fastmw.plugins import CorrelationIdPlugin, RequestIdPlugin
from fastmw.sink import JsonLinesSink
from fastmw.stack import stack

RID = b"0123456789abcdef0123456789abcdef"
CID = b"fedcba9876543210fedcba9876543210"
FIXED_ID = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb"
VARYING_HEADERS = (b"x-process-time", b"server-timing")
VARYING_FIELDS = ("duration_ms", "ttfb_ms", "time")
STACK_ORDER = ("request_id", "timing", "body_cache", "access_log", "errors")
HTTP_SCENARIOS = ("ok", "stream", "error_before", "error_after", "send_oserror", "disconnect", "bad_id")
SCENARIOS = (*HTTP_SCENARIOS, "excluded", "lifespan", "ok_sink", "websocket", "websocket_error", "websocket_deny")


class Stop(Exception):
    """A driver failure: the app suspended (nothing here should)."""


# --------------------------------------------------------------------------- the app and the server side


class Server:
    """The fake server: a receive queue and a send that records copies (or raises OSError)."""

    def __init__(self, incoming: list[dict[str, Any]], then: dict[str, Any], fail_on_body: bool = False) -> None:
        self.incoming = list(incoming)
        self.then = then
        self.fail_on_body = fail_on_body
        self.sent: list[Any] = []

    async def receive(self) -> dict[str, Any]:
        return self.incoming.pop(0) if self.incoming else dict(self.then)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_on_body and message["type"] == "http.response.body":
            raise OSError("client went away")
        copy = dict(message)
        if "headers" in copy:
            copy["headers"] = [(k, b"*" if k in VARYING_HEADERS else v) for k, v in copy["headers"]]
        self.sent.append(copy)


def observe(scope: dict[str, Any]) -> dict[str, Any]:
    """What the app can see of the middleware around it."""
    data = REQUEST_CONTEXT.get(None)
    body = cached_body()
    return {
        "context": dict(data) if data is not None else None,
        "correlation_id": CORRELATION_ID.get(),
        "timed": current_timing() is not None,
        "cached": tuple(body) if body is not None else None,
        "request_id_header": core.header_get(scope["headers"], b"x-request-id"),
    }


def make_app(scenario: str, seen: list[Any]) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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
        seen.append(observe(scope))
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
                seen.append(observe(scope))
                return
            if not message.get("more_body"):
                break
        seen.append(observe(scope))
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


def make_layer(name: str, app: Any, fuse: bool, options: dict[str, Any]) -> Any:
    if name == "request_id":
        return RequestIdMiddleware(app, generator=fixed_id, fuse=fuse, **options)
    if name == "correlation_id":
        return CorrelationIdMiddleware(app, generator=fixed_id, fuse=fuse, **options)
    if name == "timing":
        return TimingMiddleware(app, fuse=fuse, **options)
    if name == "body_cache":
        return BodyCacheMiddleware(app, max_bytes=3, fuse=fuse, **options)
    if name == "access_log":
        return AccessLogMiddleware(app, fuse=fuse, **options)
    if name == "errors":
        return ErrorMiddleware(app, fuse=fuse, **options)
    if name == "starlette_context":
        return ContextMiddleware(app, plugins=[RequestIdPlugin(), CorrelationIdPlugin()], fuse=fuse, **options)
    if name.startswith("context"):
        plugins = [RequestIdPlugin(), CorrelationIdPlugin()]
        return RawContextMiddleware(app, plugins=plugins, fuse=fuse, **options)
    if name == "custom":
        return HeaderAdder(app)
    raise AssertionError(name)


class HeaderAdder:
    """A user's own middleware: appends a header to the response start."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def adding(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-custom", b"1"))
            await send(message)

        await self.app(scope, receive, adding)


def build(
    layers: tuple[str, ...], app: Any, fuse: bool, scenario: str, sink: Any, calls: list[Any], offset: int = 0
) -> Any:
    """``layers`` outermost first (``offset``: the position of the first in the whole stack)."""
    for position, name in reversed(list(enumerate(layers, offset))):
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
        app = make_layer(name, app, fuse, options)
    return app


# --------------------------------------------------------------------------- an independent nested reference


class OuterSend:
    """What an unfused error layer sends through: the outer ``send`` (via a fresh recorder),
    with the started/accepted/closed state of the layer's own recorder."""

    def __init__(self, own: Any, send: Any) -> None:
        self.own = own
        self.fresh = core.SendRecorder(send)

    def __getattr__(self, name: str) -> Any:
        if name in ("started", "accepted"):
            return getattr(self.own, name) or getattr(self.fresh, name)
        if name == "close_code":
            return self.own.close_code if self.own.close_code is not None else self.fresh.close_code
        raise AttributeError(name)

    def __call__(self, message: dict[str, Any]) -> Any:
        return self.fresh(message)


class NestedLayer:
    """One stage as a classic nested layer (own recorders, try/except/finally), written
    independently of the fused engine: the reference the engine is compared with."""

    def __init__(self, stage: Any, app: Any) -> None:
        self.stage = stage
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        stage = self.stage
        kind = scope["type"]
        if kind not in ("http", "websocket") or (stage._http_only and kind != "http") or not stage._applies(scope):
            await self.app(scope, receive, send)
            return
        recorder = core.SendRecorder(send) if stage._wraps_send else None
        receiver = core.ReceiveRecorder(receive, stage._body_limit) if stage._wraps_receive else None
        state = stage._stage_enter(scope, recorder, receiver)
        if type(state) is Refuse:
            await state.app(scope, receive, send)
            return
        if recorder is not None and stage._starts:
            recorder.on_start = lambda rec, message: stage._stage_start(state, rec, message)
        raised: BaseException | None = None
        try:
            await self.app(scope, receiver or receive, recorder or send)
        except BaseException as exc:
            raised = exc
            if stage._catches and isinstance(exc, Exception):
                if not await stage._stage_handle(scope, receive, OuterSend(recorder, send), exc):
                    raised = None
        finally:
            stage._stage_exit(scope, recorder, receiver, state, raised)
        if raised is not None:
            raise raised


def build_reference(layers: tuple[str, ...], app: Any, scenario: str, calls: list[Any]) -> Any:
    """The same layers as ``build``, each stage run by ``NestedLayer``."""
    for position, name in reversed(list(enumerate(layers))):
        built = build((name,), app, False, scenario, None, calls, offset=position)
        app = NestedLayer(built, app) if fused_stages(built) else built
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


def run_case(
    layers: tuple[str, ...], scenario: str, fuse: bool, capture: LogCapture, reference: bool = False
) -> tuple[Any, ...]:
    seen: list[Any] = []
    calls: list[Any] = []
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=1000, flush_interval=1e9) if scenario in ("ok_sink", "lifespan") else None
    if reference:
        app = build_reference(layers, make_app(scenario, seen), scenario, calls)
    else:
        app = build(layers, make_app(scenario, seen), fuse, scenario, sink, calls)
    request_headers = [(b"user-agent", b"ua"), (b"x-request-id", RID), (b"x-correlation-id", CID)]
    if scenario == "bad_id":
        request_headers[1] = (b"x-request-id", b"not-a-uuid")
    body = [{"type": "http.request", "body": b"hello", "more_body": True}, {"type": "http.request", "body": b"!"}]
    path = "/health/db" if scenario == "excluded" else "/x"
    if scenario == "lifespan":
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        server = Server([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}], {"type": "lifespan.shutdown"})
    elif scenario.startswith("websocket"):
        scope = ws_scope(request_headers)
        server = Server([{"type": "websocket.connect"}], {"type": "websocket.disconnect", "code": 1000})
    else:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"q=1",
            "headers": request_headers,
            "client": ("10.0.0.1", 1234),
            "server": ("test", 80),
            "state": {},
        }
        incoming = [{"type": "http.disconnect"}] if scenario == "disconnect" else body
        server = Server(incoming, {"type": "http.disconnect"}, fail_on_body=scenario == "send_oserror")
    capture.records.clear()
    context = contextvars.Context()
    outcome = None
    try:
        context.run(drive, app(scope, server.receive, server.send))
    except Stop:
        raise
    except BaseException as exc:
        outcome = (type(exc).__name__, str(exc))
    lines = []
    if sink is not None:
        sink.flush()
        for line in stream.getvalue().splitlines():
            record = json.loads(line)
            lines.append({key: value for key, value in record.items() if key not in VARYING_FIELDS})
    left = (context.get(REQUEST_CONTEXT, None), context.get(CORRELATION_ID, None))
    left = (dict(left[0]) if left[0] is not None else None, left[1])
    return (server.sent, outcome, seen, list(capture.records), lines, calls, left, scope.get("headers"))


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
        ("request_id", "timing", "access_log", "errors_quiet", "context_inner"),
        ("context_outer", "access_log", "errors_handler", "timing"),
        ("errors", "access_log", "errors_quiet"),
        ("body_cache", "access_log", "body_cache"),
        ("timing", "timing", "request_id", "request_id"),
        ("access_log", "context_inner", "errors"),
        ("starlette_context", "request_id", "timing", "access_log", "errors"),
        ("request_id", "errors", "starlette_context"),
        ("errors", "timing"),
        ("errors_quiet", "request_id"),
        ("timing", "errors_quiet", "context_inner"),
    ]
    return combos


COMBINATIONS = stack_combinations() + other_combinations()


@pytest.fixture
def capture() -> Any:
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
    """How many layers the outermost pipeline should hold (built inner first, like the code)."""
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
        fused = run_case(layers, scenario, True, capture)
        nested = run_case(layers, scenario, False, capture)
        assert fused == nested, scenario
        seen_any = seen_any or bool(fused[0])
        if scenario not in ("lifespan", "ok_sink"):
            # ... and both equal an independent nested composition of the same steps.
            assert fused == run_case(layers, scenario, False, capture, reference=True), scenario
    assert seen_any


@pytest.mark.parametrize("layers", COMBINATIONS, ids="-".join)
def test_combinations_really_fuse(layers: tuple[str, ...]) -> None:
    app = build(layers, make_app("ok", []), True, "ok", None, [])
    unfused = build(layers, make_app("ok", []), False, "ok", None, [])
    expected = fusable_run(layers) if FUSE else min(1, fusable_run(layers))
    assert len(fused_stages(app)) == expected
    assert len(fused_stages(unfused)) == min(1, fusable_run(layers))


# --------------------------------------------------------------------------- one layer per request


def test_full_stack_is_one_layer_per_request() -> None:
    frames: list[int] = []
    wrappers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        frame = sys._getframe().f_back
        layers = 0
        while frame is not None:
            if frame.f_code is FusableMiddleware.__call__.__code__:
                layers += 1
            frame = frame.f_back
        frames.append(layers)
        wrappers.append((send, receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    plugins = [RequestIdPlugin(), CorrelationIdPlugin()]
    wrapped = RawContextMiddleware(stack(app, body_cache=True), plugins=plugins)
    assert len(fused_stages(wrapped)) == (6 if FUSE else 1)
    server = Server([{"type": "http.request", "body": b"x"}], {"type": "http.disconnect"})
    scope = {"type": "http", "path": "/", "headers": [(b"x-request-id", RID)], "method": "GET", "state": {}}
    contextvars.Context().run(drive, wrapped(scope, server.receive, server.send))
    if FUSE:
        assert frames == [1]
        send, receive = wrappers[0]
        # One send wrapper and one receive wrapper, straight onto the server's callables.
        assert type(send) is core.SendRecorder and send.send == server.send
        assert type(receive) is core.ReceiveRecorder and receive.receive == server.receive
    assert server.sent[0]["status"] == 200
    names = [name for name, _ in server.sent[0]["headers"]]
    assert names == [b"x-process-time", b"server-timing", b"x-request-id", b"x-request-id", b"x-correlation-id"]


def test_starlette_middleware_list_and_add_middleware_fuse() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    listed = Starlette(
        middleware=[Middleware(RequestIdMiddleware), Middleware(TimingMiddleware), Middleware(ErrorMiddleware)]
    )
    added = Starlette()
    added.add_middleware(ErrorMiddleware)
    added.add_middleware(TimingMiddleware)
    added.add_middleware(RequestIdMiddleware)
    for app in (listed, added):
        built = app.build_middleware_stack()
        outer = built.app  # inside Starlette's ServerErrorMiddleware
        assert isinstance(outer, RequestIdMiddleware)
        assert [type(stage).__name__ for stage in fused_stages(outer)] == (
            ["RequestIdMiddleware", "TimingMiddleware", "ErrorMiddleware"] if FUSE else ["RequestIdMiddleware"]
        )


def test_inner_instance_stays_usable_and_app_reassignment_rebuilds() -> None:
    inner = TimingMiddleware(make_app("ok", []))
    outer = RequestIdMiddleware(inner)
    assert fused_stages(inner) == (inner,)
    other = make_app("ok", [])
    inner.app = other
    assert inner._terminal is other
    outer.app = inner
    assert len(fused_stages(outer)) == (2 if FUSE else 1)


def test_custom_hooks_stay_unfused_layers() -> None:
    class Custom(RawContextMiddleware):
        async def set_context(self, request: Any) -> dict[str, Any]:
            return {"a": 1}

    inner = TimingMiddleware(make_app("ok", []))
    custom = Custom(inner)
    assert fused_stages(custom) == ()
    outer = RequestIdMiddleware(custom)
    assert fused_stages(outer) == (outer,)


def test_no_fuse_environment_switch() -> None:
    code = (
        "from fastmw.middleware._pipeline import FUSE, fused_stages\n"
        "from fastmw.middleware import RequestIdMiddleware, TimingMiddleware\n"
        "app = RequestIdMiddleware(TimingMiddleware(lambda s, r, c: None))\n"
        "print(FUSE, len(fused_stages(app)))\n"
    )
    env = {**os.environ, "FASTMW_NO_FUSE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1"]
    env["FASTMW_NO_FUSE"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "2"]


def test_generated_id_fast_path_matches_the_header_it_writes(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []
    app = stack(make_app("ok", seen), access_log=False)
    original = [(b"user-agent", b"ua")]
    scope = {"type": "http", "path": "/", "method": "GET", "headers": original, "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    contextvars.Context().run(drive, app(scope, server.receive, server.send))
    echoed = dict(server.sent[0]["headers"])[b"x-request-id"]
    assert core.is_uuid4(echoed.decode()) and len(echoed) == 32
    assert seen[0]["request_id_header"] == echoed == seen[0]["correlation_id"].encode()
    assert scope["headers"] == [(b"user-agent", b"ua"), (b"x-request-id", echoed)]
    assert original == [(b"user-agent", b"ua")]  # the server's list is not mutated
    # A max_length too short for the core's ids keeps the slow path and its warning.
    short = RequestIdMiddleware(make_app("ok", []), max_length=16)
    scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    with caplog.at_level(logging.WARNING, logger="fastmw.request_id"):
        contextvars.Context().run(drive, short(scope, server.receive, server.send))
    assert "unusable id" in caplog.text


@pytest.mark.parametrize("scenario", ["ok", "error_before", "error_after", "bad_id", "websocket_error"])
def test_no_reference_cycles_per_request(scenario: str, capture: LogCapture) -> None:
    """A request leaves no garbage for the cycle collector (the middleware are built once)."""
    layers = ("context_outer", "request_id", "timing", "body_cache", "access_log", "errors")
    seen: list[Any] = []
    app = build(layers, make_app(scenario, seen), True, scenario, None, [])
    headers = [(b"x-request-id", b"not-a-uuid" if scenario == "bad_id" else RID), (b"x-correlation-id", CID)]

    def one() -> None:
        if scenario.startswith("websocket"):
            scope = ws_scope(headers)
            server = Server([{"type": "websocket.connect"}], {"type": "websocket.disconnect", "code": 1000})
        else:
            scope = {"type": "http", "path": "/x", "method": "GET", "headers": list(headers), "state": {}}
            server = Server([{"type": "http.request", "body": b"hi"}], {"type": "http.disconnect"})
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


@pytest.mark.parametrize("fuse", [True, False])
def test_failure_while_answering_is_chained_to_the_apps_error(fuse: bool) -> None:
    async def failing_send(message: dict[str, Any]) -> None:
        raise OSError("client went away")

    app = TimingMiddleware(ErrorMiddleware(make_app("error_before", []), fuse=fuse), fuse=fuse)
    scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    with pytest.raises(OSError) as info:
        contextvars.Context().run(drive, app(scope, server.receive, failing_send))
    # As raised inside an ``except`` block of a nested error layer.
    assert isinstance(info.value.__context__, ValueError)

"""The fusion tests' harness: the scenarios, a fake server, the app under test, stacks built
fused, unfused (``fuse=False``) and as an independent nested reference, and one driven request.

Each middleware is built on a core twin (the ``Twin`` of ``tests/conftest.py``: one package,
the middleware layer bound to each core). The nested reference runs each stage by hand
(own recorders, try/except/finally) over the pure twin's stage steps.
"""

from __future__ import annotations

import contextvars
import io
import itertools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import PlainTextResponse

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
            try:
                left = stage.leave(ex, rx, scope, ex._states[0], raised)
            except Exception as failure:
                # A failure the stage drops (reported by it) leaves the request's outcome as it was.
                if not stage.drops_failure(failure):
                    raise
                left = raised
            if left is not raised:
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

"""Leak script: runs the core's operations and its request engine many times in one
process and reports RSS growth after warm-up plus the reference counts of probe objects
(request headers, header name and value, a context dict, the pipelines, stages and app)
before and after.

Each round: header operations, a bare SendRecorder, context set/reset, ids, and requests
through ``Pipeline``s running every stage: served, refused by the request-id stage and by
a context reader, failing before and after the response started (answered by the error
stage), a websocket session and a lifespan scope. Requests are driven without an event
loop (nothing in them suspends).

Usage: python -m tests.leak_scripts.core_ops <compiled|pure> <iterations>
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import sys
from typing import Any

from fastmw.errors import MiddleWareValidationError
from fastmw.types import Message, Scope
from tests.leak_scripts._measure import report_rounds

TWIN, ITERATIONS = sys.argv[1], int(sys.argv[2])
core = importlib.import_module("fastmw._core" if TWIN == "compiled" else "fastmw._core_py")

NAME = b"x-request-id"
VALUE = b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d"
HEADERS = [(b"host", b"example.com"), (b"user-agent", b"probe"), (NAME, VALUE), (b"x-correlation-id", VALUE)]
BAD_ID = [(b"host", b"example.com"), (NAME, b"not a safe id!")]
CONTEXT: dict[str, Any] = {"probe": 1}
APP_HEADERS = [(b"content-type", b"text/plain")]
BODY: list[Message] = [
    {"type": "http.request", "body": b"abc", "more_body": True},
    {"type": "http.request", "body": b"de"},
]


class Boom(Exception):
    """The app's failure in the failing requests."""


class Sink:
    """The JSON-lines sink's interface; drops the records (they are built all the same)."""

    def write_record(self, keys: Any, values: Any) -> None:
        return None


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/boom":
        raise Boom("before the response")
    # The app's own header list is shared by every request (as a Starlette Response's is).
    await send({"type": "http.response.start", "status": 200, "headers": APP_HEADERS})
    await send({"type": "http.response.body", "body": b"ok", "more_body": True})
    if path == "/late":
        raise Boom("after the response started")
    await send({"type": "http.response.body", "body": b"!"})


async def reject(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 400, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def refuse(scope: Scope, receive: Any, send: Any, exc: BaseException) -> None:
    await reject(scope, receive, send)


def validated(headers: Any) -> Any:
    value = core.header_get(headers, b"x-validated")
    if value is not None:
        raise MiddleWareValidationError("refused")
    return value


def quiet_logger(name: str) -> logging.Logger:
    """An enabled logger whose records go nowhere (so they are still built)."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


quiet_logger("fastmw")
STAGES = [
    core.RequestIdStage(NAME, "X-Request-ID", reject=reject, refuse_invalid=True, validator=core.is_safe_id),
    core.TimingStage("x-process-time", callback=lambda scope, ttfb, total: None),
    core.BodyCacheStage(4),
    core.AccessLogStage(quiet_logger("fastmw.probe.access"), logging.INFO),
    core.AccessLogStage(quiet_logger("fastmw.probe.sink"), logging.INFO, sink=Sink()),
    core.ErrorStage(reraise=False),
    core.ContextStage(
        [
            ("X-Request-ID", core.UUIDHeaderReader(NAME)),
            ("cid", core.UUIDHeaderReader("x-correlation-id")),
            ("v", validated),
            ("ua", core.HeaderReader("user-agent")),
        ],
        [("X-Request-ID", NAME), ("cid", "x-correlation-id")],
        refuse=refuse,
        request_id=0,
    ),
]
FULL = core.Pipeline(app, STAGES)
# The context stage outermost: it decides the request id, the request-id stage reuses it.
CONTEXT_FIRST = core.Pipeline(app, [STAGES[-1], *STAGES[:-1]])
RERAISING = core.Pipeline(app, [core.TimingStage(), core.ErrorStage()])
PROBES = {
    "name": NAME,
    "value": VALUE,
    "headers": HEADERS,
    "app_headers": APP_HEADERS,
    "context": CONTEXT,
    "app": app,
    "pipeline": FULL,
    "stage": STAGES[0],
    "context_stage": STAGES[-1],
}


def scope(path: str, headers: list[Any], kind: str = "http") -> dict[str, Any]:
    return {"type": kind, "path": path, "method": "GET", "headers": headers, "client": ("10.0.0.1", 1), "state": {}}


def serve(pipeline: Any, request: dict[str, Any], incoming: list[Message]) -> None:
    """One request driven without an event loop."""
    queue = list(incoming)

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    coro = pipeline(request, receive, send)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the pipeline suspended")


def requests() -> None:
    serve(FULL, scope("/ok", HEADERS), BODY)
    serve(CONTEXT_FIRST, scope("/ok", HEADERS), BODY)
    serve(FULL, scope("/ok", [(b"host", b"h")]), BODY)  # every id generated
    serve(FULL, scope("/bad-id", BAD_ID), BODY)  # refused by the request-id stage
    serve(FULL, scope("/refused", [*HEADERS, (b"x-validated", b"no")]), BODY)  # refused by a reader
    serve(FULL, scope("/boom", HEADERS), BODY)  # a 500 from the error stage
    try:
        serve(FULL, scope("/late", HEADERS), BODY)  # cut short: never a second start
    except Boom:
        pass
    try:
        serve(RERAISING, scope("/boom", HEADERS), BODY)
    except Boom:
        pass
    serve(FULL, scope("/ws", HEADERS, "websocket"), [{"type": "websocket.connect"}])
    serve(FULL, {"type": "lifespan", "state": {}}, [{"type": "lifespan.startup"}])


def one_round() -> None:
    core.header_get(HEADERS, NAME)
    core.header_get(HEADERS, "User-Agent")
    core.header_getlist(HEADERS, NAME)
    core.header_contains(HEADERS, b"missing")
    work = list(HEADERS)
    core.header_set(work, "X-Request-ID", VALUE)
    core.header_append(work, "set-cookie", "a=1")
    core.header_setdefault(work, "x-a", "1")
    core.add_vary_header(work, "Origin")
    core.header_delete(work, "set-cookie")
    core.header_items(work)
    try:
        core.header_set(work, "x-bad", "a\r\nb")
    except ValueError:
        pass
    try:
        core.header_get([(1, 2)], NAME)
    except TypeError:
        pass
    view = core.MutableHeaders(raw=work)
    view["x-b"] = "2"
    _ = view.get("x-b")
    recorder = core.SendRecorder(lambda message: None)  # its results are never awaited here
    recorder({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    recorder({"type": "http.response.body", "body": b"ok"})
    try:
        recorder({"type": "http.response.start", "status": 200})
    except RuntimeError:
        pass
    token = core.context_set(CONTEXT)
    proxy = core._Context()
    _ = proxy["probe"], proxy.get("x"), "probe" in proxy, len(proxy), repr(proxy)
    core.context_reset(token)
    try:
        core.context_get()
    except RuntimeError:
        pass
    core.new_request_id()
    core.is_uuid4(VALUE.decode())
    core.is_uuid("{" + VALUE.decode() + "}")
    core.is_safe_id(VALUE.decode())
    core.format_fixed(0.0123, 4)
    core.error_body(VALUE.decode())
    requests()


def main() -> None:
    context = contextvars.copy_context()
    report_rounds(TWIN, ITERATIONS, lambda: context.run(one_round), PROBES)


if __name__ == "__main__":
    main()

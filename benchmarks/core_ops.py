"""Core operations timed per call, compiled twin vs pure twin (``fastmw._core`` / ``fastmw._core_py``).

Each factory takes a core module and returns ``run(count)``, which performs the
operation ``count`` times and returns the elapsed seconds. Loop and call overhead
is included in every row; the ``(empty loop)`` row shows how much that is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import repeat
from time import perf_counter
from types import ModuleType
from typing import Any

from benchmarks._driver import REQUEST_HEADERS, REQUEST_ID

Run = Callable[[int], float]
RESPONSE_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")]
CONTEXT_KEY = "X-Request-ID"


def _timed(call: Callable[[], Any]) -> Run:
    def run(count: int) -> float:
        start = perf_counter()
        for _ in repeat(None, count):
            call()
        return perf_counter() - start

    return run


def empty_loop(core: ModuleType) -> Run:
    return _timed(lambda: None)


def header_get(core: ModuleType) -> Run:
    get, headers = core.header_get, list(REQUEST_HEADERS)
    return _timed(lambda: get(headers, b"x-request-id"))


def header_set(core: ModuleType) -> Run:
    # Replaces the existing entry in place, so the list stays the same size across calls.
    set_, headers = core.header_set, [*REQUEST_HEADERS, *RESPONSE_HEADERS]
    return _timed(lambda: set_(headers, b"content-type", b"application/json"))


def header_append(core: ModuleType) -> Run:
    append, headers = core.header_append, list(RESPONSE_HEADERS)

    def call() -> None:
        append(headers, b"x-request-id", REQUEST_ID)
        del headers[-1]  # keep the list the typical size

    return _timed(call)


def send_recorder(core: ModuleType) -> Run:
    """Wrap a send, pass a response start and a final body (no stage edits the start)."""
    recorder_type = core.SendRecorder

    def send(message: dict[str, Any]) -> None:
        return None

    def call() -> None:
        recorder = recorder_type(send)
        recorder({"type": "http.response.start", "status": 200, "headers": list(RESPONSE_HEADERS)})
        recorder({"type": "http.response.body", "body": b"ok"})

    return _timed(call)


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: dict[str, Any]) -> None:
    return None


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": list(RESPONSE_HEADERS)})
    await send({"type": "http.response.body", "body": b"ok"})


def pipeline_once(pipeline: Any, send: Callable[[dict[str, Any]], Any] = _discard) -> None:
    """One request through ``pipeline``, driven without an event loop."""
    scope = {"type": "http", "path": "/", "method": "GET", "headers": list(REQUEST_HEADERS), "state": {}}
    try:
        pipeline(scope, _receive, send).send(None)
    except StopIteration:
        return
    raise AssertionError("the pipeline suspended")  # the sync driver needs a request that never waits


def request_id_pipeline(core: ModuleType) -> Any:
    return core.Pipeline(_app, [core.RequestIdStage(b"x-request-id", CONTEXT_KEY)])


def timing_pipeline(core: ModuleType) -> Any:
    return core.Pipeline(_app, [core.TimingStage(b"x-process-time")])


def stack_pipeline(core: ModuleType) -> Any:
    """Request id, timing, access log (logger disabled), errors and the request context."""
    logger = logging.getLogger("fastmw.benchmarks.core_ops")
    logger.disabled = True
    readers = [
        (CONTEXT_KEY, core.UUIDHeaderReader(b"x-request-id")),
        ("cid", core.UUIDHeaderReader(b"x-correlation-id")),
    ]
    stages = [
        core.RequestIdStage(b"x-request-id", CONTEXT_KEY),
        core.TimingStage(b"x-process-time"),
        core.AccessLogStage(logger, logging.INFO),
        core.ErrorStage(),
        core.ContextStage(readers, [(CONTEXT_KEY, b"x-request-id"), ("cid", b"x-correlation-id")], request_id=0),
    ]
    return core.Pipeline(_app, stages)


# The engine's rows: one request through each of these pipelines.
PIPELINES: dict[str, Callable[[ModuleType], Any]] = {
    "Pipeline request: RequestIdStage": request_id_pipeline,
    "Pipeline request: TimingStage": timing_pipeline,
    "Pipeline request: five stages": stack_pipeline,
}


def _pipeline_op(build: Callable[[ModuleType], Any]) -> Callable[[ModuleType], Run]:
    def factory(core: ModuleType) -> Run:
        pipeline = build(core)
        return _timed(lambda: pipeline_once(pipeline))

    return factory


def context_set_reset(core: ModuleType) -> Run:
    set_, reset = core.context_set, core.context_reset
    return _timed(lambda: reset(set_({})))


def context_get(core: ModuleType) -> Run:
    get = core.context_get
    return _inside_context(core, lambda: get())


def context_getitem(core: ModuleType) -> Run:
    context = core._Context()
    return _inside_context(core, lambda: context[CONTEXT_KEY])


def _inside_context(core: ModuleType, call: Callable[[], Any]) -> Run:
    inner = _timed(call)

    def run(count: int) -> float:
        token = core.context_set({CONTEXT_KEY: REQUEST_ID.decode()})
        try:
            return inner(count)
        finally:
            core.context_reset(token)

    return run


def new_request_id(core: ModuleType) -> Run:
    return _timed(core.new_request_id)


def is_uuid4(core: ModuleType) -> Run:
    check, value = core.is_uuid4, REQUEST_ID.decode()
    return _timed(lambda: check(value))


OPS: dict[str, Callable[[ModuleType], Run]] = {
    "(empty loop)": empty_loop,
    "header_get": header_get,
    "header_set": header_set,
    "header_append": header_append,
    "SendRecorder start+body": send_recorder,
    **{name: _pipeline_op(build) for name, build in PIPELINES.items()},
    "context_set+reset": context_set_reset,
    "context_get": context_get,
    "_Context[key]": context_getitem,
    "new_request_id": new_request_id,
    "is_uuid4": is_uuid4,
}


def twins() -> dict[str, ModuleType | None]:
    """``{"compiled": fastmw._core or None, "pure": fastmw._core_py}``."""
    from fastmw import _core_py

    try:
        from fastmw import _core
    except ImportError:
        return {"compiled": None, "pure": _core_py}
    return {"compiled": _core, "pure": _core_py}

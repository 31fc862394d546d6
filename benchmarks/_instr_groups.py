"""The groups of ``make bench-instructions``: one fastmw side and one reference each.

Every side is built through fastmw's public API only (``fastmw.RequestIdMiddleware(app)``,
``fastmw.stack(app)``, ``fastmw.plugins``, ``fastmw.JsonLinesSink``), so the table keeps
working while the core is rewritten. A fastmw side runs twice, in a child process with the
compiled core and in one with ``FASTMW_NO_EXTENSIONS=1``. Each side names the response
headers it must send and, where a stack's work is invisible in the response (an error
handler, a log record, a JSON line), a ``verify`` that proves on separate instances that the
work is really done. A stack that fails a check fails the run.

``DELTAS`` measure what one stage adds: two fastmw sides, the same request (with the
headers that stage reads), with the stage and without, compiled and pure.

``FLOORS`` are not fastmw: tiny compiled layers (``_floors.pyx``) that pass requests through,
measured once each, side by side, for what any compiled layer costs before it does any work.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks import WITH_SENTRY, _driver, _hand, _instr_floors, _instr_metrics, init_sentry, stacks
from benchmarks._driver import SENT_PARENT_ID, SENT_TRACE_ID, TRACE_HEADERS, TRACESTATE, ASGIApp

QUERY_STRING = b"page=2&sort=name"
REQUEST_ID = {b"x-request-id": _driver.REQUEST_ID}
BOTH_IDS = {**REQUEST_ID, b"x-correlation-id": _driver.CORRELATION_ID}
TIMING = {b"server-timing": None}
FASTMW_ERROR_LOGGER = "fastmw.error"

Expect = Mapping[bytes, bytes | None]  # response header -> exact value (None: present)
Build = Callable[[ASGIApp], ASGIApp]
Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per side
class Side:
    """One measured stack: how to build it around the inner app and how to tell it works."""

    key: str
    label: str
    build: Build
    expect: Expect
    quiet: tuple[str, ...] = ()  # loggers disabled before building the measured stack
    verify: Callable[[], list[str]] | None = None  # raises if broken; returns warnings
    extra_headers: Headers = ()  # sent after the bench request's headers

    @property
    def is_fastmw(self) -> bool:
        return self.key.startswith("fastmw")


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    fastmw: Side
    reference: Side
    # The bound on fastmw compiled / reference (overheads over bare); None: compared only.
    target: float | None


@dataclass(frozen=True)
class Delta:
    """What one stage adds: ``base`` and ``with_stage`` get the same request, compiled and pure."""

    key: str
    title: str
    base: Side
    with_stage: Side
    budget: int  # instructions per request the stage may add (fastmw compiled)


@dataclass(frozen=True)
class Floor:
    """Design floors: sides that are not fastmw, each measured once, with no target."""

    key: str
    title: str
    sides: tuple[Side, ...]


# --------------------------------------------------------------------------- requests


def request_scope(extra_headers: Headers = ()) -> dict[str, Any]:
    """The measured request: GET / with a small query string, valid request/correlation ids and
    a side's extra headers."""
    scope = _driver.new_scope()
    scope["query_string"] = QUERY_STRING
    if extra_headers:
        scope["headers"] += extra_headers
    return scope


async def request(app: ASGIApp, capture: _driver.Capture, extra_headers: Headers = ()) -> None:
    await app(request_scope(extra_headers), _driver.Receive(), capture)


def answer(app: ASGIApp, extra_headers: Headers = ()) -> _driver.Capture:
    """One request on the loop driver's persistent loop, with everything sent captured."""
    capture = _driver.Capture()
    _driver.loop().run_until_complete(request(app, capture, extra_headers))
    return capture


def check_answer(capture: _driver.Capture, expect: Expect, status: int = 200, body: bytes | None = b"ok") -> None:
    """Raise unless the captured response has this status, body and headers."""
    if capture.status != status:
        raise AssertionError(f"expected one response start with status {status}, got {capture.messages!r}")
    if body is not None and capture.body != body:
        raise AssertionError(f"expected body {body!r}, got {capture.body!r}")
    headers = capture.headers
    for name, value in expect.items():
        got = headers.get(name)
        if got is None:
            raise AssertionError(f"response header {name!r} missing; headers: {headers!r}")
        if value is not None and got != value:
            raise AssertionError(f"response header {name!r} is {got!r}, expected {value!r}")


# --------------------------------------------------------------------------- fastmw, public API only


def _fm() -> Any:
    import fastmw

    return fastmw


def _fastmw_five(app: ASGIApp) -> ASGIApp:
    fm = _fm()
    return stacks._fastmw_five(
        app,
        fm.RequestIdMiddleware,
        fm.AccessLogMiddleware,
        fm.TimingMiddleware,
        fm.ErrorMiddleware,
        fm.RawContextMiddleware,
        fm.plugins.RequestIdPlugin,
        fm.plugins.CorrelationIdPlugin,
    )


def _fastmw_stack(app: ASGIApp) -> ASGIApp:
    return _fm().stack(app)  # type: ignore[no-any-return]


def _fastmw_stack_traced(app: ASGIApp) -> ASGIApp:
    # OpenTelemetry is installed in the bench venv: kept out, the stage reads the headers only.
    return _fm().stack(app, trace_context={"opentelemetry": False})  # type: ignore[no-any-return]


def _fastmw_stack_sentry(app: ASGIApp) -> ASGIApp:
    init_sentry()
    return _fastmw_stack(app)


def _asgi_correlation_id_sentry(app: ASGIApp) -> ASGIApp:
    init_sentry()
    return stacks.asgi_correlation_id(app)


def _fastmw_request_id(app: ASGIApp) -> ASGIApp:
    return _fm().RequestIdMiddleware(app)  # type: ignore[no-any-return]


def _fastmw_timing(app: ASGIApp) -> ASGIApp:
    return _fm().TimingMiddleware(app)  # type: ignore[no-any-return]


def _fastmw_error(app: ASGIApp) -> ASGIApp:
    return _fm().ErrorMiddleware(app)  # type: ignore[no-any-return]


def _fastmw_access_log(app: ASGIApp) -> ASGIApp:
    return _fm().AccessLogMiddleware(app)  # type: ignore[no-any-return]


def _logging_to_null(build: Build, logger_name: str) -> Build:
    """``build``, with ``logger_name`` enabled at INFO into a NullHandler only."""

    def built(app: ASGIApp) -> ASGIApp:
        stacks.set_logger(logger_name, "null")
        return build(app)

    return built


def _fastmw_context(app: ASGIApp) -> ASGIApp:
    fm = _fm()
    return fm.RawContextMiddleware(  # type: ignore[no-any-return]
        app, plugins=[fm.plugins.RequestIdPlugin(), fm.plugins.CorrelationIdPlugin()]
    )


def _json_lines_sink(stream: Any) -> Any:
    # The sink may move (fastmw.sink); the top-level name is the one to keep.
    return getattr(_fm(), "JsonLinesSink")(stream)  # noqa: B009


def _fastmw_json_sink(app: ASGIApp, sink: Any = None) -> ASGIApp:
    if sink is None:
        sink = _json_lines_sink(_hand.devnull_binary())
    return _fm().AccessLogMiddleware(app, sink=sink)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- verifications


async def _boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("boom (bench-instructions check)")


def _verify_error(build: Build) -> Callable[[], list[str]]:
    """The error middleware really turns an exception before the response into a 500."""

    def verify() -> list[str]:
        logging.disable(logging.CRITICAL)  # the middlewares log the traceback
        capture = _driver.Capture()
        try:
            _driver.loop().run_until_complete(request(build(_boom), capture))
        except RuntimeError:
            pass  # fastmw re-raises after sending the 500 (reraise=True), as servers expect
        finally:
            logging.disable(logging.NOTSET)
        check_answer(capture, {}, status=500, body=None)
        return []

    return verify


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _verify_logs(build: Build, logger_name: str) -> Callable[[], list[str]]:
    """With its logger enabled, the access log writes exactly one record per request."""

    def verify() -> list[str]:
        handler = _Records()
        with stacks.saved_loggers():
            logger = logging.getLogger(logger_name)
            logger.disabled = False
            logger.setLevel(logging.INFO)
            logger.propagate = False
            logger.handlers = [handler]
            check_answer(answer(build(stacks.raw_app)), {})
        if len(handler.records) != 1:
            raise AssertionError(f"{logger_name}: expected one access record, got {len(handler.records)}")
        return []

    return verify


def _check_json_line(text: str) -> list[str]:
    lines = text.splitlines()
    if len(lines) != 1:
        raise AssertionError(f"expected one JSON line, got {text!r}")
    record = json.loads(lines[0])
    if record.get("status") != 200 or record.get("method") != "GET":
        raise AssertionError(f"unexpected access record {record!r}")
    # The hand-written row writes fastmw's record: the same fields, so the same work.
    from fastmw._impl import core

    if set(record) != set(core.ACCESS_JSON_FIELDS):
        return [f"record fields differ from fastmw's: {sorted(set(record) ^ set(core.ACCESS_JSON_FIELDS))}"]
    return []


def _verify_fastmw_json() -> list[str]:
    stream = io.BytesIO()
    sink = _json_lines_sink(stream)
    check_answer(answer(_fastmw_json_sink(stacks.raw_app, sink)), {})
    sink.flush()  # the sink writes in batches
    return _check_json_line(stream.getvalue().decode())


def _verify_hand_json() -> list[str]:
    stream = io.StringIO()
    check_answer(answer(_hand.HandJsonAccessLog(stacks.raw_app, stream=stream)), {})
    return _check_json_line(stream.getvalue())


def _verify_send_wrapper(build: Build) -> Callable[[], list[str]]:
    """The layer hands the app its send wrapper, which saw the response start."""

    def verify() -> list[str]:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(send)
            await stacks.raw_app(scope, receive, send)

        check_answer(answer(build(app)), {})
        if [type(send) for send in seen] != [_instr_floors.module().StartedSend] or not seen[0].started:
            raise AssertionError(f"expected one started StartedSend, the app got {seen!r}")
        return []

    return verify


def _verify_trace(build: Build, traced: bool) -> Callable[[], list[str]]:
    """Sent the trace headers, the app sees the sent trace continued as ``fastmw.trace.current()``
    (or, untraced, no current trace)."""

    def verify() -> list[str]:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(_fm().trace.current())
            await stacks.raw_app(scope, receive, send)

        check_answer(answer(build(app), TRACE_HEADERS), {})
        if len(seen) != 1:
            raise AssertionError(f"expected the app called once, got {len(seen)} calls")
        context = seen[0]
        if not traced:
            if context is not None:
                raise AssertionError(f"expected no current trace without the trace stage, got {context!r}")
            return []
        got = None if context is None else (context.trace_id, context.parent_id, context.tracestate)
        if got != (SENT_TRACE_ID, SENT_PARENT_ID, TRACESTATE.decode()):
            raise AssertionError(f"expected the sent trace continued, got {got!r}")
        return []

    return verify


# --------------------------------------------------------------------------- the table


FM = stacks.FASTMW_LOGGER
HAND = _hand.HAND_LOGGER
HAND_FIVE = Side(
    "hand:five",
    "five hand-written pure-ASGI middlewares doing the same",
    _hand.hand_stack,
    {**BOTH_IDS, **TIMING},
    quiet=(HAND,),
)
GROUPS = (
    Group(
        "full",
        "full stack: request id + timing + error + access log (logger disabled) + context",
        Side("fastmw:full", "the five fastmw middlewares, fused", _fastmw_five, {**BOTH_IDS, **TIMING}, quiet=(FM,)),
        HAND_FIVE,
        0.10,
    ),
    Group(
        "stack",
        "fastmw.stack() (logger disabled)",
        Side("fastmw:stack", "fastmw.stack(app)", _fastmw_stack, {**REQUEST_ID, **TIMING}, quiet=(FM,)),
        HAND_FIVE,
        0.09,
    ),
    Group(
        "sentry",
        "fastmw.stack() with sentry-sdk installed and initialised (logger disabled)",
        Side(
            "fastmw:stack" + WITH_SENTRY,
            "fastmw.stack(app), Sentry on",
            _fastmw_stack_sentry,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
        ),
        Side(
            "ref:asgi-correlation-id" + WITH_SENTRY,
            "asgi-correlation-id's middleware, Sentry on",
            _asgi_correlation_id_sentry,
            REQUEST_ID,
        ),
        None,
    ),
    Group(
        "request-id",
        "RequestIdMiddleware alone",
        Side("fastmw:request-id", "RequestIdMiddleware", _fastmw_request_id, REQUEST_ID),
        Side("ref:asgi-correlation-id", "asgi-correlation-id's middleware", stacks.asgi_correlation_id, REQUEST_ID),
        0.12,
    ),
    Group(
        "timing",
        "TimingMiddleware alone",
        Side("fastmw:timing", "TimingMiddleware", _fastmw_timing, TIMING),
        Side("hand:timing", "hand-written timing (perf_counter, MutableHeaders)", _hand.HandTiming, TIMING),
        0.20,
    ),
    Group(
        "error",
        "ErrorMiddleware alone",
        Side("fastmw:error", "ErrorMiddleware", _fastmw_error, {}, verify=_verify_error(_fastmw_error)),
        Side(
            "hand:error",
            "hand-written error middleware (tracks start, 500)",
            _hand.HandError,
            {},
            verify=_verify_error(_hand.HandError),
        ),
        0.30,
    ),
    Group(
        "access-log",
        "AccessLogMiddleware alone, logger disabled",
        Side(
            "fastmw:access-log",
            "AccessLogMiddleware",
            _fastmw_access_log,
            {},
            quiet=(FM,),
            verify=_verify_logs(_fastmw_access_log, FM),
        ),
        Side(
            "hand:access-log",
            "hand-written structured-log middleware",
            _hand.HandAccessLog,
            {},
            quiet=(HAND,),
            verify=_verify_logs(_hand.HandAccessLog, HAND),
        ),
        0.20,
    ),
    Group(
        "access-log-stdlib",
        "AccessLogMiddleware alone, logging to a NullHandler",
        Side(
            "fastmw:access-log-stdlib",
            "AccessLogMiddleware",
            _logging_to_null(_fastmw_access_log, stacks.FASTMW_LOGGER),
            {},
            verify=_verify_logs(_fastmw_access_log, stacks.FASTMW_LOGGER),
        ),
        Side(
            "hand:access-log-stdlib",
            "hand-written structured-log middleware",
            _logging_to_null(_hand.HandAccessLog, _hand.HAND_LOGGER),
            {},
            verify=_verify_logs(_hand.HandAccessLog, _hand.HAND_LOGGER),
        ),
        None,
    ),
    Group(
        "context",
        "RawContextMiddleware + RequestIdPlugin + CorrelationIdPlugin",
        Side("fastmw:context", "RawContextMiddleware, two plugins", _fastmw_context, BOTH_IDS),
        Side("ref:starlette-context", "starlette-context Raw, same plugins", stacks.starlette_context, BOTH_IDS),
        0.05,
    ),
    Group(
        "json-sink",
        "AccessLogMiddleware writing to JsonLinesSink (/dev/null)",
        Side(
            "fastmw:json-sink",
            "AccessLogMiddleware(sink=JsonLinesSink)",
            _fastmw_json_sink,
            {},
            quiet=(FM,),
            verify=_verify_fastmw_json,
        ),
        Side(
            "hand:json-sink",
            "hand-written access log: json.dumps of the same fields, one buffered write",
            _hand.HandJsonAccessLog,
            {},
            verify=_verify_hand_json,
        ),
        0.30,
    ),
)
DELTAS = (
    Delta(
        "trace",
        "trace stage in fastmw.stack() (traceparent + tracestate sent)",
        Side(
            "fastmw:stack-traced-request",
            "fastmw.stack(app), sent traceparent + tracestate",
            _fastmw_stack,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
            verify=_verify_trace(_fastmw_stack, traced=False),
            extra_headers=TRACE_HEADERS,
        ),
        Side(
            "fastmw:stack-trace",
            "fastmw.stack(app, trace_context={'opentelemetry': False}), same request",
            _fastmw_stack_traced,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
            verify=_verify_trace(_fastmw_stack_traced, traced=True),
            extra_headers=TRACE_HEADERS,
        ),
        1_500,
    ),
    Delta(
        "metrics",
        "metrics stage in fastmw.stack() (a Starlette app, its route read from the scope)",
        Side("fastmw:stack-routed", "fastmw.stack(Starlette app)", _instr_metrics.stack, REQUEST_ID, quiet=(FM,)),
        Side(
            "fastmw:stack-metrics",
            "fastmw.stack(Starlette app, metrics={...}), same request",
            _instr_metrics.stack_with_metrics,
            REQUEST_ID,
            quiet=(FM,),
            verify=_instr_metrics.verify(answer),
        ),
        1_000,
    ),
)
ASYNC_SEND = _instr_floors.layer("AsyncSendLayer")
STEP_SEND = _instr_floors.layer("StepSendLayer")
FLOORS = (
    Floor(
        "floor",
        "design floors: a compiled layer passing the request through (benchmarks/_floors.pyx, not fastmw)",
        (
            Side(
                "floor:async-def",
                "async def layer: cdef class, async def __call__ awaiting the app",
                _instr_floors.layer("AsyncLayer"),
                {},
            ),
            Side(
                "floor:async-def-send",
                "async def layer + send wrapper (final freelist cdef class, started flag)",
                ASYNC_SEND,
                {},
                verify=_verify_send_wrapper(ASYNC_SEND),
            ),
            Side(
                "floor:async-def-var",
                "async def layer + send wrapper + one context variable set and reset (C API)",
                _instr_floors.layer("AsyncVarLayer"),
                {},
            ),
            Side(
                "floor:async-def-two-vars",
                "async def layer + send wrapper + two context variables",
                _instr_floors.layer("AsyncTwoVarsLayer"),
                {},
            ),
            Side(
                "floor:async-def-vars",
                "async def layer + send wrapper + three context variables",
                _instr_floors.layer("AsyncVarsLayer"),
                {},
            ),
            Side(
                "floor:awaitable",
                "hand-written awaitable: def __call__ returns a final freelist cdef class driving PyIter_Send",
                _instr_floors.layer("StepLayer"),
                {},
            ),
            Side(
                "floor:awaitable-send",
                "hand-written awaitable + send wrapper",
                STEP_SEND,
                {},
                verify=_verify_send_wrapper(STEP_SEND),
            ),
            Side(
                "floor:pass-through",
                "pass-through: def __call__ returns the app's coroutine",
                _instr_floors.layer("PassThrough"),
                {},
            ),
        ),
    ),
)
BARE = Side("bare", "the bare raw ASGI app", lambda app: app, {})
GROUP_KEYS = tuple(group.key for group in (*GROUPS, *DELTAS, *FLOORS))


def sides() -> dict[str, Side]:
    """Every measurable side by key (the child process looks its side up here)."""
    found = {BARE.key: BARE}
    for group in GROUPS:
        found[group.fastmw.key] = group.fastmw
        found[group.reference.key] = group.reference
    for delta in DELTAS:
        found.update((side.key, side) for side in (delta.base, delta.with_stage))
    if _instr_floors.buildable():  # the floors compile their own module
        for floor in FLOORS:
            found.update((side.key, side) for side in floor.sides)
    return found


def select(keys: list[str] | None) -> tuple[list[Group], list[Floor], list[Delta]]:
    """The groups, floors and deltas named by ``keys`` (all of them when none is)."""
    if not keys:
        return list(GROUPS), list(FLOORS), list(DELTAS)
    unknown = sorted(set(keys) - set(GROUP_KEYS))
    if unknown:
        raise ValueError(f"unknown groups {unknown}; choose from {', '.join(GROUP_KEYS)}")
    return (
        [group for group in GROUPS if group.key in keys],
        [floor for floor in FLOORS if floor.key in keys],
        [delta for delta in DELTAS if delta.key in keys],
    )

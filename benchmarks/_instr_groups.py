"""The groups of ``make bench-instructions``: one fastmw side and one reference each.

A fastmw side (its stack in ``_instr_fastmw``, public API only) runs twice, in a child process
with the compiled core and in one with ``FASTMW_NO_EXTENSIONS=1``. Each side names the response
headers it must send and, where a stack's work is invisible in the response, a ``verify`` from
``_instr_checks``. A stack that fails a check fails the run.

``DELTAS`` measure what one stage adds: two fastmw sides, the same request (with the
headers that stage reads), with the stage and without, compiled and pure.

``FLOORS`` are not fastmw: tiny compiled layers (``_floors.pyx``) that pass requests through,
measured once each, side by side, for what any compiled layer costs before it does any work.
"""

from __future__ import annotations

from benchmarks import WITH_SENTRY, _hand, _instr_floors, _instr_metrics, stacks
from benchmarks._driver import TRACE_HEADERS
from benchmarks._instr_checks import (
    verify_error,
    verify_fastmw_json,
    verify_hand_json,
    verify_logs,
    verify_send_wrapper,
    verify_trace,
)
from benchmarks._instr_fastmw import (
    asgi_correlation_id_sentry,
    fastmw_access_log,
    fastmw_context,
    fastmw_error,
    fastmw_five,
    fastmw_json_sink,
    fastmw_request_id,
    fastmw_stack,
    fastmw_stack_sentry,
    fastmw_stack_traced,
    fastmw_timing,
    logging_to_null,
)
from benchmarks._instr_sides import BOTH_IDS, REQUEST_ID, TIMING, Delta, Floor, Group, Side, answer

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
        Side("fastmw:full", "the five fastmw middlewares, fused", fastmw_five, {**BOTH_IDS, **TIMING}, quiet=(FM,)),
        HAND_FIVE,
        0.10,
    ),
    Group(
        "stack",
        "fastmw.stack() (logger disabled)",
        Side("fastmw:stack", "fastmw.stack(app)", fastmw_stack, {**REQUEST_ID, **TIMING}, quiet=(FM,)),
        HAND_FIVE,
        0.09,
    ),
    Group(
        "sentry",
        "fastmw.stack() with sentry-sdk installed and initialised (logger disabled)",
        Side(
            "fastmw:stack" + WITH_SENTRY,
            "fastmw.stack(app), Sentry on",
            fastmw_stack_sentry,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
        ),
        Side(
            "ref:asgi-correlation-id" + WITH_SENTRY,
            "asgi-correlation-id's middleware, Sentry on",
            asgi_correlation_id_sentry,
            REQUEST_ID,
        ),
        None,
    ),
    Group(
        "request-id",
        "RequestIdMiddleware alone",
        Side("fastmw:request-id", "RequestIdMiddleware", fastmw_request_id, REQUEST_ID),
        Side("ref:asgi-correlation-id", "asgi-correlation-id's middleware", stacks.asgi_correlation_id, REQUEST_ID),
        0.12,
    ),
    Group(
        "timing",
        "TimingMiddleware alone",
        Side("fastmw:timing", "TimingMiddleware", fastmw_timing, TIMING),
        Side("hand:timing", "hand-written timing (perf_counter, MutableHeaders)", _hand.HandTiming, TIMING),
        0.20,
    ),
    Group(
        "error",
        "ErrorMiddleware alone",
        Side("fastmw:error", "ErrorMiddleware", fastmw_error, {}, verify=verify_error(fastmw_error)),
        Side(
            "hand:error",
            "hand-written error middleware (tracks start, 500)",
            _hand.HandError,
            {},
            verify=verify_error(_hand.HandError),
        ),
        0.30,
    ),
    Group(
        "access-log",
        "AccessLogMiddleware alone, logger disabled",
        Side(
            "fastmw:access-log",
            "AccessLogMiddleware",
            fastmw_access_log,
            {},
            quiet=(FM,),
            verify=verify_logs(fastmw_access_log, FM),
        ),
        Side(
            "hand:access-log",
            "hand-written structured-log middleware",
            _hand.HandAccessLog,
            {},
            quiet=(HAND,),
            verify=verify_logs(_hand.HandAccessLog, HAND),
        ),
        0.20,
    ),
    Group(
        "access-log-stdlib",
        "AccessLogMiddleware alone, logging to a NullHandler",
        Side(
            "fastmw:access-log-stdlib",
            "AccessLogMiddleware",
            logging_to_null(fastmw_access_log, stacks.FASTMW_LOGGER),
            {},
            verify=verify_logs(fastmw_access_log, stacks.FASTMW_LOGGER),
        ),
        Side(
            "hand:access-log-stdlib",
            "hand-written structured-log middleware",
            logging_to_null(_hand.HandAccessLog, _hand.HAND_LOGGER),
            {},
            verify=verify_logs(_hand.HandAccessLog, _hand.HAND_LOGGER),
        ),
        None,
    ),
    Group(
        "context",
        "RawContextMiddleware + RequestIdPlugin + CorrelationIdPlugin",
        Side("fastmw:context", "RawContextMiddleware, two plugins", fastmw_context, BOTH_IDS),
        Side("ref:starlette-context", "starlette-context Raw, same plugins", stacks.starlette_context, BOTH_IDS),
        0.05,
    ),
    Group(
        "json-sink",
        "AccessLogMiddleware writing to JsonLinesSink (/dev/null)",
        Side(
            "fastmw:json-sink",
            "AccessLogMiddleware(sink=JsonLinesSink)",
            fastmw_json_sink,
            {},
            quiet=(FM,),
            verify=verify_fastmw_json,
        ),
        Side(
            "hand:json-sink",
            "hand-written access log: json.dumps of the same fields, one buffered write",
            _hand.HandJsonAccessLog,
            {},
            verify=verify_hand_json,
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
            fastmw_stack,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
            verify=verify_trace(fastmw_stack, traced=False),
            extra_headers=TRACE_HEADERS,
        ),
        Side(
            "fastmw:stack-trace",
            "fastmw.stack(app, trace_context={'opentelemetry': False}), same request",
            fastmw_stack_traced,
            {**REQUEST_ID, **TIMING},
            quiet=(FM,),
            verify=verify_trace(fastmw_stack_traced, traced=True),
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
                verify=verify_send_wrapper(ASYNC_SEND),
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
                verify=verify_send_wrapper(STEP_SEND),
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

"""The request engine: ``Pipeline`` running core stages around an app, and the request's
``SendRecorder`` running their start steps, against both core twins."""

from __future__ import annotations

import asyncio
import inspect
import logging
from types import ModuleType
from typing import Any

import pytest

from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.errors import MiddleWareValidationError
from fastmw.types import Message, Scope
from tests.helpers import Recorder, asyncio_sees_a_coroutine_function, call_app, feeder, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
START: Message = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
BODY: Message = {"type": "http.response.body", "body": b"ok"}


class Only:
    """A path filter (``fastmw.middleware._paths.PathFilter``'s shape): paths under ``prefix``."""

    everything = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def applies(self, scope: Any) -> bool:
        return str(scope.get("path", "")).startswith(self.prefix)


def sending(*messages: Message) -> Any:
    """An app that sends copies of ``messages`` (websocket scopes: accept, then close)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        for message in messages:
            copy = dict(message)
            if type(copy.get("headers")) is list:
                copy["headers"] = list(copy["headers"])  # the template stays as it is
            await send(copy)

    return app


OK_APP = sending(START, BODY)


def echo(core: ModuleType, name: str, value: Any, **options: Any) -> Any:
    """A context stage whose one value is echoed as header ``name`` (appended)."""
    return core.ContextStage([(name, lambda headers: value)], [(name, name)], **options)


def serve(pipeline: Any, scope: dict[str, Any] | None = None, send: Recorder | None = None) -> Recorder:
    return run(call_app(pipeline, scope if scope is not None else http_scope(), send=send))


# --------------------------------------------------------------------------- construction


def test_construction(core: ModuleType) -> None:
    stages = (core.TimingStage("x-time"), core.ErrorStage())
    other = sending()
    pipeline = core.Pipeline(OK_APP, stages, other)
    assert pipeline.terminal is OK_APP and pipeline.stages == stages and pipeline.other is other
    assert core.Pipeline(OK_APP, iter(stages)).other is OK_APP  # other scopes default to the app
    assert core.Pipeline(OK_APP).stages == ()
    pipeline.configure(other, [stages[1]])
    assert pipeline.terminal is other and pipeline.stages == (stages[1],) and pipeline.other is other
    assert all(type(stage).__mro__[1] is core.Stage for stage in stages)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((OK_APP, [5]), TypeError, "stages must be core stages, not int"),
        ((OK_APP, [object()]), TypeError, "stages must be core stages, not object"),
        ((OK_APP, 5), TypeError, "'int' object is not iterable"),
    ],
)
def test_constructor_errors(core: ModuleType, args: tuple[Any, ...], error: type, message: str) -> None:
    with pytest.raises(error) as info:
        core.Pipeline(*args)
    assert str(info.value) == message


def test_at_most_64_stages(core: ModuleType) -> None:
    assert len(core.Pipeline(OK_APP, [core.Stage() for _ in range(64)]).stages) == 64
    with pytest.raises(ValueError) as info:
        core.Pipeline(OK_APP, [core.Stage() for _ in range(65)])
    assert str(info.value) == "at most 64 stages, got 65"


def test_paths_must_have_an_applies_method(core: ModuleType) -> None:
    with pytest.raises(TypeError) as info:
        core.TimingStage(paths=5)
    assert str(info.value) == "paths must have an applies(scope) method, not int"
    everything = Only("/")
    everything.everything = True
    assert core.TimingStage(paths=everything).paths is None  # a filter taking every path is dropped
    only = Only("/a")
    assert core.TimingStage(paths=only).paths is only


def test_run_pipeline_is_a_coroutine_function_servers_detect(core: ModuleType) -> None:
    class Middleware(core.Pipeline):  # type: ignore[name-defined, misc]
        __call__ = core.run_pipeline

    app = Middleware(OK_APP, [core.TimingStage("x-time")])
    assert asyncio_sees_a_coroutine_function(app.__call__) and inspect.iscoroutinefunction(core.run_pipeline)
    assert serve(app).header(b"x-time") is not None
    assert serve(core.Pipeline(OK_APP, app.stages)).header(b"x-time") is not None


def test_configuration_is_read_only(core: ModuleType) -> None:
    # Configured once at construction (cdef readonly in the compiled twin): a stage whose
    # echo changed afterwards would run with stale derived state.
    objects = [
        (core.Pipeline(OK_APP), ["terminal", "stages", "other"]),
        (core.Stage(), ["paths", "http_only", "starts", "catches", "wraps_receive", "body_limit"]),
        (core.RequestIdStage("x", "id"), ["key", "context_key", "generator", "validator", "echo", "max_length"]),
        (core.TimingStage(), ["key", "precision", "server_timing", "callback"]),
        (core.BodyCacheStage(1), ["max_bytes"]),
        (core.ErrorStage(), ["handler", "reraise"]),
        (core.ContextStage([]), ["readers", "echo", "replace", "refuse", "request_id"]),
        (core.AccessLogStage(logging.getLogger(), 20), ["logger", "sink", "level", "include_query"]),
    ]
    writable = []
    for obj, names in objects:
        for name in names:
            try:
                setattr(obj, name, getattr(obj, name))
            except AttributeError:
                continue
            writable.append(f"{type(obj).__name__}.{name}")
    assert writable == []


# --------------------------------------------------------------------------- what the app gets


@pytest.mark.parametrize("scope_type", ["lifespan", "custom"])
@pytest.mark.parametrize("own_other", [False, True])
def test_other_scopes_go_to_other_untouched(core: ModuleType, scope_type: str, own_other: bool) -> None:
    calls: list[Any] = []
    receive, send = object(), object()

    async def app(scope: Any, got_receive: Any, got_send: Any) -> None:
        calls.append(("app", scope, got_receive, got_send))

    async def other(scope: Any, got_receive: Any, got_send: Any) -> None:
        calls.append(("other", scope, got_receive, got_send))

    def reader(headers: Any) -> None:
        raise AssertionError("stages only run on http and websocket scopes")

    pipeline = core.Pipeline(app, [core.ContextStage([("a", reader)]), core.AccessLogStage(_Logger(), 20)])
    if own_other:
        pipeline.configure(app, pipeline.stages, other)
    scope = {"type": scope_type, "asgi": {"version": "3.0"}}
    run(pipeline(scope, receive, send))
    assert calls == [("other" if own_other else "app", scope, receive, send)]  # the very objects


def test_a_scope_without_a_type_is_a_key_error(core: ModuleType) -> None:
    with pytest.raises(KeyError):
        run(core.Pipeline(OK_APP, [core.TimingStage()])({}, None, None))


def _seen_callables(core: ModuleType, stages: list[Any], scope: Scope) -> tuple[Any, Any, Any, Any]:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append((receive, send))

    receive, send = feeder([]), Recorder()
    run(core.Pipeline(app, stages)(scope, receive, send))
    [(got_receive, got_send)] = got
    return receive, send, got_receive, got_send


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
def test_without_stages_the_app_gets_the_servers_callables(core: ModuleType, scope_type: str) -> None:
    receive, send, got_receive, got_send = _seen_callables(core, [], http_scope(scope_type=scope_type))
    assert got_receive is receive and got_send is send


def test_the_app_gets_one_send_recorder_and_a_receive_recorder_when_a_stage_needs_it(core: ModuleType) -> None:
    stages = [core.TimingStage(), core.ErrorStage()]
    receive, send, got_receive, got_send = _seen_callables(core, stages, http_scope())
    assert got_receive is receive
    assert type(got_send) is core.SendRecorder and got_send.send is send
    stages = [core.AccessLogStage(_Logger(), 20), core.BodyCacheStage(7), core.BodyCacheStage(3), *stages]
    receive, send, got_receive, got_send = _seen_callables(core, stages, http_scope())
    assert type(got_receive) is core.ReceiveRecorder and got_receive.receive is receive
    assert got_receive.body_limit == 7  # one recorder, the largest limit
    assert type(got_send) is core.SendRecorder and got_send.send is send


def _recorder_after(core: ModuleType, stages: list[Any]) -> Any:
    """The SendRecorder the app got, after a request that sent a start and a body."""
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(send)
        await OK_APP(scope, receive, send)

    serve(core.Pipeline(app, stages))
    return got[0]


def test_the_clock_is_read_only_when_a_stage_reads_the_requests_times(core: ModuleType) -> None:
    assert core.TimingStage().timed and core.AccessLogStage(_Logger(), 20).timed
    untimed = [core.ErrorStage(), core.BodyCacheStage(10), core.TraceStage(), echo(core, "x-v", "1")]
    assert not any(stage.timed for stage in untimed)
    recorder = _recorder_after(core, untimed)
    assert recorder.complete and (recorder.t_start, recorder.t_first_byte, recorder.t_last_byte) == (0.0, 0.0, 0.0)
    for timed in (core.TimingStage(), core.AccessLogStage(_Logger(), 20)):
        recorder = _recorder_after(core, [*untimed, timed])
        assert 0.0 < recorder.t_start <= recorder.t_first_byte <= recorder.t_last_byte
    standalone = core.SendRecorder(Recorder())  # made directly: always timed
    assert standalone.t_start > 0.0


def test_websocket_leaves_out_http_only_stages(core: ModuleType) -> None:
    scope = http_scope(scope_type="websocket")
    receive, send, got_receive, got_send = _seen_callables(core, [core.BodyCacheStage(10)], scope)
    assert got_receive is receive and got_send is send
    receive, send, got_receive, got_send = _seen_callables(core, [core.BodyCacheStage(10), core.TimingStage()], scope)
    assert got_receive is receive and type(got_send) is core.SendRecorder


def test_path_filters_leave_stages_out(core: ModuleType) -> None:
    stages = [core.RequestIdStage("x-request-id", "id", paths=Only("/api")), core.TimingStage("x-time")]
    pipeline = core.Pipeline(OK_APP, stages)
    for path, expected in [("/api/x", {b"x-request-id", b"x-time"}), ("/health", {b"x-time"})]:
        for _ in range(2):  # the second request takes the plan kept for that subset
            names = {name for name, _ in serve(pipeline, http_scope(path)).headers} - {
                b"content-type",
                b"server-timing",
            }
            assert names == expected, path
    only = core.Pipeline(OK_APP, [core.TimingStage("x-time", paths=Only("/api"))])
    receive, send = feeder([]), Recorder()
    got: list[Any] = []

    async def app(scope: Any, got_receive: Any, got_send: Any) -> None:
        got.append((got_receive, got_send))

    only.configure(app, only.stages)
    run(only(http_scope("/health"), receive, send))
    assert got == [(receive, send)]  # no stage takes part: the app gets the server's callables


# --------------------------------------------------------------------------- start steps


def test_start_steps_run_inner_to_outer_on_a_copy(core: ModuleType) -> None:
    # One Starlette Response (and its raw_headers list) may answer every request.
    shared = [(b"content-type", b"text/plain"), (b"x-request-id", b"app"), (b"x-request-id", b"dup")]
    app = sending({"type": "http.response.start", "status": 200, "headers": shared}, BODY)

    async def shared_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": shared})
        await send(dict(BODY))

    stages = [core.RequestIdStage("x-request-id", "id"), echo(core, "x-a", "1"), echo(core, "x-b", "2")]
    for target in (app, shared_app):
        recorder = serve(core.Pipeline(target, stages), http_scope(headers=[(b"x-request-id", RID.encode())]))
        # Inner first (x-b, then x-a appended), the request id set last: in place, duplicates dropped.
        assert recorder.headers == [
            (b"content-type", b"text/plain"),
            (b"x-request-id", RID.encode()),
            (b"x-b", b"2"),
            (b"x-a", b"1"),
        ]
    assert shared == [(b"content-type", b"text/plain"), (b"x-request-id", b"app"), (b"x-request-id", b"dup")]


@pytest.mark.parametrize("headers", [None, "missing", ((b"content-type", b"text/plain"),)])
def test_a_start_without_a_header_list_gets_one(core: ModuleType, headers: Any) -> None:
    start: dict[str, Any] = {"type": "http.response.start", "status": 204}
    if headers != "missing":
        start["headers"] = headers
    recorder = serve(core.Pipeline(sending(start, BODY), [echo(core, "x-a", "1")]))
    assert recorder.headers == [*(headers if isinstance(headers, tuple) else ()), (b"x-a", b"1")]
    assert type(recorder.start["headers"]) is list


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.accept"},
        {"type": "websocket.accept", "headers": None},
        {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-b", b"2")]},
        {"type": "websocket.http.response.start", "status": 403},
    ],
)
def test_websocket_openings_get_the_start_steps(core: ModuleType, message: dict[str, Any]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(dict(message))
        await send({"type": "websocket.close", "code": 1000})

    downstream = serve(core.Pipeline(app, [echo(core, "x-a", "1")]), http_scope(scope_type="websocket"))
    assert downstream.messages[0]["headers"] == [*(message.get("headers") or []), (b"x-a", b"1")]
    assert downstream.messages[1] == {"type": "websocket.close", "code": 1000}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http.response.start", "http.response.start"),
        ("websocket.http.response.start", "websocket.http.response.start"),
        ("http.response.start", "websocket.http.response.start"),
    ],
)
def test_a_second_response_start_is_refused(core: ModuleType, first: str, second: str) -> None:
    downstream = Recorder()
    app = sending({"type": first, "status": 200, "headers": []}, {"type": second, "status": 500, "headers": []})
    with pytest.raises(RuntimeError) as info:
        serve(core.Pipeline(app, [core.TimingStage("x-time")]), send=downstream)
    assert str(info.value) == f"{second} was already sent for this request"
    assert len(downstream.messages) == 1


@pytest.mark.parametrize("entry", [b"abc", ("a", b"b"), (b"a", None), (b"a",), (b"a", b"b", b"c"), None])
def test_malformed_header_entries_are_refused_before_sending(core: ModuleType, entry: object) -> None:
    downstream = Recorder()
    tried: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"ok", b"1"), entry]})
        except TypeError as exc:
            tried.append(str(exc))
        # Nothing went out, so a well-formed start may still follow.
        await send({**START, "headers": list(START["headers"])})
        await send(dict(BODY))

    serve(core.Pipeline(app, [echo(core, "x-a", "1")]), send=downstream)
    assert len(tried) == 1 and tried[0].startswith("ASGI header")
    assert downstream.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]


def test_a_streamed_body_is_never_buffered(core: ModuleType) -> None:
    downstream = Recorder()
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({**START, "headers": []})
        for _ in range(5):
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            seen.append(len(downstream.messages))  # each chunk reached the server before the next
        await send({"type": "http.response.body", "body": b"end"})

    stages = [core.TimingStage("x-time"), core.AccessLogStage(_Logger(), 20), core.ErrorStage()]
    serve(core.Pipeline(app, stages), send=downstream)
    assert seen == [2, 3, 4, 5, 6] and downstream.body == b"x" * 50 + b"end"


def test_other_messages_pass_through_untouched(core: ModuleType) -> None:
    messages: list[Message] = [
        {"type": "http.response.pathsend", "path": "/x"},
        {"type": "http.response.trailers", "headers": [(b"a", b"b")]},
        {"type": "custom.extension", "data": object()},
    ]
    downstream = serve(core.Pipeline(sending(*messages), [echo(core, "x-a", "1")]))
    assert downstream.messages == messages


# --------------------------------------------------------------------------- refusals and errors


def test_a_request_id_refusal_gets_only_the_outer_stages_start_steps(core: ModuleType) -> None:
    calls: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def reject(scope: Any, receive: Any, send: Any) -> None:
        calls.append(("reject", type(send) is core.SendRecorder, REQUEST_CONTEXT.get(None), CORRELATION_ID.get()))
        await send({"type": "http.response.start", "status": 400, "headers": [(b"x-reject", b"1")]})
        await send({"type": "http.response.body", "body": b"bad id"})

    def reader(headers: Any) -> str:
        raise AssertionError("a stage inside the refusing one is not entered")

    timing = core.TimingStage("x-time", callback=lambda scope, ttfb, total: calls.append(("timing", ttfb is None)))
    stages = [
        echo(core, "x-outer", "o"),
        timing,
        core.RequestIdStage("x-request-id", "id", validator=core.is_uuid, reject=reject, refuse_invalid=True),
        core.ContextStage([("inner", reader)], [("inner", "x-inner")]),
    ]
    downstream = serve(core.Pipeline(app, stages), http_scope(headers=[(b"x-request-id", b"nope")]))
    assert downstream.status == 400 and downstream.body == b"bad id"
    # Inner to outer: timing, then the outer echo; the refusing stage echoes nothing.
    names = [name for name, _ in downstream.headers]
    assert names == [b"x-reject", b"x-time", b"server-timing", b"x-outer"]
    assert calls == [("reject", True, {"x-outer": "o"}, None), ("timing", False)]


def test_a_context_refusal_gets_only_the_outer_stages_start_steps(core: ModuleType) -> None:
    refused: list[Any] = []

    def invalid(headers: Any) -> None:
        raise MiddleWareValidationError("no")

    async def refuse(scope: Any, receive: Any, send: Any, exc: BaseException) -> None:
        refused.append((type(exc), str(exc), REQUEST_CONTEXT.get(None)))
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    stages = [
        core.RequestIdStage("x-request-id", "id"),
        core.ContextStage([("ok", lambda headers: "v"), ("bad", invalid)], [("ok", "x-ok")], refuse=refuse),
        echo(core, "x-inner", "i"),
    ]
    downstream = serve(core.Pipeline(OK_APP, stages), http_scope(headers=[(b"x-request-id", RID.encode())]))
    assert downstream.headers == [(b"x-request-id", RID.encode())]
    assert refused == [(MiddleWareValidationError, "no", None)]


def test_an_error_answer_gets_only_the_outer_stages_start_steps(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    stages = [core.RequestIdStage("x-request-id", "id"), core.ErrorStage(), echo(core, "x-inner", "i")]
    downstream = Recorder()
    with pytest.raises(ValueError, match="boom"):
        serve(core.Pipeline(app, stages), http_scope(headers=[(b"x-request-id", RID.encode())]), downstream)
    assert downstream.status == 500 and downstream.body == core.error_body(RID)
    names = [name for name, _ in downstream.headers]
    assert names == [b"content-type", b"content-length", b"connection", b"x-request-id"]


def test_an_enter_step_failing_unwinds_only_the_outer_stages(core: ModuleType) -> None:
    left: list[Any] = []

    def resolver(raw: Any) -> str:
        raise KeyError("resolver")

    def inner(headers: Any) -> None:
        raise AssertionError("not entered")

    stages = [
        core.TimingStage("x-time", callback=lambda *args: left.append("timing")),
        core.ErrorStage(reraise=False),
        core.RequestIdStage("x-request-id", "id", resolver=resolver),
        core.ContextStage([("inner", inner)]),
    ]
    downstream = serve(core.Pipeline(OK_APP, stages))
    assert downstream.status == 500 and downstream.header(b"x-time") is not None
    assert left == ["timing"]


@pytest.mark.parametrize("reraise", [True, False])
def test_failure_while_answering_is_chained_to_the_apps_error(core: ModuleType, reraise: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    pipeline = core.Pipeline(app, [core.TimingStage("x-time"), core.ErrorStage(reraise=reraise)])
    with pytest.raises(OSError) as info:
        serve(pipeline, send=Recorder(fail_on="http.response.start"))
    # As raised inside the ``except`` block of a nested error layer.
    assert type(info.value.__context__) is ValueError and str(info.value.__context__) == "boom"


def test_base_exceptions_are_not_answered_and_every_stage_is_left(core: ModuleType) -> None:
    left: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert core.current_timing() is send
        raise asyncio.CancelledError

    timing = core.TimingStage(callback=lambda scope, ttfb, total: left.append((ttfb, core.current_timing())))
    downstream = Recorder()
    with pytest.raises(asyncio.CancelledError):
        serve(core.Pipeline(app, [timing, core.ErrorStage()]), send=downstream)
    assert downstream.messages == [] and left == [(None, None)]


class _Logger:
    """A logger that is never enabled (the access stage then builds nothing)."""

    def isEnabledFor(self, level: int) -> bool:
        return False


# --------------------------------------------------------------------------- what stages publish


def test_nested_pipelines_publish_in_one_holder_and_inherit(core: ModuleType) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["inner"] = (core.current_timing(), core.current_trace(), core.current_body())
        await OK_APP(scope, receive, send)

    inner = core.Pipeline(app, [core.TraceStage(), core.BodyCacheStage(10)])

    async def between(scope: Any, receive: Any, send: Any) -> None:
        seen["outer"] = (core.current_timing(), core.current_trace(), core.current_body())
        await inner(scope, receive, send)
        seen["after"] = (core.current_timing(), core.current_trace(), core.current_body())

    serve(core.Pipeline(between, [core.TimingStage()]))
    outer_timing, no_trace, no_body = seen["outer"]
    assert type(outer_timing) is core.SendRecorder and no_trace is None and no_body is None
    timing, trace, body = seen["inner"]
    # The outer timing recorder is inherited; the inner pipeline adds its trace and body.
    assert timing is outer_timing and type(trace) is core.TraceContext and type(body) is core.ReceiveRecorder
    assert seen["after"] == (outer_timing, None, None)  # the inner request's values left with it
    assert (core.current_timing(), core.current_trace(), core.current_body()) == (None, None, None)
    assert not any(stage.publishes for stage in (core.ErrorStage(), core.RequestIdStage("x-id", "id")))


def test_a_stage_publishing_twice_puts_the_outer_value_back(core: ModuleType) -> None:
    # Two trace stages in one plan, an access log between them: the app sees the inner
    # trace; when the inner stage leaves, the outer trace is current again for the access
    # record (left next), and nothing is current after the request.
    outer = core.TraceContext("a" * 32, "b" * 16)
    inner = core.TraceContext("c" * 32, "d" * 16)
    seen: list[Any] = []
    records: list[dict[str, Any]] = []

    class Sink:
        def write_record(self, keys: Any, values: list[Any]) -> None:
            records.append(dict(zip(keys, values, strict=True)))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.current_trace())
        await OK_APP(scope, receive, send)

    stages = [
        core.TraceStage(adopt=lambda: outer),
        core.AccessLogStage(_Logger(), 20, sink=Sink()),
        core.TraceStage(adopt=lambda: inner),
    ]
    serve(core.Pipeline(app, stages))
    assert seen == [inner] and [record["trace_id"] for record in records] == ["a" * 32]
    assert core.current_trace() is None

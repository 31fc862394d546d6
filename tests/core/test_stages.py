"""The small stages (``stages``): RequestIdStage, TimingStage, BodyCacheStage and
``is_safe_id``, run by the engine, against both core twins."""

from __future__ import annotations

import logging
import re
import uuid
from types import ModuleType
from typing import Any

import pytest

from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.types import Message, Scope
from tests.helpers import Recorder, call_app, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
NEW_ID = re.compile(r"[0-9a-f]{32}")
ID_KEY = "fastmw.request_id"


def assert_new_id(value: Any) -> None:
    assert isinstance(value, str) and NEW_ID.fullmatch(value), value
    assert uuid.UUID(value).version == 4


def watching(seen: list[Any], *app_headers: tuple[bytes, bytes]) -> Any:
    """An app recording what it sees of the request id, then answering 200 (or accept)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        data = REQUEST_CONTEXT.get(None)
        seen.append((CORRELATION_ID.get(), scope.get(ID_KEY), list(scope.get("headers") or ()), data and dict(data)))
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept", "headers": list(app_headers)})
            return
        await send({"type": "http.response.start", "status": 200, "headers": list(app_headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def serve(core: ModuleType, app: Any, stages: list[Any], scope: Scope) -> Recorder:
    return run(call_app(core.Pipeline(app, stages), scope))


def sent_ids(downstream: Recorder, name: bytes = b"x-request-id") -> list[bytes]:
    start = downstream.messages[0]
    return [value for key, value in start.get("headers") or () if key == name]


# --------------------------------------------------------------------------- RequestIdStage: configuration


def test_request_id_stage_defaults(core: ModuleType) -> None:
    stage = core.RequestIdStage("X-Request-ID", "id")
    assert stage.key == b"x-request-id" and stage.context_key == "id"
    assert stage.generator is core.new_request_id and stage.max_length == 128
    assert stage.validator is stage.transformer is stage.resolver is stage.reject is stage.report is None
    assert stage.echo == "set" and stage.echo_websocket and stage.update_request_header
    assert stage.starts and not stage.catches and not stage.http_only and not stage.wraps_receive
    assert stage.body_limit == 0 and stage.paths is None
    assert not core.RequestIdStage(b"x-id", 5, echo=None).starts
    assert core.RequestIdStage(b"x-id", 5).context_key == "5"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"key": "x y"}, ValueError, "invalid HTTP header name 'x y': only RFC 9110 token characters are allowed"),
        ({"key": 5}, TypeError, "header name must be str or bytes, not int"),
        ({"echo": "replace"}, ValueError, "echo must be one of ('set', 'append', None), got 'replace'"),
        ({"max_length": 0}, ValueError, "max_length must be a positive int"),
        ({"max_length": True}, ValueError, "max_length must be a positive int"),
        ({"max_length": 2**63}, ValueError, "max_length must be a positive int"),
        ({"generator": 5}, TypeError, "generator must be callable or None, not int"),
        ({"validator": "x"}, TypeError, "validator must be callable or None, not str"),
        ({"transformer": 1.0}, TypeError, "transformer must be callable or None, not float"),
        ({"resolver": 5}, TypeError, "resolver must be callable or None, not int"),
        ({"reject": 5}, TypeError, "reject must be callable or None, not int"),
        ({"report": 5}, TypeError, "report must be callable or None, not int"),
    ],
)
def test_request_id_stage_constructor_errors(
    core: ModuleType, options: dict[str, Any], error: type, message: str
) -> None:
    options = dict(options)  # the parametrized dict is shared by both twins' runs
    key = options.pop("key", "x-request-id")
    with pytest.raises(error) as info:
        core.RequestIdStage(key, "id", **options)
    assert str(info.value) == message


# --------------------------------------------------------------------------- RequestIdStage: resolve


def test_resolve_keeps_a_valid_id_and_makes_one_for_none_or_empty(core: ModuleType) -> None:
    stage = core.RequestIdStage("x-request-id", "id")
    assert stage.resolve(b"abc-123") == "abc-123"
    for raw in (None, b""):
        assert_new_id(stage.resolve(raw))
    assert core.RequestIdStage("x", "id", generator=lambda: "made").resolve(None) == "made"


@pytest.mark.parametrize(
    "raw", [b"a\r\nInjected: 1", b"nul\x00", b"caf\xe9", b"tab\t", b"space inside", b"x" * 129, b"\x7f"]
)
def test_resolve_replaces_hostile_ids_and_reports_them(core: ModuleType, raw: bytes) -> None:
    reports: list[Any] = []
    validated: list[Any] = []

    def validator(value: str) -> bool:
        validated.append(value)
        return True

    stage = core.RequestIdStage("x", "id", generator=lambda: "fresh", report=lambda *args: reports.append(args))
    assert stage.resolve(raw) == "fresh" and reports == [("invalid", "fresh")]
    # Hostile bytes never reach the user's validator (only visible ASCII does).
    checking = core.RequestIdStage("x", "id", validator=validator)
    if raw not in (b"space inside",):
        assert_new_id(checking.resolve(raw))
        assert validated == []


def test_resolve_with_a_validator_transformer_and_reject(core: ModuleType) -> None:
    stage = core.RequestIdStage("x", "id", validator=core.is_uuid, generator=lambda: "new")
    assert stage.resolve(RID.encode()) == RID and stage.resolve(b"nope") == "new"
    rejecting = core.RequestIdStage("x", "id", validator=core.is_uuid, reject=lambda *args: None, refuse_invalid=True)
    assert rejecting.resolve(b"nope") is None
    assert_new_id(rejecting.resolve(None))  # nothing sent is not refused
    upper = core.RequestIdStage("x", "id", transformer=str.upper, generator=lambda: "gen")
    assert upper.resolve(b"abc") == "ABC" and upper.resolve(None) == "GEN"
    broken = core.RequestIdStage("x", "id", transformer=lambda value: value + "\n", generator=lambda: "gen")
    reports: list[Any] = []
    broken_report = core.RequestIdStage(
        "x", "id", transformer=lambda value: value + "\n", report=lambda *args: reports.append(args)
    )
    assert_new_id(broken.resolve(b"abc"))
    assert_new_id(broken_report.resolve(None))
    [(cause, value)] = reports
    assert cause == "unusable" and value.endswith("\n")


def test_resolve_reports_an_unusable_generated_id_and_uses_a_core_one(core: ModuleType) -> None:
    reports: list[Any] = []
    for made in ("x" * 129, "a b", 5, None):
        stage = core.RequestIdStage("x", "id", generator=lambda made=made: made, report=lambda *a: reports.append(a))
        assert_new_id(stage.resolve(None))
    assert reports == [("unusable", "x" * 129), ("unusable", "a b"), ("unusable", 5), ("unusable", None)]


def test_resolve_hands_everything_to_a_resolver(core: ModuleType) -> None:
    got: list[Any] = []

    def resolver(raw: Any) -> str:
        got.append(raw)
        return "mine"

    stage = core.RequestIdStage("x", "id", resolver=resolver, validator=lambda value: False)
    assert stage.resolve(b"a\r\n") == "mine" and stage.resolve(None) == "mine"
    assert got == [b"a\r\n", None]


# --------------------------------------------------------------------------- RequestIdStage: per request


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
def test_the_id_is_read_exposed_and_echoed(core: ModuleType, scope_type: str) -> None:
    seen: list[Any] = []
    sent = [(b"host", b"h"), (b"X-Request-ID", b"client-id")]
    scope = http_scope(headers=sent, scope_type=scope_type)
    downstream = serve(core, watching(seen), [core.RequestIdStage("x-request-id", "id")], scope)
    assert seen == [("client-id", "client-id", sent, None)]
    assert sent_ids(downstream) == [b"client-id"]
    assert CORRELATION_ID.get() is None  # reset once the request is done


def test_a_new_id_goes_into_a_copy_of_the_request_headers(core: ModuleType) -> None:
    seen: list[Any] = []
    sent = [(b"host", b"h"), (b"x-request-id", b"bad id"), (b"x-request-id", b"second")]
    scope = http_scope(headers=sent)
    serve(core, watching(seen), [core.RequestIdStage("x-request-id", "id", generator=lambda: "new")], scope)
    assert seen[0][2] == [(b"host", b"h"), (b"x-request-id", b"new")]
    assert sent == [(b"host", b"h"), (b"x-request-id", b"bad id"), (b"x-request-id", b"second")]
    scope = http_scope(headers=[(b"host", b"h")])
    serve(core, watching(seen), [core.RequestIdStage("x-request-id", "id", generator=lambda: "new")], scope)
    assert seen[1][2] == [(b"host", b"h"), (b"x-request-id", b"new")]
    scope = http_scope(headers=[(b"host", b"h")])
    stage = core.RequestIdStage("x-request-id", "id", generator=lambda: "new", update_request_header=False)
    serve(core, watching(seen), [stage], scope)
    assert seen[2][:3] == ("new", "new", [(b"host", b"h")])


@pytest.mark.parametrize(
    ("echo", "expected"),
    [
        ("set", [(b"content-type", b"t"), (b"x-request-id", RID.encode())]),
        (
            "append",
            [
                (b"x-request-id", b"app"),
                (b"content-type", b"t"),
                (b"x-request-id", b"dup"),
                (b"x-request-id", RID.encode()),
            ],
        ),
        (None, [(b"x-request-id", b"app"), (b"content-type", b"t"), (b"x-request-id", b"dup")]),
    ],
)
def test_echo_modes(core: ModuleType, echo: Any, expected: list[Any]) -> None:
    app = watching([], (b"x-request-id", b"app"), (b"content-type", b"t"), (b"x-request-id", b"dup"))
    stage = core.RequestIdStage("x-request-id", "id", echo=echo)
    downstream = serve(core, app, [stage], http_scope(headers=[(b"x-request-id", RID.encode())]))
    if echo == "set":
        expected = [(b"x-request-id", RID.encode()), (b"content-type", b"t")]  # in place, duplicates dropped
    assert downstream.headers == expected


@pytest.mark.parametrize("echo_websocket", [True, False])
def test_echo_on_websockets_can_be_switched_off(core: ModuleType, echo_websocket: bool) -> None:
    seen: list[Any] = []
    stage = core.RequestIdStage("x-request-id", "id", echo="append", echo_websocket=echo_websocket)
    scope = http_scope(headers=[(b"x-request-id", b"ws-id")], scope_type="websocket")
    downstream = serve(core, watching(seen), [stage], scope)
    assert seen[0][0] == "ws-id"  # the id is still used
    assert sent_ids(downstream) == ([b"ws-id"] if echo_websocket else [])


def test_a_second_component_reuses_the_id_and_does_not_echo_it_again(core: ModuleType) -> None:
    seen: list[Any] = []
    app = watching(seen)
    outer = core.RequestIdStage("x-request-id", "outer", generator=lambda: "first")
    inner = core.RequestIdStage("x-request-id", "inner", generator=lambda: "second", echo="append")
    reader = core.ContextStage(
        [("ctx", core.UUIDHeaderReader("x-request-id"))], [("ctx", "x-request-id")], request_id=0
    )
    for stages in ([outer, inner], [outer, reader, inner]):
        downstream = serve(core, app, stages, http_scope())
        assert sent_ids(downstream) == [b"first"]
        assert seen[-1][:2] == ("first", "first")
    assert seen[-1][3] == {"ctx": "first", "inner": "first"}
    # Nested pipelines reuse it through the scope too.
    downstream = serve(core, core.Pipeline(app, [inner]), [outer], http_scope())
    assert sent_ids(downstream) == [b"first"] and seen[-1][:2] == ("first", "first")


def test_the_id_goes_into_an_active_request_context(core: ModuleType) -> None:
    seen: list[Any] = []
    stages = [core.ContextStage([("a", lambda headers: 1)]), core.RequestIdStage("x-request-id", "X-Request-ID")]
    serve(core, watching(seen), stages, http_scope(headers=[(b"x-request-id", b"abc")]))
    assert seen[0][3] == {"a": 1, "X-Request-ID": "abc"}


@pytest.mark.parametrize("given", ["a\nb", 5, "☃", "x" * 100 + "\x00"])
def test_a_resolver_giving_an_unusable_id_is_a_value_error(core: ModuleType, given: Any) -> None:
    stage = core.RequestIdStage("x-request-id", "id", resolver=lambda raw: given)
    with pytest.raises(ValueError) as info:
        serve(core, watching([]), [stage], http_scope())
    shown = repr(repr(given)[:64]) + ("..." if len(repr(given)) > 64 else "")
    assert str(info.value) == f"request id resolver gave an unusable id {shown}"


def test_a_resolver_returning_none_refuses_with_reject(core: ModuleType) -> None:
    async def reject(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    stage = core.RequestIdStage("x-request-id", "id", resolver=lambda raw: None, reject=reject)
    downstream = serve(core, watching([]), [stage], http_scope())
    assert downstream.status == 400 and downstream.headers == []


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"Root=1-67891233-abcdef012345678912345678", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"id with space", False),
        (b"semi;colon", False),
        (b"caf\xe9", False),
    ],
)
def test_the_safe_id_check_on_header_bytes(core: ModuleType, sent: bytes, kept: bool) -> None:
    seen: list[Any] = []
    stage = core.RequestIdStage("x-request-id", "id", validator=core.is_safe_id, generator=lambda: "new")
    serve(core, watching(seen), [stage], http_scope(headers=[(b"x-request-id", sent)]))
    assert seen[0][0] == (sent.decode() if kept else "new")
    assert core.is_safe_id(sent.decode("latin-1")) is kept


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("a", True),
        ("ABCxyz019._~+/=:@-", True),
        (str(uuid.uuid4()), True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("a b", False),
        ("a\n", False),
        ("é", False),
        ("a,b", False),
        (b"abc", False),
        (None, False),
        (5, False),
    ],
)
def test_is_safe_id(core: ModuleType, value: Any, safe: bool) -> None:
    assert core.is_safe_id(value) is safe


# --------------------------------------------------------------------------- TimingStage


def test_timing_stage_defaults_and_errors(core: ModuleType) -> None:
    stage = core.TimingStage()
    assert stage.key is None and stage.precision == 4 and stage.server_timing and stage.callback is None
    assert stage.starts and not stage.catches and not stage.http_only
    assert core.TimingStage("X-Time").key == b"x-time"
    assert not core.TimingStage(server_timing=False).starts
    for precision in (-1, 10, True, "4", 4.0):
        with pytest.raises(ValueError) as info:
            core.TimingStage(precision=precision)
        assert str(info.value) == f"precision must be an int from 0 to 9, got {precision!r}"
    with pytest.raises(TypeError, match=r"^callback must be callable or None, not int$"):
        core.TimingStage(callback=1)


@pytest.mark.parametrize("precision", range(10))
def test_timing_headers_have_the_precision_asked_for(core: ModuleType, precision: int) -> None:
    app = watching([], (b"server-timing", b"db;dur=1"), (b"x-time", b"app"), (b"x-time", b"dup"))
    downstream = serve(core, app, [core.TimingStage("x-time", precision=precision)], http_scope())
    [(name, value), (other, timing)] = downstream.headers
    assert (name, other) == (b"server-timing", b"x-time")
    assert re.fullmatch(rb"\d+" + (rb"\.\d{%d}" % precision if precision else b""), timing), timing
    fraction = max(precision - 3, 0)
    entry = rb"app;dur=\d+" + (rb"\.\d{%d}" % fraction if fraction else b"")
    # Joined to the app's own server-timing entry.
    assert re.fullmatch(rb"db;dur=1, " + entry, value), value


def test_without_headers_to_add_the_start_is_not_edited(core: ModuleType) -> None:
    calls: list[Any] = []
    stage = core.TimingStage(server_timing=False, callback=lambda *args: calls.append(args))
    downstream = serve(core, watching([], (b"a", b"1")), [stage], http_scope())
    assert downstream.headers == [(b"a", b"1")] and len(calls) == 1


def test_the_callback_gets_the_durations(core: ModuleType) -> None:
    calls: list[Any] = []
    seen: list[Any] = []

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.current_timing() is send)

    def callback(scope: Any, ttfb: Any, total: float) -> None:
        calls.append((scope["path"], ttfb, total, core.current_timing()))

    stage = core.TimingStage(callback=callback)
    serve(core, watching([]), [stage], http_scope("/a"))
    serve(core, silent, [stage], http_scope("/b"))
    [(path_a, ttfb_a, total_a, left_a), (path_b, ttfb_b, total_b, left_b)] = calls
    assert (path_a, path_b) == ("/a", "/b") and left_a is left_b is None
    assert 0 <= ttfb_a <= total_a and ttfb_b is None and total_b >= 0
    assert seen == [True] and core.current_timing() is None


def test_a_failing_callback_is_logged_not_raised(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    def callback(*args: Any) -> None:
        raise RuntimeError("callback broke")

    with caplog.at_level(logging.ERROR, logger="fastmw.timing"):
        downstream = serve(core, watching([]), [core.TimingStage(callback=callback)], http_scope())
    assert downstream.status == 200 and "callback broke" in caplog.text
    assert [record.name for record in caplog.records] == ["fastmw.timing"]


# --------------------------------------------------------------------------- BodyCacheStage


def test_body_cache_stage_configuration(core: ModuleType) -> None:
    stage = core.BodyCacheStage(10)
    assert stage.max_bytes == stage.body_limit == 10 and stage.http_only and stage.wraps_receive
    assert not stage.starts and not stage.catches
    for bad in (-1, True, 1.0, "3"):
        with pytest.raises(ValueError) as info:
            core.BodyCacheStage(bad)
        assert str(info.value) == f"max_bytes must be a non-negative int, got {bad!r}"


@pytest.mark.parametrize("state", [True, False])
def test_the_body_is_copied_as_the_app_reads_it(core: ModuleType, state: bool) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        recorder = core.current_body()
        assert recorder is receive
        if state:
            assert scope["state"]["fastmw.body_cache"] is recorder
        seen.append(recorder.body)  # nothing read ahead of the app
        while (await receive()).get("more_body"):
            pass
        seen.append((recorder.body, recorder.body_truncated, recorder.body_bytes))
        seen.append(recorder)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = http_scope()
    if not state:
        del scope["state"]
    chunks: list[Message] = [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"ef"},
    ]
    run(call_app(core.Pipeline(app, [core.BodyCacheStage(5)]), scope, chunks))
    assert seen[:2] == [b"", (b"abcde", True, 6)]
    assert seen[2].body == b"" and core.current_body() is None  # dropped after the request
    assert scope.get("state", {}) == {}

"""The context runner: HeaderReader, UUIDHeaderReader, HeaderSend and ContextRunner, against both core twins."""

from __future__ import annotations

import asyncio
import contextvars
import re
import types
import uuid
from collections.abc import Callable, Generator
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from starlette.datastructures import MutableHeaders as StarletteMutableHeaders

from fastmw.errors import ContextDoesNotExistError, MiddleWareValidationError, WrongUUIDError
from tests.helpers import Recorder, feeder, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
CANONICAL = "6f3b1a4e-2c5d-4e8f-9a0b-1c2d3e4f5a6b"
NEW_ID = re.compile(r"[0-9a-f]{32}")
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


def in_fresh_context(func: Callable[[], Any]) -> Any:
    """Run ``func`` in a copy of the context: a context left set by a failing app cannot leak."""
    return contextvars.copy_context().run(func)


def assert_no_context(core: ModuleType) -> None:
    with pytest.raises(ContextDoesNotExistError):
        core.context_get()


def assert_new_id(value: Any) -> None:
    assert isinstance(value, str) and NEW_ID.fullmatch(value), value
    assert uuid.UUID(value).version == 4


@types.coroutine
def suspend(value: Any = None) -> Generator[Any, Any, Any]:
    """Yield ``value`` to whoever drives the coroutine, return what is sent back."""
    return (yield value)


async def _send_all(wrapper: Any, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        await wrapper(message)


async def serve(runner: Any, scope: Any, receive: Any = None, send: Any = None) -> Any:
    # The runner sets the context when it is called, so it is called in the task that awaits it.
    return await runner(scope, receive, send)


def _runner(core: ModuleType, app: Any, **options: Any) -> Any:
    return core.ContextRunner(app, [("id", core.UUIDHeaderReader("x-request-id"))], **options)


# --------------------------------------------------------------------------- HeaderReader


def test_header_reader_returns_the_first_match_as_latin1_text(core: ModuleType) -> None:
    headers = [(b"host", b"a"), (b"X-Forwarded-For", b"caf\xe9"), (b"x-forwarded-for", b"second")]
    for name in ("x-forwarded-for", "X-FORWARDED-FOR", b"X-Forwarded-For"):
        reader = core.HeaderReader(name)
        assert reader.name == b"x-forwarded-for"
        assert reader(headers) == "café"
        assert reader(tuple(headers)) == "café" and reader(iter(headers)) == "café"
    assert core.HeaderReader("x-empty")([(b"x-empty", b"")]) == ""
    assert core.HeaderReader("absent")(headers) is None
    assert core.HeaderReader("absent")([]) is None


def test_header_reader_refuses_bad_names_and_entries(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="header name must be str or bytes, not int"):
        core.HeaderReader(3)
    with pytest.raises(ValueError, match="not latin-1 encodable"):
        core.HeaderReader("☃")
    with pytest.raises(TypeError, match="ASGI header value must be bytes, not str"):
        core.HeaderReader("x")([(b"x", "text")])
    with pytest.raises(TypeError, match="ASGI header entry must have 2 items, not 3"):
        core.HeaderReader("x")([(b"y", b"1", b"2")])


# --------------------------------------------------------------------------- UUIDHeaderReader


@pytest.mark.parametrize(
    "sent", [RID, CANONICAL, CANONICAL.upper(), "{" + CANONICAL + "}", "urn:uuid:" + CANONICAL, str(uuid.uuid1())]
)
def test_uuid_reader_keeps_any_form_uuid_accepts(core: ModuleType, sent: str) -> None:
    reader = core.UUIDHeaderReader("X-Request-ID")
    assert reader.name == b"x-request-id"
    assert reader([(b"X-Request-Id", sent.encode())]) == sent


@pytest.mark.parametrize("headers", [[], [(b"x-request-id", b"")], [(b"other", RID.encode())]])
def test_uuid_reader_makes_a_new_id_when_none_is_sent(core: ModuleType, headers: list[Any]) -> None:
    reader = core.UUIDHeaderReader("x-request-id")
    first, second = reader(headers), reader(headers)
    assert_new_id(first)
    assert_new_id(second)
    assert first != second


def test_force_new_ignores_the_sent_header(core: ModuleType) -> None:
    reader = core.UUIDHeaderReader("x-request-id", force_new=True)
    assert reader.force_new
    # Not even read: a malformed entry cannot fail the request.
    value = reader([(b"x-request-id", RID.encode()), (b"x", "not bytes")])
    assert_new_id(value)
    assert value != RID


@pytest.mark.parametrize(
    "sent",
    [
        "nope",
        RID[:-1],
        RID + "0",
        # uuid.UUID accepts surrounding whitespace; control characters are still refused
        "\r\n" + RID[2:],
        RID[1:] + "\n",
        "\x0b" + RID[1:],
        "\x85" + RID[1:],
        "a" * 9000,
    ],
)
def test_invalid_values_raise_or_go_to_on_invalid(core: ModuleType, sent: str) -> None:
    headers = [(b"x-request-id", sent.encode("latin-1"))]
    with pytest.raises(ValueError) as info:
        core.UUIDHeaderReader("x-request-id")(headers)
    assert str(info.value).startswith(f"invalid UUID header value {sent[:64]!r}")
    seen: list[str] = []
    marker = object()

    def on_invalid(value: str) -> object:
        seen.append(value)
        return marker

    assert core.UUIDHeaderReader("x-request-id", on_invalid=on_invalid)(headers) is marker
    assert seen == [sent]


def test_on_invalid_may_raise(core: ModuleType) -> None:
    def refuse(value: str) -> None:
        raise WrongUUIDError(f"bad {value}")

    with pytest.raises(WrongUUIDError, match="bad nope"):
        core.UUIDHeaderReader("x-request-id", on_invalid=refuse)([(b"x-request-id", b"nope")])


def test_max_length_bounds_the_value(core: ModuleType) -> None:
    headers = [(b"x-request-id", RID.encode())]
    assert core.UUIDHeaderReader("x-request-id", max_length=32)(headers) == RID
    for limit in (0, 31):
        reader = core.UUIDHeaderReader("x-request-id", max_length=limit, on_invalid=lambda value: ("refused", value))
        assert reader.max_length == limit
        assert reader(headers) == ("refused", RID)
    assert core.UUIDHeaderReader("x-request-id").max_length == 8192


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"not-a-uuid", True),
        (b"tab\tinside", True),
        (b"caf\xe9", True),
        (b"a" * 50, True),
        (b"a" * 51, False),
        (b"a\r\nInjected: yes", False),
        (b"nul\x00", False),
        (b"del\x7f", False),
    ],
)
def test_without_validation_any_echoable_value_is_kept(core: ModuleType, sent: bytes, kept: bool) -> None:
    reader = core.UUIDHeaderReader("x-request-id", validate=False, max_length=50, on_invalid=lambda value: None)
    assert not reader.validate
    value = sent.decode("latin-1")
    assert reader([(b"x-request-id", sent)]) == (value if kept else None)


@pytest.mark.parametrize("max_length", [-1, "5", True, 1.5, None])
def test_max_length_must_be_a_non_negative_int(core: ModuleType, max_length: Any) -> None:
    with pytest.raises(ValueError, match=r"max_length must be an int from 0 to sys\.maxsize"):
        core.UUIDHeaderReader("x-request-id", max_length=max_length)


def test_on_invalid_must_be_callable(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="on_invalid must be callable or None, not str"):
        core.UUIDHeaderReader("x-request-id", on_invalid="fallback")
    with pytest.raises(TypeError, match="header name must be str or bytes, not NoneType"):
        core.UUIDHeaderReader(None)


# --------------------------------------------------------------------------- HeaderSend


def test_header_send_appends_on_the_response_start_and_returns_what_send_returns(core: ModuleType) -> None:
    marker = object()
    sent: list[dict[str, Any]] = []

    def send(message: dict[str, Any]) -> object:
        sent.append(message)
        return marker

    wrapper = core.HeaderSend(send, [("X-Request-ID", "abc"), (b"Vary", b"Origin")])
    assert wrapper.headers == ((b"x-request-id", b"abc"), (b"vary", b"Origin"))
    assert not wrapper.replace and not wrapper.started
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]}
    assert wrapper(start) is marker
    assert wrapper.started
    assert sent == [start] and sent[0] is start  # the message itself goes on, edited
    assert start["headers"] == [(b"x-request-id", b"app"), (b"x-request-id", b"abc"), (b"vary", b"Origin")]
    body = {"type": "http.response.body", "body": b"ok"}
    assert wrapper(body) is marker
    assert sent[1] is body and body == {"type": "http.response.body", "body": b"ok"}


@pytest.mark.parametrize(
    ("app_headers", "expected"),
    [
        ([], [(b"x-request-id", b"new")]),
        (
            [(b"x-request-id", b"a"), (b"content-type", b"t"), (b"x-request-id", b"b")],
            [(b"x-request-id", b"new"), (b"content-type", b"t")],
        ),
        (
            [(b"content-type", b"t"), (b"X-Request-ID", b"a"), (b"set-cookie", b"s=1"), (b"x-REQUEST-id", b"b")],
            [(b"content-type", b"t"), (b"x-request-id", b"new"), (b"set-cookie", b"s=1")],
        ),
    ],
)
def test_header_send_replace_has_starlette_semantics(
    core: ModuleType, app_headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    downstream = Recorder()
    wrapper = core.HeaderSend(downstream, [("x-request-id", "new")], replace=True)
    run(_send_all(wrapper, [{"type": "http.response.start", "status": 200, "headers": app_headers}]))
    assert downstream.headers == expected
    if all(name == name.lower() for name, _ in app_headers):  # Starlette compares names as sent
        starlette = StarletteMutableHeaders(raw=list(app_headers))
        starlette["x-request-id"] = "new"
        assert downstream.headers == starlette.raw


@pytest.mark.parametrize("replace", [False, True])
def test_a_shared_header_list_is_copied_not_mutated(core: ModuleType, replace: bool) -> None:
    # One Starlette Response (and its raw_headers list) may answer every request.
    shared = [(b"content-type", b"text/plain"), (b"x-request-id", b"app")]
    for index in range(3):
        downstream = Recorder()
        wrapper = core.HeaderSend(downstream, [("x-request-id", str(index))], replace=replace)
        message = {"type": "http.response.start", "status": 200, "headers": shared}
        run(_send_all(wrapper, [message]))
        assert message["headers"] is not shared
        ours = (b"x-request-id", str(index).encode())
        if replace:
            assert downstream.headers == [(b"content-type", b"text/plain"), ours]
        else:
            assert downstream.headers == [*shared, ours]
    assert shared == [(b"content-type", b"text/plain"), (b"x-request-id", b"app")]


def test_a_tuple_of_headers_becomes_a_new_list(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.HeaderSend(downstream, [("x-a", "1")])
    app_headers = ((b"content-type", b"text/plain"),)
    run(_send_all(wrapper, [{"type": "http.response.start", "status": 200, "headers": app_headers}]))
    assert downstream.messages[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert app_headers == ((b"content-type", b"text/plain"),)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.accept"},
        {"type": "websocket.accept", "headers": None},
        {"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-b", b"2")]},
        {"type": "websocket.http.response.start", "status": 403},
    ],
)
def test_websocket_openings_get_the_headers(core: ModuleType, message: dict[str, Any]) -> None:
    downstream = Recorder()
    wrapper = core.HeaderSend(downstream, [("x-a", "1")])
    app_headers = list(message.get("headers") or [])
    run(_send_all(wrapper, [dict(message), {"type": "websocket.close", "code": 1000}]))
    assert downstream.messages[0]["headers"] == [*app_headers, (b"x-a", b"1")]
    assert downstream.messages[1] == {"type": "websocket.close", "code": 1000}
    assert wrapper.started


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http.response.start", "http.response.start"),
        ("websocket.accept", "websocket.accept"),
        ("websocket.http.response.start", "websocket.http.response.start"),
        ("http.response.start", "websocket.accept"),
    ],
)
def test_a_second_response_start_is_refused(core: ModuleType, first: str, second: str) -> None:
    downstream = Recorder()
    wrapper = core.HeaderSend(downstream, [("x-a", "1")])
    run(_send_all(wrapper, [{"type": first, "status": 200}]))
    with pytest.raises(RuntimeError) as info:
        wrapper({"type": second, "status": 200})
    assert str(info.value) == f"{second} was already sent for this request"
    assert len(downstream.messages) == 1


@pytest.mark.parametrize("entry", [b"abc", ("a", b"b"), (b"a", None), (b"a",), (b"a", b"b", b"c"), None])
def test_malformed_header_entries_are_refused_before_sending(core: ModuleType, entry: object) -> None:
    downstream = Recorder()
    wrapper = core.HeaderSend(downstream, [("x-a", "1")])
    with pytest.raises(TypeError, match="ASGI header"):
        wrapper({"type": "http.response.start", "status": 200, "headers": [(b"ok", b"1"), entry]})
    assert downstream.messages == [] and not wrapper.started
    # Nothing went out, so a well-formed start may still follow.
    run(_send_all(wrapper, [dict(START)]))
    assert downstream.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]


def test_malformed_messages_are_clear_errors(core: ModuleType) -> None:
    wrapper = core.HeaderSend(Recorder(), [])
    with pytest.raises(TypeError, match="ASGI message must be a dict, not list"):
        wrapper([])
    with pytest.raises(TypeError, match="ASGI message must be a dict, not NoneType"):
        wrapper(None)
    with pytest.raises(TypeError, match="ASGI 'headers' must be a list or tuple, not str"):
        wrapper({"type": "http.response.start", "status": 200, "headers": "x"})
    assert not wrapper.started


def test_other_messages_pass_through_untouched(core: ModuleType) -> None:
    sent: list[dict[str, Any]] = []
    wrapper = core.HeaderSend(sent.append, [("x-a", "1")], replace=True)
    messages = [
        {"type": "http.response.body", "body": b"x", "more_body": True},
        {"type": "http.response.pathsend", "path": "/x"},
        {"type": "http.response.trailers", "headers": [(b"a", b"b")]},
        {"type": "websocket.send", "text": "hi"},
        {"type": b"http.response.start", "headers": []},
        {"type": None},
        {"no": "type"},
        {"type": "custom.extension", "data": object()},
    ]
    snapshots = [dict(message) for message in messages]
    for message in messages:
        assert wrapper(message) is None
    assert len(sent) == len(messages)
    assert all(got is message for got, message in zip(sent, messages, strict=True))
    assert messages == snapshots and not wrapper.started


def test_header_send_validates_its_headers_at_once(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="header name"):
        core.HeaderSend(Recorder(), [("x a", "1")])
    with pytest.raises(ValueError, match="control characters"):
        core.HeaderSend(Recorder(), [("x-a", "1\r\nx-b: 2")])
    with pytest.raises(TypeError, match="header value must be str or bytes, not int"):
        core.HeaderSend(Recorder(), [("x-a", 1)])


# --------------------------------------------------------------------------- ContextRunner


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
@pytest.mark.parametrize("wrap", [dict, MappingProxyType], ids=["dict", "mapping"])
def test_the_context_is_set_while_the_app_runs_and_reset_after(
    core: ModuleType, scope_type: str, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> str:
        data = core.context_get()
        seen.append(dict(data))
        await suspend()  # the context survives a suspension
        assert core.context_get() is data
        data["written"] = True  # the app may add to its own context
        return "result"

    readers = [
        ("id", core.UUIDHeaderReader("x-request-id")),
        ("ua", core.HeaderReader("user-agent")),
        ("custom", lambda headers: len(headers)),
    ]
    runner = core.ContextRunner(app, readers)
    assert runner.app is app and runner.readers == tuple(readers) and runner.echo == ()
    assert not runner.replace and runner.refuse is None
    headers = [(b"x-request-id", RID.encode()), (b"user-agent", b"curl")]
    scope = wrap(http_scope(headers=headers, scope_type=scope_type))

    async def scenario() -> None:
        assert_no_context(core)
        assert await runner(scope, feeder([]), Recorder()) == "result"
        assert_no_context(core)

    run(scenario())
    assert seen == [{"id": RID, "ua": "curl", "custom": 2}]


@pytest.mark.parametrize("headers", [None, "missing", []])
def test_a_scope_without_headers_reads_nothing(core: ModuleType, headers: Any) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(core.context_get())

    scope = http_scope()
    if headers == "missing":
        del scope["headers"]
    else:
        scope["headers"] = headers
    runner = core.ContextRunner(app, [("ua", core.HeaderReader("user-agent")), ("seen", lambda h: h)])
    run(serve(runner, scope, feeder([]), Recorder()))
    assert got == [{"ua": None, "seen": ()}]


def test_runners_nest_and_restore_the_outer_context(core: ModuleType) -> None:
    seen: list[Any] = []

    async def inner_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())

    inner = core.ContextRunner(inner_app, [("layer", lambda headers: "inner")])

    async def outer_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())
        await inner(scope, receive, send)
        seen.append(core.context_get())

    outer = core.ContextRunner(outer_app, [("layer", lambda headers: "outer")])
    run(serve(outer, http_scope(), feeder([]), Recorder()))
    assert seen == [{"layer": "outer"}, {"layer": "inner"}, {"layer": "outer"}]
    assert seen[0] is seen[2]


def test_an_exception_leaves_the_context_set(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await suspend()
        raise KeyError("boom")

    runner = _runner(core, app)

    async def scenario() -> dict[str, Any]:
        with pytest.raises(KeyError, match="boom"):
            await runner(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), Recorder())
        # Like starlette-context: outer exception handlers can still read the context.
        return core.context_get()  # type: ignore[no-any-return]

    assert run(scenario()) == {"id": RID}  # asyncio.run's task had its own copy of the context
    assert_no_context(core)


def test_readers_refusing_hand_the_request_to_refuse(core: ModuleType) -> None:
    calls: list[Any] = []

    def invalid(value: str) -> None:
        raise WrongUUIDError(f"bad id {value}")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def refuse(scope: Any, receive: Any, send: Any, exc: MiddleWareValidationError) -> str:
        assert_no_context(core)
        calls.append((scope, send, exc))
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bad"})
        return "refused"

    runner = core.ContextRunner(
        app,
        [("id", core.UUIDHeaderReader("x-request-id", on_invalid=invalid))],
        [("id", "x-request-id")],
        refuse=refuse,
    )
    scope = http_scope(headers=[(b"x-request-id", b"nope")])
    downstream = Recorder()

    async def scenario() -> Any:
        result = await runner(scope, feeder([]), downstream)
        assert_no_context(core)
        return result

    assert run(scenario()) == "refused"
    [(got_scope, got_send, exc)] = calls
    assert got_scope is scope and got_send is downstream  # no echo on a refusal
    assert type(exc) is WrongUUIDError and str(exc) == "bad id nope"
    assert downstream.status == 400 and downstream.headers == [] and downstream.body == b"bad"


def test_refuse_may_return_any_awaitable(core: ModuleType) -> None:
    marker = object()

    def reader(headers: Any) -> None:
        raise MiddleWareValidationError("no")

    runner = core.ContextRunner(None, [("a", reader)], refuse=lambda *args: _Result(marker))
    assert run(serve(runner, http_scope())) is marker


def test_without_refuse_the_validation_error_propagates(core: ModuleType) -> None:
    def reader(headers: Any) -> None:
        raise WrongUUIDError("no")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def scenario(runner: Any, scope: dict[str, Any], error: type[Exception], text: str) -> None:
        with pytest.raises(error, match=text):
            await runner(scope, feeder([]), Recorder())
        assert_no_context(core)  # not even in the task that ran the readers

    run(scenario(core.ContextRunner(app, [("a", reader)]), http_scope(), WrongUUIDError, "no"))
    # Only MiddleWareValidationError is refused; other reader errors always propagate.
    failing = core.ContextRunner(app, [("id", core.UUIDHeaderReader("x-request-id"))], refuse=lambda *args: None)
    scope = http_scope(headers=[(b"x-request-id", b"nope")])
    run(scenario(failing, scope, ValueError, "invalid UUID header value 'nope'"))


class _Result:
    """A generic awaitable (not a coroutine) whose ``await`` gives ``value`` at once."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.value
        yield  # pragma: no cover - makes __await__ a generator


@pytest.mark.parametrize("scope_type", ["lifespan", "custom"])
def test_other_scopes_go_to_the_app_untouched(core: ModuleType, scope_type: str) -> None:
    marker = object()
    calls: list[Any] = []
    receive, send = object(), object()

    def app(scope: Any, got_receive: Any, got_send: Any) -> _Result:
        calls.append((scope, got_receive, got_send))
        assert_no_context(core)
        return _Result(marker)

    def reader(headers: Any) -> None:
        raise AssertionError("readers only run on http and websocket scopes")

    runner = core.ContextRunner(app, [("a", reader)], [("a", "x-a")])
    scope = {"type": scope_type, "asgi": {"version": "3.0"}}
    assert run(serve(runner, scope, receive, send)) is marker  # the app's own result
    assert calls == [(scope, receive, send)]  # the very objects: send is not wrapped


def test_a_scope_without_a_type_is_a_key_error(core: ModuleType) -> None:
    with pytest.raises(KeyError):
        run(serve(core.ContextRunner(None, []), {}))


async def _start_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app"), (b"a", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _drive(runner: Any, headers: list[tuple[bytes, bytes]], scope_type: str = "http") -> Recorder:
    downstream = Recorder()
    await runner(http_scope(headers=headers, scope_type=scope_type), feeder([]), downstream)
    return downstream


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (False, [(b"x-request-id", b"app"), (b"a", b"1"), (b"x-request-id", RID.encode())]),
        (True, [(b"x-request-id", RID.encode()), (b"a", b"1")]),
    ],
)
def test_echo_appends_or_replaces(core: ModuleType, replace: bool, expected: list[tuple[bytes, bytes]]) -> None:
    runner = _runner(core, _start_app, echo=[("id", "X-Request-ID")], replace=replace)
    assert runner.echo == (("id", b"x-request-id"),) and runner.replace is replace
    downstream = run(_drive(runner, [(b"x-request-id", RID.encode())]))
    assert downstream.headers == expected and downstream.body == b"ok"


def test_echo_of_a_new_id_on_a_websocket_accept(core: ModuleType) -> None:
    runner = _runner(core, _start_app, echo=[("id", "x-request-id")])
    downstream = run(_drive(runner, [], scope_type="websocket"))
    [(name, value)] = downstream.messages[0]["headers"]
    assert name == b"x-request-id"
    assert_new_id(value.decode())


def test_echo_skips_values_that_are_not_header_values(core: ModuleType) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    values = {
        "crlf": "a\r\nInjected: yes",
        "nul": "x\x00",
        "snowman": "☃",
        "number": 42,
        "none": None,
        "latin1": "café",
        "unprintable": Unprintable(),
        "ok": "fine",
    }
    readers = [(key, lambda headers, value=value: value) for key, value in values.items()]
    # "missing" has no reader: like None (an absent header), nothing is echoed for it.
    echo = [(key, f"x-{key}") for key in [*values, "missing"]]
    runner = core.ContextRunner(_start_app, readers, echo)
    downstream = run(_drive(runner, []))
    assert downstream.headers[2:] == [(b"x-number", b"42"), (b"x-latin1", b"caf\xe9"), (b"x-ok", b"fine")]


def test_without_echo_send_is_passed_on_as_is(core: ModuleType) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append((receive, send))

    receive, send = feeder([]), Recorder()
    run(serve(core.ContextRunner(app, []), http_scope(), receive, send))
    assert got == [(receive, send)]


def test_constructor_errors(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="context reader for 'a' must be callable, not int"):
        core.ContextRunner(None, [("a", 1)])
    with pytest.raises(
        TypeError, match=r"a context reader entry must be a pair, not tuple \"\('a', <built-in function len>, 3\)\""
    ):
        core.ContextRunner(None, [("a", len, 3)])
    with pytest.raises(TypeError, match="an echo entry must be a pair, not str"):
        core.ContextRunner(None, [], ["a"])
    with pytest.raises(TypeError, match="a header must be a pair, not tuple"):
        core.HeaderSend(None, [(b"a",)])
    with pytest.raises(ValueError, match="invalid HTTP header name 'x y'"):
        core.ContextRunner(None, [], [("a", "x y")])
    with pytest.raises(TypeError, match="refuse must be callable or None, not int"):
        core.ContextRunner(None, [], refuse=1)
    with pytest.raises(TypeError, match="not iterable"):
        core.ContextRunner(None, 5)


def test_cancellation_propagates_and_leaves_the_context_set_in_the_task(core: ModuleType) -> None:
    async def scenario() -> dict[str, Any]:
        entered = asyncio.Event()
        never = asyncio.Event()
        after: dict[str, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            entered.set()
            await never.wait()

        runner = _runner(core, app)

        async def request() -> None:
            try:
                await runner(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), Recorder())
            except asyncio.CancelledError:
                after.update(core.context_get())
                raise

        task = asyncio.create_task(request())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert_no_context(core)  # the task's context was its own copy
        return after

    assert run(scenario()) == {"id": RID}


def test_concurrent_requests_see_their_own_context(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> str:
        mine = core.context_get()
        for _ in range(3):
            await asyncio.sleep(0)
            assert core.context_get() is mine
        await _start_app(scope, receive, send)
        return mine["id"]  # type: ignore[no-any-return]

    runner = _runner(core, app, echo=[("id", "x-request-id")], replace=True)
    ids = [uuid.uuid4().hex for _ in range(50)]

    async def one(request_id: str) -> tuple[Any, Any]:
        downstream = Recorder()
        headers = [(b"x-request-id", request_id.encode())]
        result = await runner(http_scope(headers=headers), feeder([]), downstream)
        assert_no_context(core)
        return result, downstream.header(b"x-request-id")

    async def main() -> list[tuple[Any, Any]]:
        return await asyncio.gather(*(one(request_id) for request_id in ids))

    assert run(main()) == [(request_id, request_id.encode()) for request_id in ids]


def test_sequential_requests_in_one_task_do_not_see_each_other(core: ModuleType) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())

    runner = core.ContextRunner(app, [("n", core.HeaderReader("x-n"))])

    async def main() -> None:
        for index in range(3):
            await runner(http_scope(headers=[(b"x-n", str(index).encode())]), feeder([]), Recorder())
            assert_no_context(core)

    run(main())
    assert seen == [{"n": "0"}, {"n": "1"}, {"n": "2"}]


class _Awaitable:
    """A generic awaitable (not a coroutine): ``__await__`` is a plain generator."""

    def __init__(self, core: ModuleType, seen: list[Any]) -> None:
        self.core = core
        self.seen = seen

    def __await__(self) -> Generator[Any, Any, str]:
        self.seen.append(self.core.context_get())
        yield  # a bare yield: asyncio runs the next step on the next loop iteration
        self.seen.append(self.core.context_get())
        return "awaited"


@types.coroutine
def _generator_app(seen: list[Any], core: ModuleType) -> Generator[Any, Any, str]:
    seen.append(core.context_get())
    yield
    return "generator"


@pytest.mark.parametrize("kind", ["awaitable", "generator-coroutine", "future"])
def test_any_awaitable_the_app_returns_works(core: ModuleType, kind: str) -> None:
    seen: list[Any] = []

    def app(scope: Any, receive: Any, send: Any) -> Any:
        if kind == "awaitable":
            return _Awaitable(core, seen)
        if kind == "generator-coroutine":
            return _generator_app(seen, core)
        future = asyncio.get_running_loop().create_future()
        future.get_loop().call_soon(future.set_result, "future")
        seen.append(core.context_get())
        return future

    runner = core.ContextRunner(app, [("n", core.HeaderReader("x-n"))])

    async def main() -> Any:
        result = await runner(http_scope(headers=[(b"x-n", b"1")]), feeder([]), Recorder())
        assert_no_context(core)
        return result

    expected = {"awaitable": "awaited", "generator-coroutine": "generator", "future": "future"}[kind]
    assert run(main()) == expected
    assert seen and all(data == {"n": "1"} for data in seen)


def _plain_generator() -> Generator[None, None, None]:
    yield


@pytest.mark.parametrize(
    ("make", "name"), [(lambda: 5, "int"), (lambda: None, "NoneType"), (_plain_generator, "generator")]
)
@pytest.mark.parametrize("scope_type", ["http", "lifespan"])
def test_an_app_returning_a_non_awaitable_is_a_type_error(
    core: ModuleType, make: Callable[[], Any], name: str, scope_type: str
) -> None:
    runner = core.ContextRunner(lambda scope, receive, send: make(), [("a", lambda headers: 1)])
    with pytest.raises(TypeError) as info:
        run(serve(runner, {"type": scope_type}))
    assert str(info.value) == f"the app returned {name}, which cannot be awaited"


def test_awaited_in_another_task_the_context_is_set_and_reset_there(core: ModuleType) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> str:
        seen.append(core.context_get())
        await asyncio.sleep(0)
        return "done"

    runner = core.ContextRunner(app, [("n", core.HeaderReader("x-n"))])

    async def scenario() -> list[Any]:
        scope = http_scope(headers=[(b"x-n", b"1")])
        # The awaitable is made here and run by another task: its context is the task's.
        results = [
            await asyncio.create_task(runner(scope, None, None)),
            await asyncio.wait_for(runner(scope, None, None), timeout=60),
            await asyncio.ensure_future(runner(scope, None, None)),
        ]
        assert_no_context(core)
        return results

    assert run(scenario()) == ["done"] * 3
    assert seen == [{"n": "1"}] * 3


# --------------------------------------------------------------------------- driven by hand


def _paused(core: ModuleType, app: Any) -> Any:
    """The runner's awaitable for ``app``, stepped to its first suspension."""
    step = _runner(core, app)(http_scope(headers=[(b"x-request-id", RID.encode())]), None, None).__await__()
    assert step.send(None) == "paused"
    assert core.context_get() == {"id": RID}
    return step


def test_values_sent_in_reach_the_app_and_the_result_comes_out(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        first = await suspend("paused")
        second = await suspend("again")
        return first, second

    def check() -> None:
        step = _paused(core, app)
        assert step.send("one") == "again"
        with pytest.raises(StopIteration) as info:
            step.send("two")
        assert info.value.value == ("one", "two")
        assert_no_context(core)

    in_fresh_context(check)


@pytest.mark.parametrize("thrown", [KeyError("k"), KeyError])
def test_throw_into_an_app_that_recovers_resets_the_context(core: ModuleType, thrown: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> str:
        try:
            await suspend("paused")
        except KeyError:
            return "recovered"
        return "not thrown"

    def check() -> None:
        step = _paused(core, app)
        with pytest.raises(StopIteration) as info:
            step.throw(thrown)
        assert info.value.value == "recovered"
        assert_no_context(core)

    in_fresh_context(check)


def test_throw_into_an_app_that_yields_again(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> str:
        try:
            await suspend("paused")
        except KeyError:
            await suspend("cleaning up")
        return "done"

    def check() -> None:
        step = _paused(core, app)
        assert step.throw(KeyError("k")) == "cleaning up"
        with pytest.raises(StopIteration):
            step.send(None)
        assert_no_context(core)

    in_fresh_context(check)


def test_throw_that_escapes_the_app_leaves_the_context_set(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await suspend("paused")

    def check() -> None:
        step = _paused(core, app)
        with pytest.raises(ValueError, match="v"):
            step.throw(ValueError("v"))
        assert core.context_get() == {"id": RID}

    in_fresh_context(check)


def test_close_runs_the_app_cleanup(core: ModuleType) -> None:
    cleaned: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await suspend("paused")
        finally:
            cleaned.append(True)

    def check() -> None:
        step = _paused(core, app)
        step.close()
        assert cleaned == [True]
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            step.send(None)

    in_fresh_context(check)


def test_nothing_runs_until_the_first_step(core: ModuleType) -> None:
    calls: list[str] = []

    def reader(headers: Any) -> str:
        calls.append("reader")
        return "value"

    async def app(scope: Any, receive: Any, send: Any) -> str:
        calls.append("app")
        return "done"

    def check() -> None:
        awaitable = core.ContextRunner(app, [("a", reader)])(http_scope(), None, None)
        assert calls == []
        assert_no_context(core)
        with pytest.raises(StopIteration) as info:
            awaitable.__await__().send(None)
        assert info.value.value == "done" and calls == ["reader", "app"]
        assert_no_context(core)

    in_fresh_context(check)


@pytest.mark.parametrize("how", ["throw", "close"])
def test_throw_or_close_before_the_first_step_runs_nothing(core: ModuleType, how: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    def check() -> None:
        step = _runner(core, app)(http_scope(), None, None).__await__()
        if how == "throw":
            with pytest.raises(KeyError, match="early"):
                step.throw(KeyError("early"))
        else:
            step.close()
        assert_no_context(core)
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            step.send(None)

    in_fresh_context(check)


# --------------------------------------------------------------------------- twin parity details


def test_a_runner_call_never_awaited_warns_like_a_coroutine(core: ModuleType) -> None:
    import gc
    import warnings

    gc.collect()  # earlier tests' garbage warns outside the blocks below
    call = _runner(core, _start_app)(http_scope(), None, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del call
        gc.collect()
    assert "coroutine 'ContextRunner._run' was never awaited" in [str(w.message) for w in caught]
    closed = _runner(core, _start_app)(http_scope(), None, None)
    closed.close()  # closed before its first step: nothing ran, nothing to warn about
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del closed
        gc.collect()
    assert caught == []


class _BadAwait:
    def __init__(self, result: Any) -> None:
        self.result = result

    def __await__(self) -> Any:
        return self.result


async def _nothing() -> None:
    return None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (5, "__await__() returned non-iterator of type 'int'"),
        (None, "__await__() returned non-iterator of type 'NoneType'"),
    ],
)
def test_an_await_method_returning_a_non_iterator_is_the_await_error(
    core: ModuleType, result: Any, message: str
) -> None:
    runner = core.ContextRunner(lambda scope, receive, send: _BadAwait(result), [])

    def check() -> None:
        with pytest.raises(TypeError) as info:
            run(runner(http_scope(), None, None))
        assert str(info.value) == message

    in_fresh_context(check)


def test_an_await_method_returning_a_coroutine_is_the_await_error(core: ModuleType) -> None:
    import warnings

    runner = core.ContextRunner(lambda scope, receive, send: _BadAwait(_nothing()), [])

    def check() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the coroutine __await__ made is never awaited
            with pytest.raises(TypeError, match=r"^__await__\(\) returned a coroutine$"):
                run(runner(http_scope(), None, None))

    in_fresh_context(check)


def test_attributes_are_read_only_except_the_uuid_switches(core: ModuleType) -> None:
    reader = core.UUIDHeaderReader("x-request-id")
    runner = core.ContextRunner(None, [])
    wrapper = core.HeaderSend(None, [])
    for obj, name in [
        (reader, "name"),
        (reader, "max_length"),
        (reader, "on_invalid"),
        (core.HeaderReader("a"), "name"),
        (runner, "app"),
        (runner, "readers"),
        (runner, "echo"),
        (runner, "replace"),
        (runner, "refuse"),
        (wrapper, "send"),
        (wrapper, "headers"),
        (wrapper, "replace"),
        (wrapper, "started"),
    ]:
        with pytest.raises(AttributeError):
            setattr(obj, name, getattr(obj, name))
    reader.force_new = "yes"
    reader.validate = 0
    assert reader.force_new is True and reader.validate is False


def test_max_length_up_to_sys_maxsize(core: ModuleType) -> None:
    import sys

    assert core.UUIDHeaderReader("x", max_length=sys.maxsize).max_length == sys.maxsize
    with pytest.raises(ValueError, match=r"max_length must be an int from 0 to sys\.maxsize"):
        core.UUIDHeaderReader("x", max_length=sys.maxsize + 1)


def test_header_send_reads_the_type_item_of_a_dict_subclass(core: ModuleType) -> None:
    class Sneaky(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            return "http.response.body"

    sent: list[Any] = []
    wrapper = core.HeaderSend(sent.append, [(b"x-a", b"1")])
    wrapper(Sneaky(type="http.response.start", status=200, headers=[]))
    assert sent[0]["headers"] == [(b"x-a", b"1")] and wrapper.started


@pytest.mark.parametrize("uuid_last", [True, False])
def test_echo_follows_the_last_reader_of_a_key(core: ModuleType, uuid_last: bool) -> None:
    uuid_reader = ("id", core.UUIDHeaderReader("x-request-id"))
    other = ("id", lambda headers: "other")
    readers = [other, uuid_reader] if uuid_last else [uuid_reader, other]
    runner = core.ContextRunner(_start_app, readers, [("id", "x-echo")])
    downstream = run(_drive(runner, [(b"x-request-id", RID.encode())]))
    assert downstream.header(b"x-echo") == (RID.encode() if uuid_last else b"other")


def test_echo_of_many_uuid_readers(core: ModuleType) -> None:
    # More readers than the compiled runner keeps header bytes for: all still echo.
    names = [f"x-id-{index}" for index in range(12)]
    readers = [(name, core.UUIDHeaderReader(name)) for name in names]
    sent = [(name.encode(), uuid.UUID(int=index + 1, version=4).hex.encode()) for index, name in enumerate(names)]
    runner = core.ContextRunner(_start_app, readers, [(name, f"echo-{name}") for name in names])
    downstream = run(_drive(runner, sent))
    assert [downstream.header(f"echo-{name}".encode()) for name in names] == [value for _, value in sent]

"""The request-context stage (``context_stage``): readers, echo, refusals and the request
id reader, run by the engine, against both core twins."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from types import MappingProxyType, ModuleType
from typing import Any

import pytest

from fastmw._storage import CORRELATION_ID
from fastmw.errors import ContextDoesNotExistError, MiddleWareValidationError, WrongUUIDError
from fastmw.types import Scope
from tests.helpers import Recorder, feeder, http_scope, run

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
ID_KEY = "fastmw.request_id"
APP_HEADERS = [(b"x-request-id", b"app"), (b"a", b"1")]


def assert_no_context(core: ModuleType) -> None:
    with pytest.raises(ContextDoesNotExistError):
        core.context_get()


async def start_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": list(APP_HEADERS)})
    await send({"type": "http.response.body", "body": b"ok"})


def drive(core: ModuleType, stages: list[Any], headers: list[Any], scope_type: str = "http") -> Recorder:
    downstream = Recorder()
    pipeline = core.Pipeline(start_app, stages)
    run(pipeline(http_scope(headers=headers, scope_type=scope_type), feeder([]), downstream))
    return downstream


def uuid_stage(core: ModuleType, **options: Any) -> Any:
    return core.ContextStage([("id", core.UUIDHeaderReader("x-request-id"))], **options)


# --------------------------------------------------------------------------- configuration


def test_configuration(core: ModuleType) -> None:
    readers = [("id", core.UUIDHeaderReader("x-request-id")), ("ua", core.HeaderReader("user-agent"))]
    stage = core.ContextStage(readers, [("id", "X-Request-ID")], replace=1, request_id=0)
    assert stage.readers == tuple(readers) and stage.echo == (("id", b"x-request-id"),)
    assert stage.replace is True and stage.refuse is None and stage.request_id == 0
    assert stage.starts and not stage.catches and not stage.http_only and not stage.wraps_receive
    bare = core.ContextStage([])
    assert bare.readers == () and bare.echo == () and bare.request_id == -1 and not bare.starts
    assert bare.source is None


@pytest.mark.parametrize(
    ("args", "options", "error", "message"),
    [
        (([("a", 1)],), {}, TypeError, "context reader for 'a' must be callable, not int"),
        (
            ([("a", len, 3)],),
            {},
            TypeError,
            "a context reader entry must be a pair, not tuple \"('a', <built-in function len>, 3)\"",
        ),
        (([], ["a"]), {}, TypeError, "an echo entry must be a pair, not str \"'a'\""),
        (
            ([], [("a", "x y")]),
            {},
            ValueError,
            "invalid HTTP header name 'x y': only RFC 9110 token characters are allowed",
        ),
        (([],), {"refuse": 1}, TypeError, "refuse must be callable or None, not int"),
        (([],), {"source": "x"}, TypeError, "source must be callable or None, not str"),
        (([],), {"request_id": 0}, ValueError, "request_id must be -1 or the index of a reader"),
        (([("a", len)],), {"request_id": -2}, ValueError, "request_id must be -1 or the index of a reader"),
        (([("a", len)],), {"request_id": True}, ValueError, "request_id must be -1 or the index of a reader"),
        ((5,), {}, TypeError, "'int' object is not iterable"),
    ],
)
def test_constructor_errors(
    core: ModuleType, args: tuple[Any, ...], options: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        core.ContextStage(*args, **options)
    assert str(info.value) == message


# --------------------------------------------------------------------------- the context


@pytest.mark.parametrize("scope_type", ["http", "websocket"])
@pytest.mark.parametrize("wrap", [dict, MappingProxyType], ids=["dict", "mapping"])
def test_the_context_is_set_while_the_app_runs_and_reset_after(
    core: ModuleType, scope_type: str, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        data = core.context_get()
        seen.append(dict(data))
        await asyncio.sleep(0)  # the context survives a suspension
        assert core.context_get() is data
        data["written"] = True  # the app may add to its own context

    readers = [
        ("id", core.UUIDHeaderReader("x-request-id")),
        ("ua", core.HeaderReader("user-agent")),
        ("custom", lambda headers: len(headers)),
    ]
    headers = [(b"x-request-id", RID.encode()), (b"user-agent", b"curl")]
    scope = wrap(http_scope(headers=headers, scope_type=scope_type))

    async def scenario() -> None:
        assert_no_context(core)
        await core.Pipeline(app, [core.ContextStage(readers)])(scope, feeder([]), Recorder())
        assert_no_context(core)

    run(scenario())
    assert seen == [{"id": RID, "ua": "curl", "custom": 2}]


def test_a_source_starts_the_context_and_the_readers_add_to_it(core: ModuleType) -> None:
    # What the context middlewares' awaited-hooks layer hands the stage.
    given: dict[str, Any] = {"awaited": "value", "ua": "replaced by the reader"}
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())
        await start_app(scope, receive, send)

    readers = [("ua", core.HeaderReader("user-agent"))]
    stage = core.ContextStage(readers, [("awaited", "x-awaited")], source=lambda scope: given)
    assert stage.source is not None
    downstream = Recorder()
    run(core.Pipeline(app, [stage])(http_scope(headers=[(b"user-agent", b"curl")]), feeder([]), downstream))
    assert seen == [given] and seen[0] is given
    assert given == {"awaited": "value", "ua": "curl"}
    assert downstream.header(b"x-awaited") == b"value"


@pytest.mark.parametrize("returned", [None, [("a", 1)], MappingProxyType({}), type("Sub", (dict,), {})()])
def test_a_source_must_return_a_dict(core: ModuleType, returned: Any) -> None:
    stage = core.ContextStage([], source=lambda scope: returned)
    with pytest.raises(TypeError) as info:
        run(core.Pipeline(start_app, [stage])(http_scope(), feeder([]), Recorder()))
    assert str(info.value) == f"source must return a dict, not {type(returned).__name__}"


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
    stage = core.ContextStage([("ua", core.HeaderReader("user-agent")), ("seen", lambda h: h)])
    run(core.Pipeline(app, [stage])(scope, feeder([]), Recorder()))
    assert got == [{"ua": None, "seen": ()}]


@pytest.mark.parametrize("fused", [True, False])
def test_nested_stages_restore_the_outer_context(core: ModuleType, fused: bool) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())

    outer = core.ContextStage([("layer", lambda headers: "outer")])
    inner = core.ContextStage([("layer", lambda headers: "inner")])

    async def between(scope: Any, receive: Any, send: Any) -> None:
        seen.append(core.context_get())
        await core.Pipeline(app, [inner])(scope, receive, send)
        seen.append(core.context_get())

    pipeline = core.Pipeline(app, [outer, inner]) if fused else core.Pipeline(between, [outer])
    run(pipeline(http_scope(), feeder([]), Recorder()))
    assert seen == ([{"layer": "inner"}] if fused else [{"layer": "outer"}, {"layer": "inner"}, {"layer": "outer"}])


def test_an_exception_leaves_the_context_set(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        raise KeyError("boom")

    pipeline = core.Pipeline(app, [uuid_stage(core)])

    async def scenario() -> dict[str, Any]:
        with pytest.raises(KeyError, match="boom"):
            await pipeline(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), Recorder())
        # Like starlette-context: outer exception handlers can still read the context.
        return dict(core.context_get())

    assert run(scenario()) == {"id": RID}  # asyncio.run's task had its own copy of the context
    assert_no_context(core)


def test_cancellation_propagates_and_leaves_the_context_set_in_the_task(core: ModuleType) -> None:
    async def scenario() -> dict[str, Any]:
        entered = asyncio.Event()
        after: dict[str, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            entered.set()
            await asyncio.Event().wait()

        pipeline = core.Pipeline(app, [uuid_stage(core)])

        async def request() -> None:
            try:
                await pipeline(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), Recorder())
            except asyncio.CancelledError:
                after.update(core.context_get())
                raise

        task = asyncio.create_task(request())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_no_context(core)  # the task's context was its own copy
        return after

    assert run(scenario()) == {"id": RID}


def test_concurrent_and_sequential_requests_see_their_own_context(core: ModuleType) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        mine = core.context_get()
        for _ in range(3):
            await asyncio.sleep(0)
            assert core.context_get() is mine
        await start_app(scope, receive, send)

    pipeline = core.Pipeline(app, [uuid_stage(core, echo=[("id", "x-request-id")], replace=True)])
    ids = [uuid.uuid4().hex for _ in range(50)]

    async def one(request_id: str) -> Any:
        downstream = Recorder()
        await pipeline(http_scope(headers=[(b"x-request-id", request_id.encode())]), feeder([]), downstream)
        assert_no_context(core)
        return downstream.header(b"x-request-id")

    async def main() -> list[Any]:
        together = await asyncio.gather(*(one(request_id) for request_id in ids))
        return [*together, *[await one(request_id) for request_id in ids[:3]]]

    assert run(main()) == [request_id.encode() for request_id in [*ids, *ids[:3]]]


# --------------------------------------------------------------------------- refusals


def test_readers_refusing_hand_the_request_to_refuse(core: ModuleType) -> None:
    calls: list[Any] = []

    def invalid(value: str) -> None:
        raise WrongUUIDError(f"bad id {value}")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def refuse(scope: Any, receive: Any, send: Any, exc: MiddleWareValidationError) -> None:
        assert_no_context(core)
        calls.append((scope, send, exc))
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bad"})

    stage = core.ContextStage(
        [("id", core.UUIDHeaderReader("x-request-id", on_invalid=invalid))], [("id", "x-request-id")], refuse=refuse
    )
    scope = http_scope(headers=[(b"x-request-id", b"nope")])
    downstream = Recorder()
    run(core.Pipeline(app, [stage])(scope, feeder([]), downstream))
    [(got_scope, got_send, exc)] = calls
    assert got_scope is scope and type(got_send) is core.SendRecorder and got_send.send is downstream
    assert type(exc) is WrongUUIDError and str(exc) == "bad id nope"
    assert downstream.status == 400 and downstream.headers == [] and downstream.body == b"bad"  # no echo


def test_refuse_may_return_any_awaitable(core: ModuleType) -> None:
    def reader(headers: Any) -> None:
        raise MiddleWareValidationError("no")

    future_made: list[Any] = []

    def refuse(*args: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result("ignored")
        future_made.append(future)
        return future

    stage = core.ContextStage([("a", reader)], refuse=refuse)
    run(core.Pipeline(start_app, [stage])(http_scope(), feeder([]), Recorder()))
    assert len(future_made) == 1


def test_without_refuse_the_validation_error_propagates(core: ModuleType) -> None:
    def reader(headers: Any) -> None:
        raise WrongUUIDError("no")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def scenario(stage: Any, scope: Scope, error: type[Exception], text: str) -> None:
        with pytest.raises(error, match=text):
            await core.Pipeline(app, [stage])(scope, feeder([]), Recorder())
        assert_no_context(core)  # not even in the task that ran the readers

    run(scenario(core.ContextStage([("a", reader)]), http_scope(), WrongUUIDError, "no"))
    # Only MiddleWareValidationError is refused; other reader errors always propagate.
    failing = uuid_stage(core, refuse=lambda *args: None)
    scope = http_scope(headers=[(b"x-request-id", b"nope")])
    run(scenario(failing, scope, ValueError, "invalid UUID header value 'nope'"))


# --------------------------------------------------------------------------- echo


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (False, [(b"x-request-id", b"app"), (b"a", b"1"), (b"x-request-id", RID.encode())]),
        (True, [(b"x-request-id", RID.encode()), (b"a", b"1")]),
    ],
)
def test_echo_appends_or_replaces(core: ModuleType, replace: bool, expected: list[tuple[bytes, bytes]]) -> None:
    stage = uuid_stage(core, echo=[("id", "X-Request-ID")], replace=replace)
    downstream = drive(core, [stage], [(b"x-request-id", RID.encode())])
    assert downstream.headers == expected and downstream.body == b"ok"


def test_echo_of_a_new_id_on_a_websocket_accept(core: ModuleType) -> None:
    downstream = drive(core, [uuid_stage(core, echo=[("id", "x-request-id")])], [], scope_type="websocket")
    [(name, value)] = downstream.messages[0]["headers"]
    assert name == b"x-request-id" and uuid.UUID(value.decode()).version == 4


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
    downstream = drive(core, [core.ContextStage(readers, echo)], [])
    assert downstream.headers[2:] == [(b"x-number", b"42"), (b"x-latin1", b"caf\xe9"), (b"x-ok", b"fine")]


@pytest.mark.parametrize("uuid_last", [True, False])
def test_echo_follows_the_last_reader_of_a_key(core: ModuleType, uuid_last: bool) -> None:
    uuid_reader = ("id", core.UUIDHeaderReader("x-request-id"))
    other = ("id", lambda headers: "other")
    readers = [other, uuid_reader] if uuid_last else [uuid_reader, other]
    downstream = drive(core, [core.ContextStage(readers, [("id", "x-echo")])], [(b"x-request-id", RID.encode())])
    assert downstream.header(b"x-echo") == (RID.encode() if uuid_last else b"other")


def test_echo_of_many_uuid_readers(core: ModuleType) -> None:
    names = [f"x-id-{index}" for index in range(12)]
    readers = [(name, core.UUIDHeaderReader(name)) for name in names]
    sent = [(name.encode(), uuid.UUID(int=index + 1, version=4).hex.encode()) for index, name in enumerate(names)]
    stage = core.ContextStage(readers, [(name, f"echo-{name}") for name in names])
    downstream = drive(core, [stage], sent)
    assert [downstream.header(f"echo-{name}".encode()) for name in names] == [value for _, value in sent]


# --------------------------------------------------------------------------- the request id reader


def id_stage(core: ModuleType, reader: Any = None) -> Any:
    reader = reader if reader is not None else core.UUIDHeaderReader("x-request-id")
    readers = [("cid", core.HeaderReader("x-correlation-id")), ("rid", reader)]
    return core.ContextStage(readers, [("rid", "x-request-id"), ("cid", "x-correlation-id")], request_id=1)


def test_the_request_id_reader_decides_the_id_for_the_components_inside(core: ModuleType) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope.get(ID_KEY), CORRELATION_ID.get(), dict(core.context_get())))
        await start_app(scope, receive, send)

    inner = core.RequestIdStage("x-request-id", "inner", echo="append")
    downstream = Recorder()
    scope = http_scope(headers=[(b"x-request-id", RID.encode()), (b"x-correlation-id", b"c")])
    run(core.Pipeline(app, [id_stage(core), inner])(scope, feeder([]), downstream))
    assert seen == [(RID, RID, {"cid": "c", "rid": RID, "inner": RID})]
    assert [value for name, value in downstream.headers if name == b"x-request-id"] == [b"app", RID.encode()]
    assert CORRELATION_ID.get() is None


def test_the_request_id_reader_reuses_an_outer_id_and_does_not_echo_it(core: ModuleType) -> None:
    seen: list[Any] = []

    def reader(headers: Any) -> str:
        raise AssertionError("an outer component resolved the id")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(core.context_get()))
        await start_app(scope, receive, send)

    outer = core.RequestIdStage("x-request-id", "outer", generator=lambda: "from-outer")
    downstream = Recorder()
    scope = http_scope(headers=[(b"x-correlation-id", b"c")])
    run(core.Pipeline(app, [outer, id_stage(core, reader)])(scope, feeder([]), downstream))
    assert seen == [{"cid": "c", "rid": "from-outer"}]
    # The outer stage set its id in place of the app's; the context stage echoed only the other key.
    assert downstream.headers == [(b"x-request-id", b"from-outer"), (b"a", b"1"), (b"x-correlation-id", b"c")]


def test_a_request_id_that_is_not_a_str_decides_nothing_and_echoes_nothing(core: ModuleType) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope.get(ID_KEY, "unset"), CORRELATION_ID.get(), dict(core.context_get())))
        await start_app(scope, receive, send)

    downstream = Recorder()
    run(core.Pipeline(app, [id_stage(core, lambda headers: None)])(http_scope(), feeder([]), downstream))
    assert seen == [("unset", None, {"cid": None, "rid": None})]
    assert downstream.headers == APP_HEADERS


# --------------------------------------------------------------------------- echoed when the response starts


class Meddling:
    """A context value whose ``str()`` rewrites the context (runs while the echo is built)."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data

    def __str__(self) -> str:
        self.data.clear()
        self.data.update({f"k{n}": n for n in range(40)})
        return "meddled"


@pytest.mark.parametrize("edit", ["none", "replace", "readd", "delete", "none_value", "many", "meddle", "bad"])
def test_echo_reads_the_context_the_app_left(core: ModuleType, edit: str) -> None:
    # The echoed values are the ones the stage's context holds when the response starts,
    # whatever the app did to it; both twins agree (the compiled one scans small contexts
    # and reuses the header bytes it read while the value is unchanged).
    readers = [("id", core.UUIDHeaderReader("x-request-id")), ("b", lambda headers: "from-b"), ("c", lambda h: 7)]
    echo = [("id", "x-request-id"), ("b", "x-b"), ("c", "x-c")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        data = core.context_get()
        if edit == "replace":
            data["id"] = "replaced"
        elif edit == "readd":
            value = data.pop("b")
            data["".join(["b"])] = value + "!"  # an equal key, not the stage's own object
        elif edit == "delete":
            del data["c"]
        elif edit == "none_value":
            data["id"] = None
        elif edit == "many":
            data.update({f"extra{n}": n for n in range(30)})
            data["c"] = 8
        elif edit == "meddle":
            data["id"] = Meddling(data)
        elif edit == "bad":
            data["b"] = "a\r\nSet-Cookie: x=1"
        await start_app(scope, receive, send)

    downstream = Recorder()
    pipeline = core.Pipeline(app, [core.ContextStage(readers, echo)])
    run(pipeline(http_scope(headers=[(b"x-request-id", RID.encode())]), feeder([]), downstream))
    echoed = [(name, value) for name, value in downstream.headers if name.startswith(b"x-") and name != b"x-request-id"]
    expected = {
        "none": [(b"x-b", b"from-b"), (b"x-c", b"7")],
        "replace": [(b"x-b", b"from-b"), (b"x-c", b"7")],
        "readd": [(b"x-b", b"from-b!"), (b"x-c", b"7")],
        "delete": [(b"x-b", b"from-b")],
        "none_value": [(b"x-b", b"from-b"), (b"x-c", b"7")],
        "many": [(b"x-b", b"from-b"), (b"x-c", b"8")],
        "meddle": [],
        "bad": [(b"x-c", b"7")],
    }[edit]
    assert echoed == expected
    ids = [value for name, value in downstream.headers if name == b"x-request-id" and value != b"app"]
    assert ids == {"replace": [b"replaced"], "none_value": [], "meddle": [b"meddled"]}.get(edit, [RID.encode()])

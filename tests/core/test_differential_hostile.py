"""Differential tests with hostile objects: subclasses of bytes, str, list, tuple and dict,
bytearray and memoryview, objects whose ``__len__``, ``__eq__``, ``__hash__`` or
``__getitem__`` lie or raise, and header lists changed while they are read (from an
entry's own ``__len__``). Both twins give equal results or equal exceptions with equal
messages; neither crashes (the compiled one used to, with a segfault)."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core._hostile import (
    CONTAINER_KINDS,
    ENTRY_KINDS,
    ITEM_NAMES,
    Bytes,
    LyingBytes,
    LyingText,
    RaisingBytes,
    Text,
    headers,
    item,
    outcome,
    shape,
)

ENTRY = st.tuples(st.sampled_from(ENTRY_KINDS), st.sampled_from(ITEM_NAMES), st.sampled_from(ITEM_NAMES))
RECIPE = st.tuples(st.sampled_from(CONTAINER_KINDS), st.lists(ENTRY, max_size=5))
KEY = st.sampled_from(ITEM_NAMES)
READS = ("header_get", "header_getlist", "header_contains")
LISTINGS = ("header_items", "header_keys", "header_values")
WRITES = ("header_set", "header_setdefault", "header_append", "header_delete", "add_vary_header", "header_update")
HOSTILE = settings(max_examples=300)


def _write(twin: ModuleType, op: str, target: Any, key: Any, value: Any) -> Any:
    if op == "header_delete":
        return getattr(twin, op)(target, key)
    if op == "add_vary_header":
        return twin.add_vary_header(target, value)
    if op == "header_update":
        return twin.header_update(target, [(key, value), [key, value], (key,)])
    return getattr(twin, op)(target, key, value)


@HOSTILE
@given(recipe=RECIPE, key=KEY)
def test_reads_of_hostile_headers_agree(twins: tuple[ModuleType, ModuleType], recipe: Any, key: str) -> None:
    for name in READS:
        results = [outcome(getattr(twin, name), headers(recipe), item(key)) for twin in twins]
        assert results[0] == results[1], name
    for name in LISTINGS:
        results = [outcome(getattr(twin, name), headers(recipe)) for twin in twins]
        assert results[0] == results[1], name


@HOSTILE
@given(recipe=RECIPE, key=KEY, value=KEY, op=st.sampled_from(WRITES))
def test_writes_to_hostile_headers_agree(
    twins: tuple[ModuleType, ModuleType], recipe: Any, key: str, value: str, op: str
) -> None:
    results = []
    for twin in twins:
        target = headers(recipe)
        results.append((outcome(_write, twin, op, target, item(key), item(value)), shape(target)))
    assert results[0] == results[1]


@HOSTILE
@given(recipe=RECIPE, key=KEY, value=KEY, op=st.sampled_from(["get", "in", "getlist", "set", "del", "setdefault"]))
def test_mutable_headers_over_hostile_lists_agree(
    twins: tuple[ModuleType, ModuleType], recipe: Any, key: str, value: str, op: str
) -> None:
    results = []
    for twin in twins:
        target = headers(recipe)

        def run(view: Any, op: str = op) -> Any:
            if op == "get":
                return view.get(item(key))
            if op == "in":
                return item(key) in view
            if op == "getlist":
                return view.getlist(item(key))
            if op == "set":
                view[item(key)] = item(value)
            elif op == "del":
                del view[item(key)]
            else:
                return view.setdefault(item(key), item(value))
            return None

        def view_of(target: Any = target, twin: ModuleType = twin) -> Any:
            return run(twin.MutableHeaders(raw=target))

        results.append((outcome(view_of), shape(target)))
    assert results[0] == results[1]


@HOSTILE
@given(recipe=RECIPE)
def test_trace_reads_of_hostile_headers_agree(twins: tuple[ModuleType, ModuleType], recipe: Any) -> None:
    def trace(twin: ModuleType) -> Any:
        context = twin.trace_from_headers(headers(recipe))
        return (context.parent_id, context.flags, context.tracestate, context.parent_id and context.trace_id)

    assert outcome(trace, twins[0]) == outcome(trace, twins[1])
    replaced = []
    for twin in twins:
        context = twin.TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
        replaced.append(outcome(twin.replace_trace_headers, headers(recipe), context))
    assert replaced[0] == replaced[1]


@settings(max_examples=100)
@given(value=KEY)
def test_encoders_read_subclasses_by_content_alike(twins: tuple[ModuleType, ModuleType], value: str) -> None:
    for name in ("encode_header_name", "encode_header_value", "is_header_value"):
        results = [outcome(getattr(twin, name), item(value)) for twin in twins]
        assert results[0] == results[1], name


def test_the_reported_reproducers_raise_alike(twins: tuple[ModuleType, ModuleType]) -> None:
    lying = type("L", (list,), {"__len__": lambda self: 2})
    for twin in twins:
        assert outcome(twin.header_get, [lying()], b"x") == ("error", "IndexError", "list index out of range")
        # An existing bytes-subclass value is returned as its bytes, in both twins.
        assert outcome(twin.header_setdefault, [(b"x", Bytes(b"v"))], b"x", b"w") == ("ok", ("bytes", b"v"))
        assert outcome(twin.header_get, [(LyingBytes(b"X"), b"1")], "x") == ("ok", ("bytes", b"1"))
        assert outcome(twin.header_update, [], [("a",)]) == (
            "error",
            "TypeError",
            "header_update takes (name, value) pairs, not 1 items",
        )


# --------------------------------------------------------------------------- messages and scopes


class Message(dict):  # type: ignore[type-arg]
    """A dict subclass whose own get/__setitem__ lie or count: dict's own storage is what is read."""

    def get(self, key: Any, default: Any = None) -> Any:
        return "lie"

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        dict.__setitem__(self, "set-" + str(key), True)


MESSAGE_HEADERS = st.one_of(
    RECIPE.map(lambda recipe: ("recipe", recipe)),
    st.sampled_from([("value", None), ("value", 5), ("value", b"xy"), ("missing", None)]),
)
BODIES = st.sampled_from(["b", "Bytes", "LyingBytes", "bytearray", "memoryview", "str", "None", "missing"])
KINDS = st.sampled_from(
    ["http.response.start", "http.response.body", "websocket.accept", "websocket.close", "other", "Text-start"]
)


def _message(kind: str, body: str, found: Any, cls: type) -> dict[str, Any]:
    message: dict[str, Any] = cls()
    dict.__setitem__(message, "type", Text("http.response.start") if kind == "Text-start" else kind)
    dict.__setitem__(message, "status", 200)
    bodies: dict[str, Any] = {
        "b": b"abc",
        "Bytes": Bytes(b"abcd"),
        "LyingBytes": LyingBytes(b"abcde"),
        "str": "s",
        "None": None,
    }
    bodies.update({"bytearray": bytearray(b"ab"), "memoryview": memoryview(b"abcdef")})
    if body != "missing":
        dict.__setitem__(message, "body", bodies[body])
    where, what = found
    if where == "recipe":
        dict.__setitem__(message, "headers", headers(what))
    elif where == "value":
        dict.__setitem__(message, "headers", what)
    return message


@HOSTILE
@given(kind=KINDS, body=BODIES, found=MESSAGE_HEADERS, cls=st.sampled_from([dict, Message]))
def test_recorders_read_hostile_messages_alike(
    twins: tuple[ModuleType, ModuleType], kind: str, body: str, found: Any, cls: type
) -> None:
    results = [asyncio.run(_record(twin, _message(kind, body, found, cls))) for twin in twins]
    assert results[0] == results[1]


async def _record(twin: ModuleType, message: Any) -> list[Any]:
    """What a standalone SendRecorder and ReceiveRecorder make of ``message``."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return message

    recorder = twin.SendRecorder(send)
    try:
        await recorder(message)
        result: Any = ("ok", len(sent))
    except Exception as error:  # compared
        result = ("error", type(error).__name__, str(error))
    state = [recorder.started, recorder.complete, recorder.body_bytes, shape(recorder.headers)]
    wrapped = twin.ReceiveRecorder(receive, 4)
    try:
        await wrapped()
        got: Any = ("ok", wrapped.body_bytes, wrapped.body, wrapped.body_truncated)
    except Exception as error:  # compared
        got = ("error", type(error).__name__, str(error))
    return [result, state, got, shape(message), outcome(twin.message_headers, message)]


def test_memoryview_and_raising_objects_are_refused_alike(twins: tuple[ModuleType, ModuleType]) -> None:
    objects = [memoryview(b"x"), bytearray(b"x"), RaisingBytes(b"x-a"), LyingText("a\r\n"), Text("é"), 3.5]
    for value in objects:
        for name in ("encode_header_name", "encode_header_value"):
            assert outcome(getattr(twins[0], name), value) == outcome(getattr(twins[1], name), value), (name, value)
        for name in ("header_get", "header_getlist", "header_delete"):
            entries = [(b"x-a", b"1"), (RaisingBytes(b"X-A"), b"2")]
            compiled = outcome(getattr(twins[0], name), list(entries), value)
            assert compiled == outcome(getattr(twins[1], name), list(entries), value), (name, value)


@settings(max_examples=100)
@given(
    keys=st.sampled_from(["tuple", "list", "ListSub", "ListLen1", "RaisingLen"]),
    values=st.lists(st.sampled_from(["b", "Bytes", "LyingBytes", "bytearray", "Text", "LyingText", "int"]), max_size=3),
)
def test_access_records_of_subclasses_agree(twins: tuple[ModuleType, ModuleType], keys: str, values: list[str]) -> None:
    made: dict[str, Any] = {
        "b": b"a\x01",
        "Bytes": Bytes(b"\xff"),
        "LyingBytes": LyingBytes(b"ok"),
        "bytearray": bytearray(b"x"),
    }
    made.update({"Text": Text("t\n"), "LyingText": LyingText("x"), "int": True})
    names = [f"k{i}" for i in range(len(values))]
    containers: dict[str, Any] = {
        "tuple": tuple,
        "list": list,
        "ListSub": type("ListSub", (list,), {}),
        "ListLen1": type("ListLen1", (list,), {"__len__": lambda self: 1}),
        "RaisingLen": type("RaisingLen", (list,), {"__len__": lambda self: 1 // 0}),
    }
    results = [
        outcome(twin.encode_access_record, containers[keys](names), [made[value] for value in values]) for twin in twins
    ]
    assert results[0] == results[1]
    assert shape(LyingText("x")) == ("LyingText", "x")


def _render(twin: ModuleType, files: Any, duration_le: Any, size_le: Any, *chunk_size: Any) -> Any:
    chunks = twin.HistogramChunks(files, duration_le, size_le, False, *chunk_size)
    return [*chunks, chunks.methods]


def test_metrics_render_takes_what_it_checked(twins: tuple[ModuleType, ModuleType]) -> None:
    # More bounds than the layout holds, and sequences whose len()/iteration disagree.
    lying = type("Lying", (list,), {"__len__": lambda self: 1})
    lying_tuple = type("LyingTuple", (tuple,), {"__iter__": lambda self: iter([b"", b"x" * 5000])})
    cases: list[Any] = [
        lambda: ([], ["1"] * 100, ["1"]),
        lambda: ([], ["1"], ["2"] * 65),
        lambda: (lying([b"x", 5]), ["1"], ["2"]),
        lambda: ([], lying(["1"] * 80), ["2"]),
        lambda: (iter([b""]), iter(["1"]), ("2",)),
        lambda: (lying_tuple([b"y"]), ["1"], ["2"]),
        lambda: ([Bytes(bytes(5000))], ["1"], ["2"]),
        lambda: ([b""], [Text("1")], ["2"]),
        lambda: ([b""], ["1"], ["2"], True),
        lambda: ([b""], ["1"], ["2"], 2.0),
        lambda: ([b""], ["1"], ["2"], type("Size", (int,), {})(7)),
        lambda: ([b""], ["1"], ["2"], 0),
        lambda: ([b""], ["1"], ["2"], 2**70),
        lambda: ([b""], ["1"], ["2"], -(2**70)),
        lambda: ([b""], ["1"], ["2"], 1),
    ]
    for case in cases:
        results = [outcome(_render, twin, *case()) for twin in twins]
        assert results[0] == results[1], case()

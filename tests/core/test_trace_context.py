"""Core TraceContext and the trace kernel in both twins: trace_from_headers, replace_trace_headers."""

from __future__ import annotations

import pickle
from types import ModuleType
from typing import Any

import pytest

from tests.core._trace_values import HEX16, HEX32, PARENT, TRACE, TRACEPARENT, VALID


def headers_with(*pairs: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"example.com"), *pairs, (b"accept", b"*/*")]


@pytest.mark.parametrize("name", [b"traceparent", b"TraceParent", b"TrAcEpArEnT", b"TRACEPARENT"])
def test_a_valid_traceparent_is_continued_with_a_new_span(core: ModuleType, name: bytes) -> None:
    context = core.trace_from_headers(headers_with((name, VALID.encode())))
    assert (context.trace_id, context.parent_id, context.flags, context.sampled) == (TRACE, PARENT, 1, True)
    assert HEX16.fullmatch(context.span_id) and context.span_id != PARENT
    assert context.tracestate is None


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"trace-parent", VALID.encode())],
        [(b"trace.parent", VALID.encode())],
        [(b"traceparent", f"00-{'0' * 32}-{PARENT}-01".encode())],
        [(b"traceparent", VALID.encode()), (b"traceparent", VALID.encode())],
        [(b"traceparent", VALID.encode()), (b"TRACEPARENT", b"")],
        [(b"traceparent", b"\r\nx-injected: 1" + b"a" * 10_000)],
    ],
)
def test_a_missing_or_invalid_traceparent_starts_a_new_trace(core: ModuleType, headers: list[Any]) -> None:
    context = core.trace_from_headers([*headers, (b"tracestate", b"foo=1")])
    assert HEX32.fullmatch(context.trace_id) and context.trace_id != TRACE
    assert context.parent_id is None and context.tracestate is None
    assert context.flags == 0x02 and not context.sampled  # random ids, not sampled by default
    assert core.trace_from_headers(headers, True).flags == 0x03


def test_unknown_flags_are_not_propagated(core: ModuleType) -> None:
    for flags, kept in (("ff", 0x03), ("02", 0x02), ("fc", 0x00), ("05", 0x01)):
        context = core.trace_from_headers([(b"traceparent", f"00-{TRACE}-{PARENT}-{flags}".encode())])
        assert context.flags == kept
        assert context.traceparent == f"00-{TRACE}-{context.span_id}-{kept:02x}"


def test_a_future_version_is_sent_on_as_version_00(core: ModuleType) -> None:
    headers = [(b"traceparent", f"cc-{TRACE}-{PARENT}-01-future".encode()), (b"tracestate", b"a=1")]
    context = core.trace_from_headers(headers)
    assert context.trace_id == TRACE and context.tracestate == "a=1"
    assert context.child_traceparent().startswith(f"00-{TRACE}-") and context.child_traceparent().endswith("-01")


def test_tracestate_needs_a_valid_traceparent_and_is_combined(core: ModuleType) -> None:
    headers = [
        (b"TraceState", b"foo=1,bar=2"),
        (b"traceparent", VALID.encode()),
        (b"tracestate", b" rojo=1 , congo=2"),
        (b"TRACESTATE", b""),
        (b"tracestate", b"baz=3,foo=4"),
    ]
    assert core.trace_from_headers(headers).tracestate == "foo=1,bar=2,rojo=1,congo=2,baz=3"
    assert core.trace_from_headers([*headers, (b"tracestate", b"@bad=1")]).tracestate is None
    assert core.trace_from_headers([(b"traceparent", VALID.encode()), (b"tracestate", b"")]).tracestate is None


def test_header_entries_are_checked_like_header_get(core: ModuleType) -> None:
    assert core.trace_from_headers(iter([[b"traceparent", VALID.encode()]])).trace_id == TRACE
    assert core.trace_from_headers(((b"traceparent", VALID.encode()),)).trace_id == TRACE
    for bad, message in (
        ([1], "ASGI header entry must be a (name, value) pair, not int"),
        ([(b"a",)], "ASGI header entry must have 2 items, not 1"),
        ([(b"a", "b")], "ASGI header value must be bytes, not str"),
        ([("traceparent", VALID)], "ASGI header name must be bytes, not str"),
    ):
        with pytest.raises(TypeError) as info:
            core.trace_from_headers([(b"traceparent", VALID.encode()), *bad])
        assert str(info.value) == message
    with pytest.raises(TypeError, match="not iterable"):
        core.trace_from_headers(1)


def test_replace_trace_headers(core: ModuleType) -> None:
    headers = [(b"host", b"a"), (b"TraceParent", b"bogus"), [b"x", b"y"], (b"tracestate", b"a=1"), (b"accept", b"b")]
    context = core.TraceContext(TRACE, "a" * 16, PARENT, 1, "k=v")
    replaced = core.replace_trace_headers(headers, context)
    assert replaced == [
        (b"host", b"a"),
        [b"x", b"y"],
        (b"accept", b"b"),
        (b"traceparent", f"00-{TRACE}-{'a' * 16}-01".encode()),
        (b"tracestate", b"k=v"),
    ]
    assert replaced[1] is headers[2] and len(headers) == 5  # a copy, the input is untouched
    assert core.replace_trace_headers([], core.TraceContext(TRACE, "a" * 16))[-1][0] == b"traceparent"
    with pytest.raises(TypeError, match="context must be a TraceContext, not str"):
        core.replace_trace_headers(headers, "x")


def test_trace_context_is_read_only_and_compares_by_value(core: ModuleType) -> None:
    context = core.TraceContext(TRACE, "b" * 16, PARENT, 3, " a=1 , b=2,, ")
    assert context.tracestate == "a=1,b=2" and context.sampled
    assert context == core.TraceContext(TRACE, "b" * 16, PARENT, 3, "a=1,b=2")
    assert context != core.TraceContext(TRACE, "c" * 16, PARENT, 3, "a=1,b=2") and context != "x"
    assert hash(context) == hash(core.TraceContext(TRACE, "b" * 16, PARENT, 3, "a=1,b=2"))
    assert repr(context) == (
        f"TraceContext(trace_id='{TRACE}', span_id='{'b' * 16}', parent_id='{PARENT}', flags=3, tracestate='a=1,b=2')"
    )
    assert pickle.loads(pickle.dumps(context)) == context
    for name in ("trace_id", "span_id", "parent_id", "flags", "tracestate", "sampled", "traceparent"):
        with pytest.raises(AttributeError):
            setattr(context, name, None)
    with pytest.raises(AttributeError):
        del context.trace_id
    assert core.TraceContext(TRACE, PARENT).parent_id is None and core.TraceContext(TRACE, PARENT).flags == 0
    assert core.TraceContext(TRACE, PARENT, tracestate="").tracestate is None


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (
            ("4BF92F3577B34DA6A3CE929D0E0E4736", PARENT),
            ValueError,
            "trace_id must be 32 lower-case hex digits, not all zero: ",
        ),
        (("0" * 32, PARENT), ValueError, "trace_id must be 32 lower-case hex digits"),
        ((TRACE + "0", PARENT), ValueError, "trace_id must be 32 lower-case hex digits"),
        ((1, PARENT), TypeError, "trace_id must be a str, not int"),
        ((TRACE, "0" * 16), ValueError, "span_id must be 16 lower-case hex digits"),
        ((TRACE, PARENT, "x"), ValueError, "parent_id must be 16 lower-case hex digits, not all zero: 'x'"),
        ((TRACE, PARENT, b"1234567890123456"), TypeError, "parent_id must be a str, not bytes"),
        ((TRACE, PARENT, None, 256), ValueError, "flags must be an int from 0 to 255, not '256'"),
        ((TRACE, PARENT, None, "1"), ValueError, "flags must be an int from 0 to 255"),
        ((TRACE, PARENT, None, 1, b"a=1"), TypeError, "tracestate must be a str or None, not bytes"),
        ((TRACE, PARENT, None, 1, "a=1\r\nx"), ValueError, "tracestate is not a valid W3C tracestate: 'a=1\\r\\nx'"),
        ((TRACE, PARENT, None, 1, "Bad=1"), ValueError, "tracestate is not a valid W3C tracestate"),
    ],
)
def test_trace_context_checks_its_values(core: ModuleType, args: tuple[Any, ...], error: type, message: str) -> None:
    with pytest.raises(error) as info:
        core.TraceContext(*args)
    assert str(info.value).startswith(message)


def test_traceparents_of_a_context(core: ModuleType) -> None:
    context = core.TraceContext(TRACE, "b" * 16, PARENT, 2)
    assert context.traceparent == f"00-{TRACE}-{'b' * 16}-02"
    children = {context.child_traceparent() for _ in range(50)}
    assert len(children) == 50
    for child in children:
        assert child.startswith(f"00-{TRACE}-") and child.endswith("-02") and TRACEPARENT.fullmatch(child)
        assert core.parse_traceparent(child)[:1] == (TRACE,)


@pytest.mark.parametrize(
    ("tracestate", "kept"),
    [
        (b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        (b"a=1 , ,b=2", b"a=1,b=2"),
        (b"bad key=1", None),
        (b"a=1\r\nx: y", None),
        (b"", None),
    ],
)
def test_the_request_tracestate_is_checked_however_it_is_first_read(
    core: ModuleType, tracestate: bytes, kept: bytes | None
) -> None:
    # The compiled kernel checks a single tracestate header when it is first needed: the
    # outgoing headers and the attribute give the same answer, whichever comes first.
    headers = headers_with((b"traceparent", VALID.encode()), (b"tracestate", tracestate))
    first, second = core.trace_from_headers(headers), core.trace_from_headers(headers)
    rewritten = core.replace_trace_headers([], first)
    assert [value for name, value in rewritten if name == b"tracestate"] == ([] if kept is None else [kept])
    assert first.tracestate == second.tracestate == (None if kept is None else kept.decode())
    assert first == core.TraceContext(first.trace_id, first.span_id, PARENT, 1, first.tracestate)

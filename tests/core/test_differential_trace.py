"""Differential tests of the trace kernel: both core twins get the same inputs and must agree
on results (random span and new trace ids aside) and on exception type and message."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.core.test_differential import as_container, outcome

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
HEX = "0123456789abcdef"
# Near-valid fields: mostly lower-case hex, sometimes a character the grammar refuses.
NEAR_HEX = st.sampled_from([*HEX, *HEX, *HEX, "0", "0", "0", "A", "F", ".", "-", " ", "\t", "g", "é"])


def field(size: int) -> st.SearchStrategy[str]:
    exact = st.text(NEAR_HEX, min_size=size, max_size=size)
    return st.one_of(exact, exact, st.just("0" * size), st.text(NEAR_HEX, max_size=size + 2))


VERSION = st.one_of(field(2), st.sampled_from(["00", "00", "01", "cc", "fe", "ff", "FF"]))
SUFFIX = st.one_of(st.just(""), st.just(""), st.text(max_size=8), st.sampled_from(["-x", ".x", "-", "\r\n", "\x00"]))
OWS = st.text(" \t", max_size=3)
TRACEPARENT_TEXT = st.one_of(
    st.builds(
        lambda ows1, version, trace, parent, flags, suffix, ows2: (
            f"{ows1}{version}-{trace}-{parent}-{flags}{suffix}{ows2}"
        ),
        OWS,
        VERSION,
        field(32),
        field(16),
        field(2),
        SUFFIX,
        OWS,
    ),
    st.text(max_size=60),
)
TRACEPARENT = st.one_of(
    TRACEPARENT_TEXT,
    TRACEPARENT_TEXT.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=60),
    st.sampled_from([None, 1, ["x"]]),
)

KEY_CHAR = st.sampled_from([*"abcxyz0189_-*/@", "A", " ", "=", ".", "é"])
VALUE_CHAR = st.sampled_from([*"abc019 !~+-<>/", ",", "=", "\t", "\x7f", "\x00", "é"])
MEMBER = st.builds(
    lambda ows1, key, value, ows2: f"{ows1}{key}={value}{ows2}",
    OWS,
    st.one_of(st.text(KEY_CHAR, min_size=1, max_size=6), st.sampled_from(["a", "b", "a", "z" * 256, "z" * 257])),
    st.one_of(st.text(VALUE_CHAR, max_size=6), st.sampled_from(["1", "2", "v" * 256, "v" * 257, "x" * 130])),
    OWS,
)
TRACESTATE_TEXT = st.one_of(
    st.lists(st.one_of(MEMBER, MEMBER, MEMBER, OWS, st.text(max_size=4)), max_size=40).map(",".join),
    st.text(max_size=20),
)
TRACESTATE = st.one_of(
    TRACESTATE_TEXT,
    TRACESTATE_TEXT.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=20),
    st.sampled_from([None, 1]),
)

NAME = st.sampled_from([b"traceparent", b"TraceParent", b"TRACEPARENT", b"tracestate", b"TraceState", b"host", b"x"])
VALUE_BYTES = st.one_of(
    TRACEPARENT_TEXT.map(lambda text: text.encode("utf-8")), TRACESTATE_TEXT.map(lambda text: text.encode("utf-8"))
)
ENTRY = st.one_of(
    st.tuples(NAME, VALUE_BYTES),
    st.tuples(NAME, VALUE_BYTES),
    st.lists(st.one_of(NAME, VALUE_BYTES), min_size=2, max_size=2),
    st.tuples(NAME),
    st.tuples(st.text(max_size=3), st.binary(max_size=3)),
    st.tuples(NAME, st.text(max_size=3)),
    st.integers(),
)
HEADERS = st.lists(ENTRY, max_size=6)
CONTAINER = st.sampled_from(["list", "tuple", "iter"])


def stable(context: Any) -> tuple[Any, ...]:
    """What both twins must agree on: everything but the random ids of a new trace or span."""
    continued = context.parent_id is not None
    return (
        context.trace_id if continued else len(context.trace_id),
        len(context.span_id),
        context.parent_id,
        context.flags,
        context.tracestate,
    )


@given(value=TRACEPARENT)
@example(value=f"cc-{TRACE}-{PARENT}-01-future")
@example(value=f"00-{TRACE}-{PARENT}-01 ")
def test_parse_traceparent_agrees(twins: tuple[ModuleType, ModuleType], value: Any) -> None:
    compiled, pure = twins
    assert outcome(compiled.parse_traceparent, value) == outcome(pure.parse_traceparent, value)


@given(values=st.lists(TRACESTATE, max_size=4))
@example(values=["a=1," * 33])
@example(values=["k=" + "v" * 256, "a=1", "j=" + "v" * 256])
def test_parse_tracestate_agrees(twins: tuple[ModuleType, ModuleType], values: list[Any]) -> None:
    compiled, pure = twins
    assert outcome(compiled.parse_tracestate, *values) == outcome(pure.parse_tracestate, *values)


@given(entries=HEADERS, kind=CONTAINER, sample_new=st.booleans())
@example(
    entries=[(b"traceparent", f"00-{TRACE}-{PARENT}-03".encode()), (b"tracestate", b"a=1")],
    kind="list",
    sample_new=False,
)
def test_trace_from_headers_agrees(
    twins: tuple[ModuleType, ModuleType], entries: list[Any], kind: str, sample_new: bool
) -> None:
    compiled, pure = twins
    results = []
    for twin in (compiled, pure):
        result = outcome(twin.trace_from_headers, as_container(entries, kind), sample_new)
        results.append(("ok", stable(result[1])) if result[0] == "ok" else result)
    assert results[0] == results[1]


ID_ARG = st.one_of(field(32), field(16), st.none(), st.integers(), st.binary(max_size=4))
FLAGS_ARG = st.one_of(st.integers(-2, 258), st.booleans(), st.none(), st.text(max_size=2))


@given(
    trace_id=st.one_of(field(32), ID_ARG),
    span_id=st.one_of(field(16), ID_ARG),
    parent_id=ID_ARG,
    flags=FLAGS_ARG,
    tracestate=st.one_of(TRACESTATE_TEXT, st.none(), st.binary(max_size=3)),
)
def test_trace_context_agrees(
    twins: tuple[ModuleType, ModuleType], trace_id: Any, span_id: Any, parent_id: Any, flags: Any, tracestate: Any
) -> None:
    compiled, pure = twins
    results = []
    for twin in (compiled, pure):
        made = outcome(twin.TraceContext, trace_id, span_id, parent_id, flags, tracestate)
        if made[0] == "ok":
            context = made[1]
            made = ("ok", repr(context), context.sampled, context.traceparent)
        results.append(made)
    assert results[0] == results[1]
    formatted = [outcome(twin.format_traceparent, trace_id, span_id, flags) for twin in twins]
    assert formatted[0] == formatted[1]


@given(entries=HEADERS, kind=CONTAINER, tracestate=st.one_of(st.none(), st.just("a=1,b=2")))
def test_replace_trace_headers_agrees(
    twins: tuple[ModuleType, ModuleType], entries: list[Any], kind: str, tracestate: str | None
) -> None:
    results = []
    for twin in twins:
        context = twin.TraceContext(TRACE, PARENT, None, 1, tracestate)
        results.append(outcome(twin.replace_trace_headers, as_container(entries, kind), context))
    assert results[0] == results[1]

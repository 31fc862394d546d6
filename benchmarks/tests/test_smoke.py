"""Every benchmark stack still answers one request correctly (so the suite cannot silently rot)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest

from benchmarks import _driver, _hand, _measure, _rows, _trace_group, _twins, report, stacks
from fastmw.types import Receive, Scope, Send

# Both twins in the compiled pass of make test (see the `once` marker).
pytestmark = pytest.mark.once

CASES = [
    pytest.param(group, stack, id=f"{group.key}-{stack.name}")
    for group in stacks.groups()
    for stack in group.stacks
    if stack.build is not None
]


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    with stacks.saved_loggers():
        yield


@pytest.mark.parametrize(("group", "stack"), CASES)
def test_stack_answers_with_expected_headers(group: _rows.Group, stack: _rows.Stack) -> None:
    assert stack.build is not None
    if stack.before is not None:
        stack.before()
    inner = stacks.raw_app
    app = stack.build(inner)
    capture = _driver.Capture()

    async def once() -> None:
        await app(_driver.new_scope(group.headers), _driver.Receive(), capture)

    asyncio.run(once())
    assert capture.status == 200
    assert capture.body == b"ok"
    for header, value in stack.expect.items():
        got = capture.headers.get(header.encode())
        assert got is not None, f"missing response header {header}"
        if value is not None:
            assert got == value
    if stack.check is not None:
        assert stack.check(inner) == ""
    if group.driver == "sync":  # the cheap driver refuses an app that suspends
        assert _driver.run_sync(app, 2, group.headers) > 0


def test_echoed_ids_are_the_incoming_ones() -> None:
    expect = stacks.CTX | stacks.RID
    assert set(expect) == {"x-request-id", "x-correlation-id"}
    app = _hand.HandContext(stacks.raw_app)
    capture = _driver.Capture()
    asyncio.run(app(_driver.new_scope(), _driver.Receive(), capture))
    assert capture.headers[b"x-request-id"] == _driver.REQUEST_ID
    assert capture.headers[b"x-correlation-id"] == _driver.CORRELATION_ID


def test_hand_error_middleware_turns_an_exception_into_500() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    for middleware in (_hand.HandError, _hand.BaseError):
        capture = _driver.Capture()
        with stacks.saved_loggers():
            stacks.set_logger(_hand.HAND_LOGGER, "disabled")
            asyncio.run(middleware(boom)(_driver.new_scope(), _driver.Receive(), cast(Send, capture)))
        assert capture.status == 500
        assert capture.body == _hand.ERROR_BODY


def test_every_group_has_bare_and_a_hand_written_row() -> None:
    for group in stacks.groups():
        kinds = [stack.kind for stack in group.stacks]
        assert kinds[0] == "bare"
        assert "hand" in kinds
        names = [stack.name for stack in group.stacks]
        assert len(names) == len(set(names)), group.key


def test_only_the_trace_group_sends_trace_headers() -> None:
    for group in stacks.groups():
        traced = group.key == "trace"
        assert group.headers == (_driver.TRACE_REQUEST_HEADERS if traced else _driver.REQUEST_HEADERS), group.key
    assert _driver.TRACE_REQUEST_HEADERS == [*_driver.REQUEST_HEADERS, *_driver.TRACE_HEADERS]
    names = {name for name, _ in _driver.REQUEST_HEADERS}
    assert not names & {b"traceparent", b"tracestate"}


def test_the_trace_checks_fail_on_the_wrong_stack() -> None:
    compiled, pure = _twins.original(), _twins.pure_copy()
    alone = compiled.TraceContextMiddleware
    traced = _trace_group.continues_trace(compiled)
    assert traced(lambda app: _trace_group.alone(app, alone), stacks.raw_app) == ""
    assert "continue the sent trace" in traced(compiled.stack, stacks.raw_app)
    # the pure copy's context is its own: it does not see the original's trace
    assert "continue the sent trace" in _trace_group.continues_trace(pure)(
        lambda app: _trace_group.alone(app, alone), stacks.raw_app
    )
    assert "no current trace" in _trace_group.no_trace(compiled)(
        lambda app: _trace_group.stacked(app, compiled.stack), stacks.raw_app
    )
    assert "new span in the sent trace" in _trace_group.otel_continues_trace(lambda app: app, stacks.raw_app)


def test_the_opentelemetry_row_starts_a_trace_without_traceparent() -> None:
    from opentelemetry import trace

    seen: list[tuple[trace.SpanContext, dict[str, str]]] = []

    async def app(scope: dict[str, Any], receive: object, send: object) -> None:
        seen.append((trace.get_current_span().get_span_context(), scope["state"][_trace_group.OUTGOING]))
        await stacks.raw_app(scope, receive, send)

    assert _driver.request_once(_trace_group.HandOtelTrace(app)).status == 200
    [(span, outgoing)] = seen
    assert span.is_valid and not span.trace_state
    assert outgoing == {"traceparent": f"00-{span.trace_id:032x}-{span.span_id:016x}-00"}
    assert not trace.get_current_span().get_span_context().is_valid  # detached after the request


def test_missing_fastmw_pieces_are_reported_not_raised() -> None:
    rows = [stack for group in stacks.groups() for stack in group.stacks if stack.kind.startswith("fastmw")]
    assert rows
    for stack in rows:
        assert (stack.build is None) == bool(stack.missing)


def test_pure_copy_is_independent_and_pure() -> None:
    pure = _twins.pure_copy()
    assert pure is not _twins.original()
    assert pure.COMPILED is False
    assert pure._impl.core.__name__ == "fastmw._core_py"
    import fastmw

    assert fastmw is _twins.original()


def test_every_compared_line_has_fastmw_compiled_and_pure_and_a_peer() -> None:
    for group in stacks.groups():
        for variant in group.compared_variants():
            kinds = [stack.kind for stack in group.stacks if stack.variant == variant]
            assert {"fastmw-c", "fastmw-py"} <= set(kinds), (group.key, variant)
            assert set(kinds) - {"fastmw-c", "fastmw-py"}, (group.key, variant)


def test_the_comparison_table_has_a_line_per_compared_variant_and_a_column_per_kind() -> None:
    group = next(group for group in stacks.groups(["access log"]))
    # Made-up samples: timing them here would spend a gc.collect() per row and round.
    rows = {
        stack.name: _measure.Row(stack.name, stack.kind, stack.variant, samples=[2e-6] * 4)
        if stack.build is not None
        else _measure.Row(stack.name, stack.kind, stack.variant, status="n/a")
        for stack in group.stacks
    }
    data = report.comparison([_measure.GroupResult(group, 1, 4, rows)])
    assert [line["work"] for line in data["lines"]] == [stacks.LOG_OFF, stacks.LOG_NULL, stacks.LOG_JSON]
    assert [kind for kind, _ in data["columns"]] == ["fastmw-c", "fastmw-py", "hand"]
    import fastmw

    for line in data["lines"]:
        assert set(line["cells"]) == {"fastmw-c", "fastmw-py", "hand"}
        compiled = line["cells"].pop("fastmw-c")  # n/a on the pure run
        assert isinstance(compiled, float) if fastmw.COMPILED else compiled == "n/a"
        assert all(isinstance(value, float) for value in line["cells"].values())
    text = report.comparison_table(data)
    assert text.splitlines()[0].startswith("µs per request over the bare app")
    assert len(text.splitlines()) == 2 + 3


def test_a_group_is_measured_after_its_rows_are_checked() -> None:
    bare, hand = _rows.Stack("bare", "bare", lambda app: app), _rows.Stack("hand", "hand", _hand.HandError)
    broken = _rows.Stack("broken", "hand", _hand.HandTiming, expect={"x-missing": None})
    group = _rows.Group("tiny", "tiny", [bare, hand, broken], _driver.REQUEST_HEADERS)
    result = _measure.measure(group, rounds=1, batch=1)
    assert [len(row.samples) for row in result.rows.values()] == [1, 1, 0]
    assert result.rows["broken"].status == "error" and "x-missing" in result.rows["broken"].reason


def test_a_kind_without_a_title_gets_a_column_after_the_known_ones() -> None:
    fake = _rows.Group("fake", "fake work", [_rows.Stack("bare", "bare", lambda app: app)], _driver.REQUEST_HEADERS)
    rows = {
        "bare": _measure.Row("bare", "bare", samples=[1e-6] * 4),
        "x": _measure.Row("x", "some-library", samples=[5e-6] * 4),
        "c": _measure.Row("c", "fastmw-c", samples=[2e-6] * 4),
        "h": _measure.Row("h", "hand", status="n/a"),
    }
    fake.stacks += [_rows.Stack(name, row.kind, None) for name, row in rows.items() if name != "bare"]
    data = report.comparison([_measure.GroupResult(fake, 1, 4, rows)])
    assert data["columns"] == [
        ["fastmw-c", "fastmw compiled"],
        ["hand", "hand-written"],
        ["some-library", "some-library"],
    ]
    [line] = data["lines"]
    assert line["cells"] == {"some-library": 4000.0, "fastmw-c": 1000.0, "hand": "n/a"}
    assert report.versus(line["cells"]) == 4.0


def test_the_header_floor_servers_send_what_the_stacks_add() -> None:
    from benchmarks import e2e, e2e_instructions

    if e2e._find_stack("fastmw stack()").build is None:
        pytest.skip("the e2e fastmw stacks are the compiled rows")
    added = dict(e2e_instructions.added_headers("fastmw stack()"))
    assert set(added) == {b"x-request-id", b"x-process-time", b"server-timing"}
    assert added[b"x-request-id"] == _driver.REQUEST_ID
    five = dict(e2e_instructions.added_headers("fastmw five (compiled)"))
    assert set(five) == set(added) | {b"x-correlation-id"}
    assert dict(e2e_instructions.added_headers("bare")) == {}

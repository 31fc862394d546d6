"""Every benchmark stack still answers one request correctly (so the suite cannot silently rot)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from benchmarks import _driver, _trace_group, _twins, core_ops, stacks

CASES = [
    pytest.param(group, stack, id=f"{group.name}-{stack.name}")
    for group in stacks.groups()
    for stack in group.stacks
    if stack.build is not None
]


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    with stacks.saved_loggers():
        yield


@pytest.mark.parametrize(("group", "stack"), CASES)
def test_stack_answers_with_expected_headers(group: stacks.Group, stack: stacks.Stack) -> None:
    assert stack.build is not None
    if stack.before is not None:
        stack.before()
    inner = stacks.inner_app(group.inner)
    app = stack.build(inner)
    capture = _driver.Capture()
    asyncio.run(app(_driver.new_scope(group.headers), _driver.Receive(), capture))
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
    app = stacks.HandContext(stacks.raw_app)
    capture = _driver.Capture()
    asyncio.run(app(_driver.new_scope(), _driver.Receive(), capture))
    assert capture.headers[b"x-request-id"] == _driver.REQUEST_ID
    assert capture.headers[b"x-correlation-id"] == _driver.CORRELATION_ID


def test_hand_error_middleware_turns_an_exception_into_500() -> None:
    async def boom(scope: dict[str, object], receive: object, send: object) -> None:
        raise RuntimeError("boom")

    for middleware in (stacks.HandError, stacks.BaseError):
        capture = _driver.Capture()
        with stacks.saved_loggers():
            stacks.set_logger(stacks.HAND_LOGGER, "disabled")
            asyncio.run(middleware(boom)(_driver.new_scope(), _driver.Receive(), capture))
        assert capture.status == 500
        assert capture.body == stacks.ERROR_BODY


def test_every_group_has_bare_and_a_hand_written_row() -> None:
    for group in stacks.groups():
        kinds = [stack.kind for stack in group.stacks]
        assert kinds[0] == "bare"
        assert "hand" in kinds
        names = [stack.name for stack in group.stacks]
        assert len(names) == len(set(names)), group.name


def test_only_the_trace_group_sends_trace_headers() -> None:
    for group in stacks.groups():
        traced = group.name.startswith("trace ")
        assert group.headers == (_driver.TRACE_REQUEST_HEADERS if traced else _driver.REQUEST_HEADERS), group.name
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


@pytest.mark.parametrize("op", list(core_ops.OPS))
def test_core_ops_run_on_each_twin(op: str) -> None:
    for module in core_ops.twins().values():
        if module is not None:
            assert core_ops.OPS[op](module)(3) >= 0


@pytest.mark.parametrize("name", list(core_ops.PIPELINES))
def test_core_ops_pipelines_answer_with_their_stages_headers(name: str) -> None:
    assert name in core_ops.OPS
    for module in core_ops.twins().values():
        if module is None:
            continue
        sent: list[dict[str, object]] = []

        async def keep(message: dict[str, object], sent: list[dict[str, object]] = sent) -> None:
            sent.append(message)

        core_ops.pipeline_once(core_ops.PIPELINES[name](module), keep)
        assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"
        headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
        assert (b"x-request-id" in headers) is ("Timing" not in name)
        assert (b"x-process-time" in headers) is ("RequestId" not in name)


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

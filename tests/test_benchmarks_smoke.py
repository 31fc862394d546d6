"""Every benchmark stack still answers one request correctly (so the suite cannot silently rot)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from benchmarks import _driver, _twins, core_ops, stacks

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
    app = stack.build(stacks.inner_app(group.inner))
    capture = _driver.Capture()
    asyncio.run(app(_driver.new_scope(), _driver.Receive(), capture))
    assert capture.status == 200
    assert capture.body == b"ok"
    for header, value in stack.expect.items():
        got = capture.headers.get(header.encode())
        assert got is not None, f"missing response header {header}"
        if value is not None:
            assert got == value
    if group.driver == "sync":  # the cheap driver refuses an app that suspends
        assert _driver.run_sync(app, 2) > 0


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

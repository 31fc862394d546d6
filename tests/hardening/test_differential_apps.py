"""Differential: apps that misbehave in every phase of a request, through the full stack
built on the compiled core and on a pure-core copy of fastmw. Both must send the same
messages, raise the same exception (type and message), log the same records, and refuse
the same late calls: ``send``/``receive`` kept past the end of the request (from the app or
a task it started) raise a RuntimeError that says so, and never touch released state."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmw
from tests.conftest import PURE_RUN, http_scope, twin_named
from tests.hardening._faults import listed_logger
from tests.hardening._stack import full_stack

pytestmark = pytest.mark.skipif(PURE_RUN or not fastmw.COMPILED, reason="differential tests need the compiled core")

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
BODY = {"type": "http.response.body", "body": b"ok"}
# What an app does, one step at a time; "late-*" steps run after the stack returned.
STEPS = (
    "receive",
    "start",
    "body",
    "body-more",
    "raise",
    "return",
    "spawn-late-send",
    "late-send-start",
    "late-send-body",
    "late-receive",
)
GENERATED = re.compile(r"[0-9a-f]{32}")
TIMED = re.compile(r"\d+\.\d+")


def normalise(value: Any) -> str:
    return TIMED.sub("<t>", GENERATED.sub("<id>", repr(value)))


def caught(error: BaseException) -> tuple[str, str]:
    return (type(error).__name__, str(error))


async def run_app(mw: Any, steps: list[str], cancel_at: int | None) -> list[Any]:
    """Run an app doing ``steps`` through the full stack; ``cancel_at``: cancel the request at
    the server's n-th send/receive await. Returns everything observable."""
    logger, handler = listed_logger(f"fastmw.hardening.apps.{mw.COMPILED}")
    records = handler.records
    held: dict[str, Any] = {}
    late: list[Any] = []
    tasks: list[asyncio.Task[Any]] = []

    async def late_send(send: Any) -> None:
        await asyncio.sleep(0)
        try:
            await send(dict(START))
        except Exception as error:  # compared
            late.append(("task", caught(error)))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        held["send"], held["receive"] = send, receive
        for step in steps:
            if step == "receive":
                await receive()
            elif step == "start":
                await send(dict(START))
            elif step == "body":
                await send(dict(BODY))
            elif step == "body-more":
                await send({**BODY, "more_body": True})
            elif step == "raise":
                raise ValueError("app failed")
            elif step == "return":
                return
            elif step == "spawn-late-send":
                tasks.append(asyncio.ensure_future(late_send(send)))

    stacked, _ = full_stack(app, logger=logger, reraise=True, mw=mw)
    sent: list[dict[str, Any]] = []
    awaits = 0
    blocked = asyncio.Event()

    async def server_await() -> None:
        nonlocal awaits
        awaits += 1
        if awaits == cancel_at:
            blocked.set()
            await asyncio.Event().wait()  # cancelled here

    async def send(message: dict[str, Any]) -> None:
        await server_await()
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        await server_await()
        return {"type": "http.request", "body": b"abc"}

    task = asyncio.ensure_future(stacked(http_scope("/a"), receive, send))
    if cancel_at is not None:
        waiter = asyncio.ensure_future(blocked.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        task.cancel()
    error: Any = None
    try:
        await task
    except BaseException as raised:  # compared, including CancelledError
        error = caught(raised)
    for step in steps:
        try:
            if step == "late-send-start" and "send" in held:
                await held["send"](dict(START))
            elif step == "late-send-body" and "send" in held:
                await held["send"](dict(BODY))
            elif step == "late-receive" and "receive" in held:
                await held["receive"]()
            else:
                continue
            late.append((step, "ok"))
        except Exception as raised:  # compared
            late.append((step, caught(raised)))
    for spawned in tasks:
        await spawned
    logged = [(r.getMessage(), getattr(r, "status", None), getattr(r, "request_id", None)) for r in records]
    return [sent, error, late, logged]


def outcomes(steps: list[str], cancel_at: int | None) -> list[str]:
    return [
        normalise(asyncio.run(run_app(mw, steps, cancel_at))) for mw in (twin_named("compiled"), twin_named("pure"))
    ]


@settings(max_examples=150)
@given(steps=st.lists(st.sampled_from(STEPS), max_size=6), cancel_at=st.one_of(st.none(), st.integers(1, 4)))
def test_misbehaving_apps_agree(steps: list[str], cancel_at: int | None) -> None:
    compiled, pure = outcomes(steps, cancel_at)
    assert compiled == pure


@pytest.mark.parametrize(
    ("steps", "late"),
    [
        (["start", "body", "late-send-start"], "ASGI send called after the request finished"),
        (["late-send-body"], "ASGI send called after the request finished"),
        (["receive", "late-receive"], "ASGI receive called after the request finished"),
    ],
)
def test_calls_after_the_request_raise_a_clear_runtime_error(steps: list[str], late: str) -> None:
    for mw in (twin_named("compiled"), twin_named("pure")):
        _, _, after, _ = asyncio.run(run_app(mw, steps, None))
        assert after[-1][1][0] == "RuntimeError", after
        assert after[-1][1][1].startswith(late), after


def test_a_task_sending_after_the_request_gets_the_error() -> None:
    for mw in (twin_named("compiled"), twin_named("pure")):
        _, _, after, _ = asyncio.run(run_app(mw, ["start", "body", "spawn-late-send"], None))
        assert after == [("task", ("RuntimeError", after[0][1][1]))]
        assert "after the request finished" in after[0][1][1]


def test_a_second_response_start_is_refused_alike() -> None:
    results = outcomes(["start", "start"], None)
    assert results[0] == results[1]
    assert "http.response.start was already sent for this request" in results[0]

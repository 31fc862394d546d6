"""Fusion and exceptions: a fused pipeline raises, chains and answers exactly as the same
stages written as nested layers (try/except/finally) do."""

from __future__ import annotations

import contextvars
import io
import json
from typing import Any

import pytest

from tests.middleware._fusion_harness import (
    NestedLayer,
    Server,
    build_reference,
    drive,
    exception_chain,
    make_app,
    reference_package,
    request_scope,
    server_for,
)


def failing_send_case(mw: Any, mode: str) -> tuple[Any, ...]:
    """An app failing before its response, under errors and timing, on a send that fails."""

    async def failing_send(message: dict[str, Any]) -> None:
        raise OSError("client went away")

    if mode == "reference":
        mw = reference_package()
        app = build_reference(("timing", "errors"), make_app("error_before", [], mw), "error_before", None, [])
    else:
        fuse = mode == "fused"
        middleware = mw.middleware
        errors = middleware.ErrorMiddleware(make_app("error_before", [], mw), fuse=fuse)
        app = middleware.TimingMiddleware(errors, fuse=fuse)
    scope = {"type": "http", "path": "/", "method": "GET", "headers": [], "state": {}}
    server = Server([{"type": "http.request"}], {"type": "http.disconnect"})
    try:
        contextvars.Context().run(drive, app(scope, server.receive, failing_send))
    except BaseException as exc:
        return exception_chain(exc)  # type: ignore[return-value]
    raise AssertionError("the send failure was swallowed")


@pytest.mark.parametrize("mode", ["fused", "layers"])
def test_failure_while_answering_is_chained_to_the_apps_error(mw: Any, mode: str) -> None:
    # As raised inside an ``except`` block of a nested error layer.
    assert failing_send_case(mw, mode) == ("OSError", "client went away", ("ValueError",))
    assert failing_send_case(mw, mode) == failing_send_case(mw, "reference")


class Abort(BaseException):
    """Not an ``Exception``: no fastmw hook swallows it."""


def test_a_failing_exit_step_replaces_the_exception_like_a_finally_block(mw: Any) -> None:
    results = {mode: failing_exit_case(mw, mode) for mode in ("fused", "layers", "reference")}
    outcome, calls, records, sent = results["fused"]
    # The callback's Abort replaces the app's ValueError; the outer access log still writes
    # its record and the error layer's 500 was sent.
    assert outcome[:2] == ("Abort", "callback")
    assert calls == [False] and records == [500] and sent == ["http.response.start", "http.response.body"]
    assert results["layers"][1:] == results["fused"][1:] == results["reference"][1:]
    assert results["layers"][0][:2] == results["reference"][0][:2]


def test_a_failing_exit_step_is_chained_like_a_finally_block(mw: Any) -> None:
    expected = failing_exit_case(mw, "reference")[0]
    assert expected == ("Abort", "callback", ("ValueError",))
    assert failing_exit_case(mw, "fused")[0] == expected
    assert failing_exit_case(mw, "layers")[0] == expected


def failing_exit_case(mw: Any, mode: str) -> tuple[Any, ...]:
    """A timing callback raising ``Abort`` while the app's ValueError propagates, under an access log."""
    calls: list[Any] = []
    stream = io.BytesIO()
    base = reference_package() if mode == "reference" else mw
    sink = base.JsonLinesSink(stream, batch_lines=1000, flush_interval=1e9)

    def abort(scope: Any, ttfb: Any, total: Any) -> None:
        calls.append(ttfb is None)
        raise Abort("callback")

    inner = make_app("error_before", [], base)
    fuse = mode == "fused"
    errors = base.ErrorMiddleware(inner, fuse=fuse)
    timing = base.TimingMiddleware(errors, callback=abort, fuse=fuse)
    app: Any = base.AccessLogMiddleware(timing, sink=sink, fuse=fuse)
    if mode == "reference":
        nested = NestedLayer(errors._stage, inner, inner, base)
        nested = NestedLayer(timing._stage, nested, nested, base)
        app = NestedLayer(app._stage, nested, nested, base)
    scope = request_scope("error_before")
    server = server_for("error_before")
    outcome = None
    try:
        contextvars.Context().run(drive, app(scope, server.receive, server.send))
    except BaseException as exc:
        outcome = exception_chain(exc)
    sink.flush()
    records = [json.loads(line)["status"] for line in stream.getvalue().splitlines()]
    return outcome, calls, records, [message["type"] for message in server.sent]

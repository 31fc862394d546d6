"""The ``verify`` checks of ``make bench-instructions``' sides: where a stack's work is invisible
in the response (an error handler, a log record, a JSON line, a send wrapper, a continued
trace), each proves on separate instances that the work is really done."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

from benchmarks import _driver, _hand, _instr_floors, stacks
from benchmarks._driver import SENT_PARENT_ID, SENT_TRACE_ID, TRACE_HEADERS, TRACESTATE
from benchmarks._instr_fastmw import fastmw_json_sink, fastmw_package, json_lines_sink
from benchmarks._instr_sides import Build, answer, check_answer, request


async def _boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("boom (bench-instructions check)")


def verify_error(build: Build) -> Callable[[], list[str]]:
    """The error middleware really turns an exception before the response into a 500."""

    def verify() -> list[str]:
        logging.disable(logging.CRITICAL)  # the middlewares log the traceback
        capture = _driver.Capture()
        try:
            _driver.loop().run_until_complete(request(build(_boom), capture))
        except RuntimeError:
            pass  # fastmw re-raises after sending the 500 (reraise=True), as servers expect
        finally:
            logging.disable(logging.NOTSET)
        check_answer(capture, {}, status=500, body=None)
        return []

    return verify


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def verify_logs(build: Build, logger_name: str) -> Callable[[], list[str]]:
    """With its logger enabled, the access log writes exactly one record per request."""

    def verify() -> list[str]:
        handler = _Records()
        with stacks.saved_loggers():
            logger = logging.getLogger(logger_name)
            logger.disabled = False
            logger.setLevel(logging.INFO)
            logger.propagate = False
            logger.handlers = [handler]
            check_answer(answer(build(stacks.raw_app)), {})
        if len(handler.records) != 1:
            raise AssertionError(f"{logger_name}: expected one access record, got {len(handler.records)}")
        return []

    return verify


def _check_json_line(text: str) -> list[str]:
    lines = text.splitlines()
    if len(lines) != 1:
        raise AssertionError(f"expected one JSON line, got {text!r}")
    record = json.loads(lines[0])
    if record.get("status") != 200 or record.get("method") != "GET":
        raise AssertionError(f"unexpected access record {record!r}")
    # The hand-written row writes fastmw's record: the same fields, so the same work.
    from fastmw._impl import core

    if set(record) != set(core.ACCESS_JSON_FIELDS):
        return [f"record fields differ from fastmw's: {sorted(set(record) ^ set(core.ACCESS_JSON_FIELDS))}"]
    return []


def verify_fastmw_json() -> list[str]:
    stream = io.BytesIO()
    sink = json_lines_sink(stream)
    check_answer(answer(fastmw_json_sink(stacks.raw_app, sink)), {})
    sink.flush()  # the sink writes in batches
    return _check_json_line(stream.getvalue().decode())


def verify_hand_json() -> list[str]:
    stream = io.StringIO()
    check_answer(answer(_hand.HandJsonAccessLog(stacks.raw_app, stream=stream)), {})
    return _check_json_line(stream.getvalue())


def verify_send_wrapper(build: Build) -> Callable[[], list[str]]:
    """The layer hands the app its send wrapper, which saw the response start."""

    def verify() -> list[str]:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(send)
            await stacks.raw_app(scope, receive, send)

        check_answer(answer(build(app)), {})
        if [type(send) for send in seen] != [_instr_floors.module().StartedSend] or not seen[0].started:
            raise AssertionError(f"expected one started StartedSend, the app got {seen!r}")
        return []

    return verify


def verify_trace(build: Build, traced: bool) -> Callable[[], list[str]]:
    """Sent the trace headers, the app sees the sent trace continued as ``fastmw.trace.current()``
    (or, untraced, no current trace)."""

    def verify() -> list[str]:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(fastmw_package().trace.current())
            await stacks.raw_app(scope, receive, send)

        check_answer(answer(build(app), TRACE_HEADERS), {})
        if len(seen) != 1:
            raise AssertionError(f"expected the app called once, got {len(seen)} calls")
        context = seen[0]
        if not traced:
            if context is not None:
                raise AssertionError(f"expected no current trace without the trace stage, got {context!r}")
            return []
        got = None if context is None else (context.trace_id, context.parent_id, context.tracestate)
        if got != (SENT_TRACE_ID, SENT_PARENT_ID, TRACESTATE.decode()):
            raise AssertionError(f"expected the sent trace continued, got {got!r}")
        return []

    return verify

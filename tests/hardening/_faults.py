"""Drivers for the fault tests: one request through the full stack with every outcome
(messages sent, exception raised, access-log statuses from both outputs, ContextVars
seen on the request's task afterwards) collected."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import fastmw
from fastmw.types import Message, Receive, Scope
from tests.hardening._stack import full_stack
from tests.helpers import Recorder, feeder, http_scope

START_TYPES = ("http.response.start", "websocket.http.response.start")


class ListHandler(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def listed_logger(name: str = "fastmw.hardening.faults") -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger(name)
    handler = ListHandler()
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


@dataclass
class Outcome:
    """Everything one faulty request produced."""

    sent: Recorder
    raised: BaseException | None
    text_statuses: list[int]
    json_statuses: list[int]
    correlation_after: Any
    context_after: bool
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def starts(self) -> int:
        return sum(1 for message in self.sent.messages if message["type"] in START_TYPES)


def build(app: Any, **options: Any) -> tuple[Any, ListHandler, io.BytesIO, Any]:
    logger, handler = listed_logger()
    stream = io.BytesIO()
    stacked, sink = full_stack(app, logger=logger, sink_stream=stream, batch_lines=1, **options)
    return stacked, handler, stream, sink


async def drive(stacked: Any, scope: Scope, receive: Any, send: Recorder) -> tuple[BaseException | None, Any, bool]:
    """Await one request on this task; returns (exception, correlation id, context exists) after it."""
    raised: BaseException | None = None
    try:
        await stacked(scope, receive, send)
    except BaseException as exc:  # the point is to see what surfaces
        raised = exc
    return raised, fastmw.correlation_id.get(), fastmw.context.exists()


def collect(handler: ListHandler, stream: io.BytesIO, sink: Any, sent: Recorder, result: Any) -> Outcome:
    sink.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    raised, correlation, exists = result
    return Outcome(
        sent=sent,
        raised=raised,
        text_statuses=[record.status for record in handler.records],  # type: ignore[attr-defined]
        json_statuses=[line["status"] for line in lines],
        correlation_after=correlation,
        context_after=exists,
        lines=lines,
    )


def receive_from(messages: list[Message], then: Message | None = None) -> Receive:
    """``feeder`` yielding to the loop on every call (the steps the cancellation tests count)."""
    return feeder(messages, then, suspend=True)


def one_request(
    app: Any,
    *,
    send: Recorder | None = None,
    messages: list[Message] | None = None,
    then: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
    **options: Any,
) -> Outcome:
    """Run ``app`` in the full stack once, on its own task, and collect the outcome."""
    stacked, handler, stream, sink = build(app, **options)
    sent = send if send is not None else Recorder()
    incoming: list[Message] = (
        messages if messages is not None else [{"type": "http.request", "body": b"", "more_body": False}]
    )
    receive = receive_from(incoming, then if then is not None else {"type": "http.disconnect"})
    result = asyncio.run(drive(stacked, scope or http_scope(), receive, sent))
    return collect(handler, stream, sink, sent, result)

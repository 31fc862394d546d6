"""The access log stage: one record per request, built from the recorders' fields."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

from fastmw._core_py._common import _type_name
from fastmw._core_py.engine import Stage, _published_of, _published_trace
from fastmw._core_py.headers import header_get
from fastmw._core_py.ids import monotonic
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._route import overridden
from fastmw._storage import CORRELATION_ID
from fastmw.types import PathFilter, Scope

STATUS_APP_ERROR = 500
STATUS_CLIENT_GONE = 499
STATUS_WEBSOCKET_ACCEPTED = 101
STATUS_WEBSOCKET_DENIED = 403
ACCESS_FIELDS = (
    "method",
    "path",
    "query",
    "http_version",
    "status",
    "duration_ms",
    "ttfb_ms",
    "response_bytes",
    "request_bytes",
    "client_addr",
    "user_agent",
    "request_id",
)
ACCESS_JSON_FIELDS = ("time", *ACCESS_FIELDS)
# With a current trace the record also carries its ids.
ACCESS_TRACE_FIELDS = (*ACCESS_FIELDS, "trace_id", "span_id")
ACCESS_JSON_TRACE_FIELDS = ("time", *ACCESS_TRACE_FIELDS)
# uvicorn's access line ('%s - "%s %s HTTP/%s" %d') plus the duration.
ACCESS_TEXT_FORMAT = '%s - "%s %s HTTP/%s" %d %.2fms'
# What a stdlib record says of its caller when there is none to look up (as with
# ``logging._srcfile = None``): an access record is made after the response, by the stage.
NO_CALLER_FILE = "(unknown file)"
NO_CALLER_FUNCTION = "(unknown function)"
# A Logger subclass overriding one of these gets logger.log() calls, not records made by the stage.
RECORD_MAKING_METHODS = ("log", "_log", "findCaller", "makeRecord")

_internal_logger = logging.getLogger("fastmw")


def round_decimals(value: float, digits: int) -> float:
    """``round(value, digits)`` for a float and ``digits`` from 0 to 9 (the access record's times)."""
    if type(digits) is not int or not 0 <= digits <= 9:
        raise ValueError(f"digits must be an int from 0 to 9, got {digits!r}")
    if type(value) is not float:
        raise TypeError(f"value must be a float, not {_type_name(value)}")
    return round(value, digits)


def _printable(text: object) -> str:
    """``text`` (``str()`` of it) with control and other non-printable characters escaped (no log injection)."""
    if type(text) is not str:
        # A str subclass (or what str() returned) is read for its text, not its own methods.
        text = str.__str__(text if isinstance(text, str) else str(text))
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _text_or_none(raw: object) -> str | None:
    """Header or query bytes as printable text (latin-1, control characters escaped: no log
    injection); anything else is None."""
    if isinstance(raw, bytes):
        return _printable(bytes.decode(raw, "latin-1"))
    return None


def _client_text(client: object) -> str | None:
    """``"host:port"`` of a scope's ``client`` pair (printable-escaped: a proxy header may
    have set the host), or None."""
    if isinstance(client, (tuple, list)) and len(client) == 2:
        return _printable(f"{client[0]}:{client[1]}")
    return None


def _id_text(request_id: object) -> str | None:
    """The request id, printable-escaped (a validator may let anything through), or None."""
    return None if request_id is None else _printable(request_id)


class AccessLogStage(Stage):
    """Writes one access record per request after its last body byte: to ``sink``
    (``write_record(keys, values)``, the JSON-lines sink) or to ``logger`` at ``level``
    (a uvicorn-style line, the fields in ``extra``). Nothing is built when neither
    would see it. A failure is reported on the ``fastmw`` logger, never raised."""

    def __init__(
        self,
        logger: Any,
        level: int,
        *,
        sink: Any = None,
        include_query: bool = True,
        include_user_agent: bool = True,
        paths: PathFilter | None = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        if not callable(getattr(logger, "isEnabledFor", None)):
            raise TypeError(f"logger must be a logging.Logger, not {_type_name(logger)}")
        if type(level) is not int:
            raise TypeError(f"level must be an int, not {_type_name(level)}")
        if sink is not None and not callable(getattr(sink, "write_record", None)):
            raise TypeError(f"sink must have write_record(keys, values), not {_type_name(sink)}")
        self.logger = logger
        self.level = level
        self.sink = sink
        self.include_query = bool(include_query)
        self.include_user_agent = bool(include_user_agent)
        self.wraps_receive = True
        self.timed = True
        # A stdlib Logger that does not override how a call becomes a record: the stage makes
        # the record itself (see _log).
        self._makes_records = _makes_own_records(logger)
        self._freeze()

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        # What fails here is dropped by drops_failure (the engine calls it), not propagated.
        if self.sink is None and not self.logger.isEnabledFor(self.level):
            return exc
        values = access_values(scope, ex, rx, exc, self.include_query, self.include_user_agent)
        trace = _published_trace(ex)
        if trace is not None:
            # The trace's ids, when a trace stage made one current (nothing otherwise).
            values += [trace.trace_id, trace.span_id]
        if self.sink is not None:
            keys = ACCESS_JSON_FIELDS if trace is None else ACCESS_JSON_TRACE_FIELDS
            self.sink.write_record(keys, [round(time.time(), 6), *values])
        else:
            self._log(scope, values)
        return exc

    def drops_failure(self, exc: Exception) -> bool:
        """A record that could not be written: logged to ``fastmw``."""
        _internal_logger.error("fastmw access log failed to write a record", exc_info=exc)
        return True

    def _log(self, scope: Scope, values: list[Any]) -> int:
        # The target quotes the raw path (control characters become %XX).
        path = scope.get("path", "")
        target = quote(path if isinstance(path, str) else str(path))
        if values[2]:
            target = f"{target}?{values[2]}"
        fields = ACCESS_FIELDS if len(values) == len(ACCESS_FIELDS) else ACCESS_TRACE_FIELDS
        args = (values[9] or "-", values[0], target, values[3], values[4], values[5])
        logger = self.logger
        if not self._makes_records:
            logger.log(self.level, ACCESS_TEXT_FORMAT, *args, extra=dict(zip(fields, values, strict=True)))
            return 0
        # What Logger._log does, without its walk up the stack for a caller (there is none
        # that means anything after the response) and with the fields set at once (their
        # names are the stage's own; a record factory's attribute of the same name is replaced).
        record = logging.getLogRecordFactory()(
            logger.name, self.level, NO_CALLER_FILE, 0, ACCESS_TEXT_FORMAT, args, None, NO_CALLER_FUNCTION, None
        )
        record.__dict__.update(zip(fields, values, strict=True))
        logger.handle(record)
        return 0


def _makes_own_records(logger: Any) -> bool:
    """Whether the stage may make ``logger``'s records itself: a stdlib Logger that does not
    override how a call becomes a record (``log``, ``_log``, ``findCaller``, ``makeRecord``)."""
    if not isinstance(logger, logging.Logger):
        return False
    return not overridden(type(logger), logging.Logger, RECORD_MAKING_METHODS)


def access_status(scope: Scope, ex: SendRecorder, rx: ReceiveRecorder | None, raised: BaseException | None) -> int:
    """The status an access record shows: the response's, 499 when the client went away,
    500 when the app failed before responding; 101/403 (or the denial's) on websockets."""
    if scope["type"] == "websocket":
        if ex.accepted:
            return STATUS_WEBSOCKET_ACCEPTED
        return ex.status if ex.started else STATUS_WEBSOCKET_DENIED  # type: ignore[return-value]
    # Told the client went away before the response was complete: 499, even if the app
    # then sent all of it (nobody was there to read it).
    if rx is not None and rx.disconnected:
        return STATUS_CLIENT_GONE
    if ex.complete and ex.started:
        return ex.status  # type: ignore[return-value]
    # A send failing mid-response (OSError) or a server cancelling the task means the
    # client went away; an OSError before any start is the app's own failure.
    if isinstance(raised, asyncio.CancelledError) or (ex.started and isinstance(raised, OSError)):
        return STATUS_CLIENT_GONE
    # Started but cut short by the app: the client got this status line.
    if ex.started:
        return ex.status  # type: ignore[return-value]
    return STATUS_APP_ERROR


def access_values(
    scope: Scope,
    ex: SendRecorder,
    rx: ReceiveRecorder | None,
    raised: BaseException | None,
    include_query: bool = True,
    include_user_agent: bool = True,
) -> list[Any]:
    """The access record's values, in ``ACCESS_FIELDS`` order, one type per field."""
    published = _published_of(ex)
    timing = None if published is None else published.timing
    start = timing.t_start if type(timing) is SendRecorder else ex.t_start
    end = ex.t_last_byte or monotonic()
    ttfb = round((ex.t_first_byte - start) * 1000.0, 3) if ex.t_first_byte else None
    headers = scope.get("headers") or ()
    user_agent = _text_or_none(header_get(headers, b"user-agent")) if include_user_agent else None
    query = _text_or_none(scope.get("query_string", b"")) if include_query else None
    return [
        _printable(scope.get("method", "WEBSOCKET")),
        _printable(scope.get("path", "")),
        query,
        _printable(scope.get("http_version", "1.1")),
        access_status(scope, ex, rx, raised),
        round((end - start) * 1000.0, 3),
        ttfb,
        ex.body_bytes,
        rx.body_bytes if rx is not None else 0,
        _client_text(scope.get("client")),
        user_agent,
        _id_text(CORRELATION_ID.get()),
    ]

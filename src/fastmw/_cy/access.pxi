# The access log stage: one record per request, built from the recorders' C fields.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.


cdef str _printable(text):
    """``text`` (``str()`` of it) with control and other non-printable characters escaped (no log injection)."""
    if not PyUnicode_CheckExact(text):
        # A str subclass (or what str() returned) is read for its text, not its own methods.
        text = str.__str__(text if isinstance(text, str) else str(text))
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(text)
    if PyUnicode_IS_ASCII(text) and fastmw_ascii_printable(<const char*>PyUnicode_DATA(text), size):
        return text  # the usual text: ASCII without a control character is printable
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def round_decimals(value, digits):
    """``round(value, digits)`` for a float and ``digits`` from 0 to 9 (the access record's times)."""
    if type(digits) is not int or not 0 <= digits <= 9:
        raise ValueError(f"digits must be an int from 0 to 9, got {digits!r}")
    if type(value) is not float:
        raise TypeError(f"value must be a float, not {_type_name(value)}")
    return _round(value, digits)


cdef object _round(double value, int digits):
    """``round(value, digits)`` (digits 0-9): in C when the scaled value is not within
    rounding error of a tie (then the nearest integer is the exact one, and dividing it
    back is correctly rounded, as Python's decimal round trip is); by Python otherwise."""
    cdef double scaled = value * POW10[digits], nearest
    if isfinite(scaled) and fabs(scaled) < 4503599627370496.0:  # 2**52: whole numbers exact
        nearest = rint(scaled)
        # The product is within 2**-53 of the exact one, relatively: 2.3e-16 is twice that.
        if fabs(fabs(scaled - nearest) - 0.5) > fabs(scaled) * 2.3e-16 + 1e-300:
            return nearest / POW10[digits]
    return round(value, digits)


cdef object _text_or_none(raw):
    """Header or query bytes as printable text (latin-1, control characters escaped: no log
    injection); anything else is None."""
    if PyBytes_Check(raw):
        return _printable((<bytes>raw).decode("latin-1"))
    return None


cdef object _client_text(client):
    """``"host:port"`` of a scope's ``client`` pair (printable-escaped: a proxy header may
    have set the host), or None."""
    if isinstance(client, (tuple, list)) and len(client) == 2:
        return _printable(f"{client[0]}:{client[1]}")
    return None


cdef object _id_text(request_id):
    """The request id, printable-escaped (a validator may let anything through), or None."""
    return None if request_id is None else _printable(request_id)


@cython.final
cdef class AccessLogStage(Stage):
    """Writes one access record per request after its last body byte: to ``sink``
    (``write_record(keys, values)``, the JSON-lines sink) or to ``logger`` at ``level``
    (a uvicorn-style line, the fields in ``extra``). Nothing is built when neither
    would see it. A failure is reported on the ``fastmw`` logger, never raised."""

    cdef readonly object logger, sink
    cdef readonly int level
    cdef readonly bint include_query, include_user_agent
    # A stdlib Logger whose isEnabledFor is the stdlib's: its answer is read from the
    # logger's own cache (see _enabled); anything else is asked.
    cdef bint _stdlib_logger
    # A stdlib Logger that does not override how a call becomes a record: the stage makes
    # the record itself (see _log).
    cdef bint _makes_records

    def __init__(self, logger, level, *, sink=None, include_query=True, include_user_agent=True, paths=None):
        Stage.__init__(self, paths=paths)
        if not callable(getattr(logger, "isEnabledFor", None)):
            raise TypeError(f"logger must be a logging.Logger, not {_type_name(logger)}")
        if type(level) is not int:
            raise TypeError(f"level must be an int, not {_type_name(level)}")
        if sink is not None and not callable(getattr(sink, "write_record", None)):
            raise TypeError(f"sink must have write_record(keys, values), not {_type_name(sink)}")
        self.logger = logger
        self.level = level
        self._stdlib_logger = isinstance(logger, logging.Logger) and (
            type(logger).isEnabledFor is logging.Logger.isEnabledFor
        )
        self._makes_records = _makes_own_records(logger)
        self.sink = sink
        self.include_query = bool(include_query)
        self.include_user_agent = bool(include_user_agent)
        self.wraps_receive = True
        self.starts = False
        self.timed = True

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        # What fails here is dropped by drops_failure (the engine calls it), not propagated.
        if self.sink is None and not self._enabled():
            return exc
        values = access_values(scope, ex, rx, exc, self.include_query, self.include_user_agent)
        trace = _published_trace(ex)
        if trace is not None:
            # The trace's ids, when a trace stage made one current (nothing otherwise).
            values += [trace.trace_id, trace.span_id]
        if self.sink is not None:
            keys = ACCESS_JSON_FIELDS if trace is None else ACCESS_JSON_TRACE_FIELDS
            self.sink.write_record(keys, [_wall_time_micros(), *values])
        else:
            self._log(scope, values)
        return exc

    cdef bint drops_failure(self, exc) except -1:
        """A record that could not be written: logged to ``fastmw``."""
        _internal_logger.error("fastmw access log failed to write a record", exc_info=exc)
        return True

    cdef bint _enabled(self) except -1:
        """``logger.isEnabledFor(level)`` without running it, for a stdlib Logger: the stdlib
        answers from ``disabled`` and its per-level ``_cache`` (cleared whenever a level or
        ``logging.disable`` changes); on a cache miss (or anything unexpected) it is asked."""
        cdef PyObject* found
        if self._stdlib_logger:
            if self.logger.disabled:
                return False
            cache = getattr(self.logger, "_cache", None)
            if type(cache) is dict:
                found = PyDict_GetItemWithError(<dict>cache, self.level)
                if found != NULL and (<object>found is True or <object>found is False):
                    return <object>found is True
        return bool(self.logger.isEnabledFor(self.level))

    cdef int _log(self, scope, list values) except -1:
        # The target quotes the raw path (control characters become %XX).
        path = _scope_get(scope, "path", "")
        target = _quote(path if isinstance(path, str) else str(path))
        if values[2]:
            target = f"{target}?{values[2]}"
        fields = ACCESS_FIELDS if len(values) == len(ACCESS_FIELDS) else ACCESS_TRACE_FIELDS
        args = (values[9] or "-", values[0], target, values[3], values[4], values[5])
        logger = self.logger
        if not self._makes_records:
            logger.log(self.level, ACCESS_TEXT_FORMAT, *args, extra=dict(zip(fields, values)))
            return 0
        # What Logger._log does, without its walk up the stack for a caller (there is none
        # that means anything after the response) and with the fields set at once (their
        # names are the stage's own; a record factory's attribute of the same name is replaced).
        record = logging.getLogRecordFactory()(
            logger.name, self.level, NO_CALLER_FILE, 0, ACCESS_TEXT_FORMAT, args, None, NO_CALLER_FUNCTION, None
        )
        record.__dict__.update(zip(fields, values))
        logger.handle(record)
        return 0


cdef bint _makes_own_records(logger) except -1:
    """Whether the stage may make ``logger``'s records itself: a stdlib Logger that does not
    override how a call becomes a record (``log``, ``_log``, ``findCaller``, ``makeRecord``)."""
    if not isinstance(logger, logging.Logger):
        return False
    return not _overridden(type(logger), logging.Logger, RECORD_MAKING_METHODS)


cpdef object access_status(scope, SendRecorder ex, ReceiveRecorder rx, raised):
    """The status an access record shows: the response's, 499 when the client went away,
    500 when the app failed before responding; 101/403 (or the denial's) on websockets."""
    if scope["type"] == "websocket":
        if ex.accepted:
            return STATUS_WEBSOCKET_ACCEPTED
        return ex.status if ex.started else STATUS_WEBSOCKET_DENIED
    # Told the client went away before the response was complete: 499, even if the app
    # then sent all of it (nobody was there to read it).
    if rx is not None and rx.disconnected:
        return STATUS_CLIENT_GONE
    if ex.complete and ex.started:
        return ex.status
    # A send failing mid-response (OSError) or a server cancelling the task means the
    # client went away; an OSError before any start is the app's own failure.
    if isinstance(raised, _CancelledError) or (
        ex.started and isinstance(raised, OSError)
    ):
        return STATUS_CLIENT_GONE
    # Started but cut short by the app: the client got this status line.
    if ex.started:
        return ex.status
    return STATUS_APP_ERROR


cpdef list access_values(scope, SendRecorder ex, ReceiveRecorder rx, raised, bint include_query=True,
                         bint include_user_agent=True):
    """The access record's values, in ``ACCESS_FIELDS`` order, one type per field."""
    published = _published_of(ex)
    timing = None if published is None else published.timing
    if type(timing) is not SendRecorder:
        timing = None
    cdef double start = (<SendRecorder>timing).t_start if timing is not None else ex.t_start
    cdef double end = ex.t_last_byte or monotonic()
    ttfb = _round((ex.t_first_byte - start) * 1000.0, 3) if ex.t_first_byte else None
    headers = _scope_get(scope, "headers", None) or ()
    user_agent = _text_or_none(_find(headers, b"user-agent", None)) if include_user_agent else None
    query = _text_or_none(_scope_get(scope, "query_string", b"")) if include_query else None
    return [
        _printable(_scope_get(scope, "method", "WEBSOCKET")),
        _printable(_scope_get(scope, "path", "")),
        query,
        _printable(_scope_get(scope, "http_version", "1.1")),
        access_status(scope, ex, rx, raised),
        _round((end - start) * 1000.0, 3),
        ttfb,
        ex.body_bytes,
        rx.body_bytes if rx is not None else 0,
        _client_text(_scope_get(scope, "client", None)),
        user_agent,
        _id_text(_var_value(_id_var)),
    ]

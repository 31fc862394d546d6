# The error stage: a 500 (or a websocket close 1011) when the app raises before responding.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.


cpdef bytes error_body(request_id):
    """The default 500 body: ``{"error": "internal_error", "request_id": ...}``."""
    return _json.dumps({"error": ERROR_CODE, "request_id": request_id}).encode()


@cython.final
cdef class ErrorStage(Stage):
    """Answers an exception raised before the response started: a 500 (http), a
    close 1011 (websocket). ``handler(scope, exc)`` may give the ASGI app that answers
    instead (sync or async). Logs one line per unhandled exception: with its traceback when
    the exception ends here, without when it is re-raised (the server logs the traceback)."""

    cdef readonly object handler
    cdef readonly bint reraise

    def __init__(self, *, handler=None, reraise=True, paths=None):
        Stage.__init__(self, paths=paths)
        if handler is not None and not callable(handler):
            raise TypeError(f"handler must be callable or None, not {_type_name(handler)}")
        self.handler = handler
        self.reraise = bool(reraise)
        self.catches = True
        # A 5xx the app sends while handling an exception (Starlette's ServerErrorMiddleware,
        # which re-raises after it) gets ``connection: close`` too; other statuses skip this step.
        self.starts = True
        self.start_status = ERROR_STATUS

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        ex._states[index] = scope  # read only if a 5xx starts
        return 0

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        status = message.get("status")
        if (
            _status_code(status) >= ERROR_STATUS  # an int (exactly): a larger one is clamped, not refused
            and message.get("type") == "http.response.start"
            and _sys.exc_info()[1] is not None
            and state is not None
            and _closes_connection(state)
        ):
            headers.append(CLOSE_HEADER)
        return 0

    async def answer(self, scope, receive, send, exc):
        if not isinstance(send, SendRecorder):
            raise TypeError(f"send must be the engine's SendRecorder, not {_type_name(send)}")
        cdef SendRecorder ex = <SendRecorder>send
        if scope["type"] == "websocket":
            if not ex.accepted and not ex.started and ex.close_code is None:
                await send({"type": "websocket.close", "code": WEBSOCKET_INTERNAL_ERROR})
            _log_unhandled(scope, exc, "closed the websocket (1011)", self.reraise)
            return self.reraise
        if ex.started:
            # Never a second start: the server closes the connection when it propagates.
            if ex.complete:
                _log_unhandled(scope, exc, f"the app had sent a complete {ex.status} response", True)
            else:
                _log_unhandled(scope, exc, f"the {ex.status} response was cut short", True)
            return True
        await self._respond(scope, receive, send, exc)
        _log_unhandled(scope, exc, f"sent {ex.status}" if ex.started else "nothing sent", self.reraise)
        return self.reraise

    async def _respond(self, scope, receive, send, exc):
        """The handler's response, or the default JSON 500; ``connection: close`` on it when
        the exception is re-raised over HTTP/1.x (the server then closes the connection, so a
        client must not send another request on it)."""
        cdef SendRecorder ex = <SendRecorder>send
        cdef bint closes = self.reraise and _closes_connection(scope)
        if self.handler is not None:
            try:
                response = self.handler(scope, exc)
                if _inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, _closing_send(send) if closes else send)
                return
            except Exception:
                # The handler failed: the default body, unless its response already started.
                _error_logger.exception("error handler %r failed", self.handler)
                if ex.started:
                    return
        body = error_body(_var_value(_id_var))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if closes:
            headers.append(CLOSE_HEADER)
        await send({"type": "http.response.start", "status": ERROR_STATUS, "headers": headers})
        await send({"type": "http.response.body", "body": body})


cdef bint _closes_connection(scope) except -1:
    """Whether the request came over HTTP/1.x (HTTP/2 and 3 forbid a ``connection`` header)."""
    version = _scope_get(scope, "http_version", "1.1")
    return isinstance(version, str) and version.startswith("1")


def _closing_send(send):
    """``send`` adding ``connection: close`` to the response start (a handler's response)."""

    async def closing_send(message):
        if isinstance(message, dict) and message.get("type") == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), CLOSE_HEADER]}
        await send(message)

    return closing_send


cpdef note_request_id(exc, request_id):
    """Mark an exception leaving a request with its id: ``exc.fastmw_request_id`` and, from
    Python 3.11, a traceback note (``request id: ...``), so the server's traceback and a
    Sentry event built after the request still name it. The innermost request's id wins."""
    if request_id is None or not isinstance(exc, Exception):
        return
    try:
        if REQUEST_ID_ATTRIBUTE in vars(exc):
            return
        setattr(exc, REQUEST_ID_ATTRIBUTE, request_id)
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(REQUEST_ID_NOTE + _printable(request_id))
    except Exception:
        # An exception type that refuses attributes or notes keeps its traceback as it is.
        pass


cdef int _log_unhandled(scope, exc, str outcome, bint reraised) except -1:
    """One line per unhandled exception; its traceback only where nobody else logs it."""
    method = _printable(_scope_get(scope, "method", "WEBSOCKET"))
    path = _printable(_scope_get(scope, "path", ""))
    _error_logger.error(
        "unhandled %s in %s %s (request id %s); %s" + (_RERAISED if reraised else ""),
        type(exc).__name__, method, path, _id_text(_var_value(_id_var)), outcome,
        exc_info=None if reraised else exc,
    )
    return 0

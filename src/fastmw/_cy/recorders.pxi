# Send/receive wrapping: the recorders that watch a response and a request body.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

# --------------------------------------------------------------------------- send / receive wrapping


@cython.freelist(16)
cdef class SendRecorder:
    """Wraps an ASGI ``send``: records the response as it passes, never buffers it.

    Inside the engine it is the request's one wrapped ``send``: on the response start
    (``http.response.start``, ``websocket.accept``) it runs the start steps of the
    stages that take part, inner to outer, on a copy of the message's header list.

    ``t_start``, ``t_first_byte`` and ``t_last_byte`` are ``monotonic()`` times (0.0 until
    recorded). A recorder the engine makes for a request records them only when one of the
    request's stages reads them (timing, access log, metrics); otherwise they stay 0.0 and
    the request never reads the clock.
    """

    cdef readonly object send
    cdef readonly bint started, complete, accepted
    cdef readonly object status, headers, close_code
    cdef readonly Py_ssize_t body_bytes
    cdef readonly double t_start, t_first_byte, t_last_byte
    # The clock at the response start, read once before the stages' start steps (the timing
    # header) and kept as t_first_byte once it is sent on.
    cdef double _t_responding
    # Whether this recorder reads the clock (see the class docstring).
    cdef bint _timed
    # Engine state for one request: the plan's stages and their per-request states;
    # stages [0, _live) get the response start, [0, _entered) were entered.
    cdef tuple _stages
    cdef list _states
    cdef Py_ssize_t _live, _entered
    cdef bint _edits
    # The plan's edit_status (a start whose status is below it has nothing to edit) and gated.
    cdef Py_ssize_t _edit_status
    cdef bint _gated
    # Set by the engine when the request's pipeline finished: the state above is gone.
    cdef bint _finished
    cdef object _refusal
    # The request's Published holder when this pipeline's stages publish, else None.
    cdef object _published

    def __init__(self, send):
        _recorder_init(self, send, True)

    cdef list _apply(self, dict message, status):
        cdef list headers
        cdef PyObject* name
        cdef PyObject* value
        cdef Py_ssize_t i
        cdef int irregular = 0
        cdef Stage stage
        cdef long long code = -1
        if not self._edits:
            return message_headers(message)
        if self._gated:
            code = _status_code(status)
            if self._edit_status > 0 and code < self._edit_status:
                return message_headers(message)
        headers = _owned_headers(message)
        # A malformed entry is refused here, at the innermost layer, before anything is sent:
        # a C scan passes the usual (bytes, bytes) tuples (no name has length -1), the checked
        # loop looks at the rest.
        fastmw_header_index(headers, NULL, -1, 0, &irregular)
        if irregular:
            for entry in headers:
                _entry(entry, &name, &value)
        # Held here: the stages' start steps run Python code. Both have the plan's size,
        # and _live <= that size, so every index below is in bounds.
        cdef tuple stages = self._stages
        cdef list states = self._states
        i = self._live - 1
        while i >= 0:
            stage = <Stage>PyTuple_GET_ITEM(stages, i)
            if stage.starts and (stage.start_status <= 0 or code >= stage.start_status):
                stage.start(self, <object>PyList_GET_ITEM(states, i), message, headers)
            i -= 1
        return headers

    def __call__(self, message):
        if self._finished:
            raise RuntimeError(SEND_AFTER_END)
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        cdef dict msg = <dict>message
        kind = msg.get("type")
        cdef int sort = _message_sort(kind)
        if sort == MESSAGE_BODY:
            body = msg.get("body", b"")
            if PyBytes_CheckExact(body):
                self.body_bytes += PyBytes_GET_SIZE(body)
            elif isinstance(body, (bytes, bytearray)):
                # A subclass's own __len__, as in the pure twin.
                _count_bytes(&self.body_bytes, len(body))
            else:
                raise TypeError(f"{kind} 'body' must be bytes, not {_type_name(body)}")
            if not msg.get("more_body", False):
                self.complete = True
                if self._timed:
                    self.t_last_byte = monotonic()
        elif sort == MESSAGE_START:
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            status = msg.get("status")
            if not isinstance(status, int):
                raise TypeError(f"{kind} 'status' must be an int, not {_type_name(status)}")
            if self._timed:
                self._t_responding = monotonic()
            self.headers = self._apply(msg, status)
            self.status = status
            self.started = True
            self.t_first_byte = self._t_responding
        elif sort == MESSAGE_ACCEPT:
            if self._timed:
                self._t_responding = monotonic()
            self.headers = self._apply(msg, None)
            self.accepted = True
            self.t_first_byte = self._t_responding
        elif sort == MESSAGE_CLOSE:
            self.close_code = msg.get("code", 1000)
            if self._timed:
                self.t_last_byte = monotonic()
        return self.send(message)


cdef extern from "Python.h":
    # PyLong_AsSsize_t with its error left to the caller (_status_code clears it).
    Py_ssize_t _ssize_or_error "PyLong_AsSsize_t"(object value) noexcept


cdef inline long long _status_code(status) noexcept:
    """A status that is an int (exactly) as a C value (one past the range clamped to it),
    anything else -1: what a stage's start_status is compared with."""
    cdef Py_ssize_t code
    cdef long long wide
    cdef int overflow = 0
    if not PyLong_CheckExact(status):
        return -1
    # PyLong_AsSsize_t reads a one-digit int (every real status) directly; only an int past
    # the range raises (OverflowError), cleared here: its sign picks the end it is clamped to.
    code = _ssize_or_error(status)
    if code == -1 and PyErr_Occurred() != NULL:
        PyErr_Clear()
        wide = PyLong_AsLongLongAndOverflow(status, &overflow)
        return PY_SSIZE_T_MAX if overflow > 0 or wide > 0 else -1
    return code


cdef inline int _count_bytes(Py_ssize_t* total, Py_ssize_t size) except -1:
    """``total[0] += size`` (size from len(), so >= 0), refused rather than overflowed: only
    a __len__ that lies can come near it."""
    if size > PY_SSIZE_T_MAX - total[0]:
        raise OverflowError("body size does not fit in a C ssize_t")
    total[0] += size
    return 0


cdef enum:
    MESSAGE_OTHER = 0
    MESSAGE_START = 1
    MESSAGE_BODY = 2
    MESSAGE_ACCEPT = 3
    MESSAGE_CLOSE = 4


cdef inline bint _is(const char* data, Py_ssize_t n, const char* text) noexcept:
    return memcmp(data, text, n) == 0


cdef int _message_sort(kind) except -1:
    """What a send message is, from its ``type``: its length picks the one candidate."""
    if not PyUnicode_CheckExact(kind):
        # A str subclass (or anything else) compares the way == does.
        if kind == "http.response.body" or kind == "websocket.http.response.body":
            return MESSAGE_BODY
        if kind == "http.response.start" or kind == "websocket.http.response.start":
            return MESSAGE_START
        if kind == "websocket.accept":
            return MESSAGE_ACCEPT
        return MESSAGE_CLOSE if kind == "websocket.close" else MESSAGE_OTHER
    if not PyUnicode_IS_ASCII(kind):
        return MESSAGE_OTHER
    cdef const char* data = <const char*>PyUnicode_DATA(kind)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(kind)
    if n == 18 and _is(data, n, b"http.response.body") or n == 28 and _is(data, n, b"websocket.http.response.body"):
        return MESSAGE_BODY
    if n == 19 and _is(data, n, b"http.response.start") or n == 29 and _is(data, n, b"websocket.http.response.start"):
        return MESSAGE_START
    if n == 16 and _is(data, n, b"websocket.accept"):
        return MESSAGE_ACCEPT
    if n == 15 and _is(data, n, b"websocket.close"):
        return MESSAGE_CLOSE
    return MESSAGE_OTHER


cdef inline int _recorder_init(SendRecorder self, send, bint timed) except -1:
    self.send = send
    self._timed = timed
    self._finished = False
    self.started = False
    self.complete = False
    self.accepted = False
    self.status = None
    self.headers = None
    self.close_code = None
    self.body_bytes = 0
    self.t_start = monotonic() if timed else 0.0
    self.t_first_byte = 0.0
    self.t_last_byte = 0.0
    self._t_responding = 0.0
    return 0


@cython.freelist(16)
cdef class ReceiveRecorder:
    """Wraps an ASGI ``receive``: counts request body bytes, notes disconnects,
    and keeps a copy of the body up to ``body_limit`` bytes without consuming it.

    ``disconnected``: the app was told the client went away before its response was
    complete (inside the engine, the request's ``SendRecorder`` says when that is; a
    disconnect after the last body byte is how servers end a finished request)."""

    cdef readonly object receive
    cdef readonly Py_ssize_t body_limit, body_bytes
    cdef readonly bint body_truncated, disconnected
    # The same request's SendRecorder, set by the engine (None when used alone).
    cdef SendRecorder _response
    # The body kept so far; None until a byte is kept (most requests keep none).
    cdef bytearray _copy
    # Set by the engine when the request's pipeline finished.
    cdef bint _finished

    def __init__(self, receive, body_limit=0):
        if type(body_limit) is not int or body_limit < 0:
            raise ValueError("body_limit must be a non-negative int")
        _receiver_init(self, receive, body_limit)

    @property
    def body(self):
        """The copy of the request body read so far (at most ``body_limit`` bytes)."""
        return b"" if self._copy is None else bytes(self._copy)

    def release(self):
        """Drop the body copy."""
        self._copy = None

    async def __call__(self):
        if self._finished:
            raise RuntimeError(RECEIVE_AFTER_END)
        message = await self.receive()
        kind = message.get("type")
        cdef Py_ssize_t size, room
        if kind == "http.request":
            body = message.get("body", b"")
            size = len(body)
            _count_bytes(&self.body_bytes, size)
            room = self.body_limit - (0 if self._copy is None else PyByteArray_GET_SIZE(self._copy))
            if size > room:
                self.body_truncated = True
                size = room
            if size > 0:
                if self._copy is None:
                    self._copy = bytearray()
                self._copy += body[:size]
        elif kind == "http.disconnect" or kind == "websocket.disconnect":
            if self._response is None or not self._response.complete:
                self.disconnected = True
        return message


cdef inline int _receiver_init(ReceiveRecorder self, receive, Py_ssize_t body_limit) except -1:
    self.receive = receive
    self.body_limit = body_limit
    self.body_bytes = 0
    self.body_truncated = False
    self.disconnected = False
    self._copy = None
    self._finished = False
    self._response = None
    return 0

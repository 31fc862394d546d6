# The engine's small stages: request id, timing, body cache.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.
# (Errors, the request context and the access log have files of their own.)


# --------------------------------------------------------------------------- request id


@cython.final
cdef class RequestIdStage(Stage):
    """Reads (or makes) the request id, exposes it and echoes it on the response start.

    The first request-id component of a request resolves the id and echoes it; any
    other one inside it (a second middleware, a request-id plugin) reuses it, so a
    request has one id and one echoed header. ``echo`` is ``"set"``, ``"append"``
    (http only) or ``None``. ``report(cause, value)`` is told when an id is replaced.
    """

    cdef readonly bytes key
    cdef readonly str context_key
    cdef readonly object generator, validator, transformer, resolver, reject, report
    cdef readonly Py_ssize_t max_length
    cdef readonly bint update_request_header, echo_websocket, fallback_to_trace_id, refuse_invalid
    cdef readonly object echo
    cdef bint _append, _core_ids, _safe_ids

    def __init__(self, key, context_key, *, generator=None, validator=None, transformer=None, resolver=None,
                 max_length=DEFAULT_ID_LENGTH, update_request_header=True, echo="set", echo_websocket=True,
                 reject=None, refuse_invalid=False, report=None, fallback_to_trace_id=False,
                 paths=None):
        Stage.__init__(self, paths=paths)
        if echo not in ECHO_MODES:
            raise ValueError(f"echo must be one of {ECHO_MODES}, got {echo!r}")
        if type(max_length) is not int or not 1 <= max_length <= PY_SSIZE_T_MAX:
            raise ValueError("max_length must be a positive int")
        for name, hook in (("generator", generator), ("validator", validator), ("transformer", transformer),
                           ("resolver", resolver), ("reject", reject), ("report", report)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None, not {_type_name(hook)}")
        self.key = encode_header_name(key)
        self.context_key = str(context_key)
        self.generator = new_request_id if generator is None else generator
        self.validator = validator
        self.transformer = transformer
        self.resolver = resolver
        self.max_length = max_length
        self.update_request_header = bool(update_request_header)
        self.echo = echo
        self.echo_websocket = bool(echo_websocket)
        self.reject = reject
        self.refuse_invalid = bool(refuse_invalid)
        self.report = report
        self.fallback_to_trace_id = bool(fallback_to_trace_id)
        self.starts = echo is not None
        self._append = echo == "append"
        # Ids the core makes need no checks: 32 lower-case hex characters.
        self._core_ids = self.generator is new_request_id and transformer is None and resolver is None
        self._safe_ids = validator is is_safe_id and transformer is None and resolver is None

    cdef object _fresh(self):
        value = self.generator()
        if self.transformer is not None:
            value = self.transformer(value)
        if not is_visible_ascii(value, self.max_length):
            if self.report is not None:
                self.report("unusable", value)
            return new_request_id()
        return value

    def resolve(self, raw):
        """The id for a request whose header held ``raw`` (bytes or None); None: refuse it.
        The ``resolver``'s answer when there is one, else ``default_resolve(raw)``."""
        if self.resolver is not None:
            return self.resolver(raw)
        return self.default_resolve(raw)

    def default_resolve(self, raw):
        """The built-in policy: a fresh id for none, the sanitised, validated and transformed
        id, or for an invalid one a fresh id (reported) or None with ``refuse_invalid``."""
        if not raw:
            return self._fresh()
        # Hostile values (CR/LF/NUL, non-ASCII, oversize) never reach the validator or a log.
        value = (<bytes>raw).decode("latin-1")
        if is_visible_ascii(value, self.max_length) and (self.validator is None or self.validator(value)):
            if self.transformer is not None:
                value = self.transformer(value)
                if not is_visible_ascii(value, self.max_length):
                    return self._fresh()
            return value
        if self.refuse_invalid:
            return None
        value = self._fresh()
        if self.report is not None:
            self.report("invalid", value)
        return value

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef PyObject* found
        cdef dict mapping = <dict>scope if type(scope) is dict else None
        found = PyDict_GetItemWithError(mapping, ID_SCOPE_KEY) if mapping is not None else NULL
        if found != NULL:
            # An outer component resolved this request's id: reuse it, it echoes.
            value = <object>found
            _context_put(self.context_key, value)
            return 0
        headers = _scope_get(scope, "headers", None) or []
        raw = _find(headers, self.key, None)
        encoded = None
        trace = _published_trace(ex) if raw is None and self.fallback_to_trace_id else None
        if trace is not None:
            # The trace stage outside made one current (the other twin's, in a mixed stack).
            value = (<TraceContext>trace).trace_id if type(trace) is TraceContext else trace.trace_id
        elif raw is None and self._core_ids:
            value = new_request_id()
        elif raw is not None and self._safe_ids and _safe_id_bytes(<bytes>raw, self.max_length):
            # Safe ids are ASCII: the text is a copy of the bytes, which are echoed as they came.
            value = PyUnicode_New(PyBytes_GET_SIZE(raw), 127)
            memcpy(PyUnicode_DATA(value), PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
            encoded = raw if PyBytes_CheckExact(raw) else None
        else:
            value = self.resolve(raw)
            if value is None:
                if self.reject is None:
                    raise ValueError("the request id was refused (None) but no reject app is configured")
                ex._refusal = self.reject
                return 1
            if self.resolver is not None and not is_visible_ascii(value, PY_SSIZE_T_MAX):
                raise ValueError(f"request id resolver gave an unusable id {_shown(repr(value))}")
        if encoded is None:
            encoded = PyUnicode_AsLatin1String(value)
        if self.update_request_header and encoded is not raw and encoded != raw:
            # A copy: the server's header list is not ours to mutate.
            if raw is None:
                scope["headers"] = list(headers) + [(self.key, encoded)]
            else:
                headers = scope["headers"] = list(headers)
                _set(headers, self.key, encoded)
        scope[ID_SCOPE_KEY] = value
        token = PyContextVar_Set(_id_var, value)
        _context_put(self.context_key, value)
        if self.echo is not None and (self.echo_websocket or scope["type"] == "http"):
            ex._states[index] = (token, encoded)
        else:
            ex._states[index] = (token, None)
        return 0

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        if state is None:
            return 0
        encoded = (<tuple>state)[1]
        if encoded is not None:
            if self._append:
                headers.append((self.key, encoded))
            else:
                _set(headers, self.key, <bytes>encoded)
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        if state is not None:
            if exc is not None:
                # The id goes along with the exception (the server's traceback, Sentry).
                note_request_id(exc, _var_value(_id_var))
            PyContextVar_Reset(_id_var, (<tuple>state)[0])
        return exc


cdef inline int _context_put(key, value) except -1:
    """``context[key] = value`` when a request context is active."""
    data = _current_or_none()
    if type(data) is dict:
        PyDict_SetItem(data, key, value)
    elif data is not None:
        # Anything else set in the context variable: its own __setitem__, as in the pure twin.
        data[key] = value
    return 0


cdef bint _safe_id_bytes(bytes raw, Py_ssize_t max_length) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    if n == 0 or n > max_length:
        return False
    for i in range(n):
        if not SAFE_ID_TABLE[p[i]]:
            return False
    return True


cpdef bint is_safe_id(value) except -1:
    """Whether ``value`` is a str of 1-128 characters from ``[A-Za-z0-9._~+/=:@-]``:
    the ids proxies and platforms send (nginx, UUIDs of any version, AWS, Heroku, Cloudflare)."""
    if not isinstance(value, str) or not PyUnicode_IS_ASCII(value):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value), i
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(value)
    if n == 0 or n > DEFAULT_ID_LENGTH:
        return False
    for i in range(n):
        if not SAFE_ID_TABLE[p[i]]:
            return False
    return True


# --------------------------------------------------------------------------- timing


@cython.final
cdef class TimingStage(Stage):
    """Timing headers on the response start; ``callback(scope, ttfb, total)`` at the end."""

    cdef readonly object key, callback
    cdef readonly int precision
    cdef readonly bint server_timing

    def __init__(self, key=None, *, precision=4, server_timing=True, callback=None, paths=None):
        Stage.__init__(self, paths=paths)
        if type(precision) is not int or not 0 <= precision <= 9:
            raise ValueError(f"precision must be an int from 0 to 9, got {precision!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {_type_name(callback)}")
        self.key = None if key is None else encode_header_name(key)
        self.precision = precision
        self.server_timing = bool(server_timing)
        self.callback = callback
        self.starts = self.key is not None or self.server_timing
        self.publishes = True
        self.timed = True

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef Published published = <Published>ex._published
        ex._states[index] = published.timing  # the outer one, back in place on leave
        published.timing = ex
        return 0

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        cdef double elapsed = ex._t_responding - ex.t_start
        if self.key is not None:
            _set(headers, <bytes>self.key, _format_fixed(elapsed, self.precision, b""))
        if self.server_timing:
            entry = _format_fixed(elapsed * 1000.0, max(self.precision - 3, 0), SERVER_TIMING_PREFIX)
            existing = _find(headers, SERVER_TIMING, None)
            # The app's own value is checked like any header set (no CR/LF passed on).
            _set(headers, SERVER_TIMING, encode_header_value(existing + b", " + entry) if existing else entry)
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        (<Published>ex._published).timing = state
        if self.callback is not None:
            ttfb = ex.t_first_byte - ex.t_start if ex.t_first_byte else None
            end = ex.t_last_byte or monotonic()
            try:
                self.callback(scope, ttfb, end - ex.t_start)
            except Exception:
                _timing_logger.exception("timing callback %r failed", self.callback)
        return exc


cdef double[10] POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]


def format_fixed(value, precision):
    """``value`` with ``precision`` (0-9) decimals, rounded half up: ``b"0.0123"``.

    Values outside [0, 9e18 / 10**precision) are formatted like ``b"%.*f"``."""
    if type(precision) is not int or not 0 <= precision <= 9:
        raise ValueError(f"precision must be an int from 0 to 9, got {precision!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be an int or a float, not {_type_name(value)}")
    return _format_fixed(float(value), precision, b"")


cdef bytes _format_fixed(double value, int precision, bytes prefix):
    """``prefix`` then ``value`` with ``precision`` decimals (``format_fixed``), in one bytes object."""
    cdef double scaled = value * POW10[precision]
    if not (0.0 <= scaled < 9e18) or PyBytes_GET_SIZE(prefix) > 16:
        return prefix + b"%.*f" % (precision, value)
    cdef unsigned long long digits = <unsigned long long>floor(scaled + 0.5)
    cdef char text[48]
    cdef int position = 48, i
    # The fraction's digits, the point, then the whole part (at least one digit).
    for i in range(precision):
        position -= 1
        text[position] = 48 + <int>(digits % 10)
        digits //= 10
    if precision:
        position -= 1
        text[position] = 46
    while True:
        position -= 1
        text[position] = 48 + <int>(digits % 10)
        digits //= 10
        if digits == 0:
            break
    position -= PyBytes_GET_SIZE(prefix)
    memcpy(text + position, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix))
    return PyBytes_FromStringAndSize(text + position, 48 - position)


# --------------------------------------------------------------------------- body cache


@cython.final
cdef class BodyCacheStage(Stage):
    """Keeps up to ``max_bytes`` of the request body as the app reads it (http only)."""

    def __init__(self, max_bytes, *, paths=None):
        Stage.__init__(self, paths=paths)
        if type(max_bytes) is not int or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.body_limit = max_bytes
        self.http_only = True
        self.wraps_receive = True
        self.publishes = True

    @property
    def max_bytes(self):
        """The most body bytes kept per request."""
        return self.body_limit

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef Published published = <Published>ex._published
        outer = published.body
        published.body = rx
        state = _scope_get(scope, "state", None)
        if isinstance(state, dict):
            # A dict subclass's own __setitem__ (and pop on leave), as in the pure twin.
            if type(state) is dict:
                PyDict_SetItem(state, BODY_STATE_KEY, rx)
            else:
                state[BODY_STATE_KEY] = rx
            ex._states[index] = (outer, state)
        else:
            ex._states[index] = (outer, None)
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        (<Published>ex._published).body = (<tuple>state)[0]
        scope_state = (<tuple>state)[1]
        if type(scope_state) is dict:
            (<dict>scope_state).pop(BODY_STATE_KEY, None)
        elif scope_state is not None:
            scope_state.pop(BODY_STATE_KEY, None)
        rx.release()
        return exc

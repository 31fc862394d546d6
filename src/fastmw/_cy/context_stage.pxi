# The request-context stage: the context plugins' values for the whole request.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.


@cython.final
cdef class ContextStage(Stage):
    """The request context: ``{key: reader(headers)}`` set for the whole request.

    ``readers`` are ``(key, reader)`` pairs; a reader raising ``MiddleWareValidationError``
    hands the request to ``refuse(scope, receive, send, exc)``. For each ``(key, header
    name)`` of ``echo`` the context value (``str()`` of it; None and values that cannot be
    a header are skipped) goes on the response start, appended or, with ``replace``, set.
    The reader at ``request_id`` (an index, or -1) reads the request id: it reuses an id an
    outer component resolved, and otherwise decides it for the components inside. The
    context is reset when the app returns, and left set when it raises.
    """

    cdef readonly tuple readers, echo
    cdef readonly bint replace
    cdef readonly object refuse
    cdef readonly Py_ssize_t request_id
    # Per echo entry: the reader filling its key (the last one with it) when that reader's
    # header bytes can be echoed as they came (below KEPT_READERS), else -1; and whether
    # it echoes the request id (skipped when an outer component resolved the id).
    cdef Py_ssize_t _source[MAX_ECHO]
    cdef bint _is_request_id[MAX_ECHO]

    def __init__(self, readers, echo=(), *, replace=False, refuse=None, request_id=-1, paths=None):
        Stage.__init__(self, paths=paths)
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        if type(request_id) is not int or not -1 <= request_id < len(self.readers):
            raise ValueError("request_id must be -1 or the index of a reader")
        if len(self.echo) > MAX_ECHO:
            raise ValueError(f"at most {MAX_ECHO} echo entries, got {len(self.echo)}")
        self.refuse = refuse
        self.request_id = request_id
        self.starts = bool(self.echo)
        keys = [pair[0] for pair in self.readers]
        cdef Py_ssize_t j, source
        for j in range(len(self.echo)):
            key = self.echo[j][0]
            source = len(keys) - 1 - keys[::-1].index(key) if key in keys else -1
            self._source[j] = source if 0 <= source < KEPT_READERS else -1
            self._is_request_id[j] = request_id >= 0 and key == keys[request_id]

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef dict data = {}
        cdef tuple pair
        cdef Py_ssize_t position = 0
        cdef PyObject* found
        cdef PyObject* kept[KEPT_READERS]
        cdef dict mapping = <dict>scope if type(scope) is dict else None
        owned = None
        headers = _scope_get(scope, "headers", None) or ()
        memset(kept, 0, sizeof(kept))
        try:
            try:
                for pair in self.readers:
                    if position == self.request_id:
                        found = PyDict_GetItemWithError(mapping, ID_SCOPE_KEY) if mapping is not None else NULL
                        if found != NULL:
                            PyDict_SetItem(data, pair[0], <object>found)
                            position += 1
                            continue
                    reader = pair[1]
                    if type(reader) is UUIDHeaderReader:
                        value = (<UUIDHeaderReader>reader)._read_keeping(
                            headers, &kept[position] if position < KEPT_READERS else NULL
                        )
                    elif type(reader) is HeaderReader:
                        value = (<HeaderReader>reader)._read(headers)
                    else:
                        value = reader(headers)
                    if position == self.request_id and type(value) is str:
                        owned = value
                    PyDict_SetItem(data, pair[0], value)
                    position += 1
            except MiddleWareValidationError as exc:
                if self.refuse is None:
                    raise
                ex._refusal = _Refusal(self.refuse, exc)
                return 1
            id_token = None
            if owned is not None:
                scope[ID_SCOPE_KEY] = owned
                id_token = PyContextVar_Set(CORRELATION_ID, owned)
            echoed = self._echoed(data, kept, owned is not None or self.request_id < 0) if self.echo else None
        finally:
            for position in range(KEPT_READERS):
                Py_XDECREF(kept[position])
        ex._states[index] = (PyContextVar_Set(_context_var, data), id_token, echoed)
        return 0

    cdef tuple _echoed(self, dict data, PyObject** kept, bint with_request_id):
        """The (name, value) headers to echo, straight into a tuple."""
        cdef Py_ssize_t count = PyTuple_GET_SIZE(self.echo), filled = 0, j, source
        cdef tuple entries = PyTuple_New(count)
        cdef tuple pair
        cdef PyObject* found
        for j in range(count):
            if self._is_request_id[j] and not with_request_id:
                continue  # the component that resolved the id echoes it
            pair = <tuple>PyTuple_GET_ITEM(self.echo, j)
            source = self._source[j]
            if source >= 0 and kept[source] != NULL:
                # The header's own bytes, already checked by the reader.
                raw = <object>kept[source]
            else:
                found = PyDict_GetItemWithError(data, pair[0])
                if found == NULL or <object>found is None:
                    continue
                value = <object>found
                try:
                    raw = encode_header_value(value if type(value) is str else str(value))
                except ValueError:
                    continue
            entry = (pair[1], raw)
            Py_INCREF(entry)
            PyTuple_SET_ITEM(entries, filled, entry)
            filled += 1
        return entries if filled == count else entries[:filled]

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        cdef tuple entry
        for entry in <tuple>(<tuple>state)[2]:
            if self.replace:
                _set(headers, <bytes>entry[0], <bytes>entry[1])
            else:
                headers.append(entry)
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        # Like starlette-context, an exception leaves the context readable by outer handlers.
        if exc is None:
            PyContextVar_Reset(_context_var, (<tuple>state)[0])
            if (<tuple>state)[1] is not None:
                PyContextVar_Reset(CORRELATION_ID, (<tuple>state)[1])
        return exc


cdef inline object _read(reader, headers):
    if type(reader) is UUIDHeaderReader:
        return (<UUIDHeaderReader>reader)._read(headers)
    if type(reader) is HeaderReader:
        return (<HeaderReader>reader)._read(headers)
    return reader(headers)


@cython.final
cdef class _Refusal:
    """The ASGI app answering a request a context reader refused."""

    cdef object refuse, exc

    def __init__(self, refuse, exc):
        self.refuse = refuse
        self.exc = exc

    def __call__(self, scope, receive, send):
        return self.refuse(scope, receive, send, self.exc)

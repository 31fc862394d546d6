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

    def __init__(self, readers, echo=(), *, replace=False, refuse=None, request_id=-1, paths=None):
        Stage.__init__(self, paths=paths)
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        if type(request_id) is not int or not -1 <= request_id < len(self.readers):
            raise ValueError("request_id must be -1 or the index of a reader")
        self.refuse = refuse
        self.request_id = request_id
        self.starts = bool(self.echo)

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef dict data = {}
        cdef tuple pair
        cdef Py_ssize_t position = 0
        cdef PyObject* found
        cdef dict mapping = <dict>scope if type(scope) is dict else None
        owned = None
        headers = scope.get("headers") or ()
        try:
            for pair in self.readers:
                if position == self.request_id:
                    found = PyDict_GetItemWithError(mapping, ID_SCOPE_KEY) if mapping is not None else NULL
                    if found != NULL:
                        value = <object>found
                    else:
                        value = _read(pair[1], headers)
                        if type(value) is str:
                            owned = value
                else:
                    value = _read(pair[1], headers)
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
        echoed = self._echoed(data, owned is not None or self.request_id < 0) if self.echo else None
        ex._states[index] = (PyContextVar_Set(_context_var, data), id_token, echoed)
        return 0

    cdef tuple _echoed(self, dict data, bint with_request_id):
        cdef list entries = []
        cdef tuple pair
        cdef PyObject* found
        request_key = (<tuple>self.readers[self.request_id])[0] if self.request_id >= 0 else _MISSING
        for pair in self.echo:
            if not with_request_id and pair[0] == request_key:
                continue  # the component that resolved the id echoes it
            found = PyDict_GetItemWithError(data, pair[0])
            if found == NULL or <object>found is None:
                continue
            value = <object>found
            try:
                entries.append((pair[1], encode_header_value(value if type(value) is str else str(value))))
            except ValueError:
                continue
        return tuple(entries)

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

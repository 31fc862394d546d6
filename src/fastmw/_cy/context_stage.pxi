# The request-context stage: the context plugins' values for the whole request.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.


@cython.final
cdef class ContextStage(Stage):
    """The request context: ``{key: reader(headers)}`` set for the whole request.

    ``readers`` are ``(key, reader)`` pairs; a reader raising ``MiddleWareValidationError``
    hands the request to ``refuse(scope, receive, send, exc)``. With ``source``, the context
    starts as the dict ``source(scope)`` returns (values a Python layer awaited before the
    engine ran), and the readers' values are stored into it. For each ``(key, header
    name)`` of ``echo`` the value this stage's context holds when the response starts
    (``str()`` of it; None and values that cannot be a header are skipped; read then, as
    starlette-context does, so a value the app stored is echoed) goes on it, appended or,
    with ``replace``, set.
    The reader at ``request_id`` (an index, or -1) reads the request id: it reuses an id an
    outer component resolved, and otherwise decides it for the components inside. The
    context is reset when the app returns, and left set when it raises.
    """

    cdef readonly tuple readers, echo
    cdef readonly bint replace
    cdef readonly object refuse, source
    cdef readonly Py_ssize_t request_id
    # Per echo entry: the reader filling its key (the last one with it) when that reader's
    # header bytes can be echoed as they came (below KEPT_READERS), else -1; and whether
    # it echoes the request id (skipped when an outer component resolved the id).
    cdef Py_ssize_t _source[MAX_ECHO]
    cdef bint _is_request_id[MAX_ECHO]
    # Per echo entry: the position of its key in the context dict the stage builds (keys are
    # inserted in reader order), where the response start looks first.
    cdef Py_ssize_t _slot[MAX_ECHO]

    def __init__(self, readers, echo=(), *, replace=False, refuse=None, request_id=-1, source=None, paths=None):
        Stage.__init__(self, paths=paths)
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        if source is not None and not callable(source):
            raise TypeError(f"source must be callable or None, not {_type_name(source)}")
        if type(request_id) is not int or not -1 <= request_id < len(self.readers):
            raise ValueError("request_id must be -1 or the index of a reader")
        if len(self.echo) > MAX_ECHO:
            raise ValueError(f"at most {MAX_ECHO} echo entries, got {len(self.echo)}")
        self.refuse = refuse
        self.request_id = request_id
        self.source = source
        self.starts = bool(self.echo)
        keys = [pair[0] for pair in self.readers]
        cdef Py_ssize_t j, last
        for j in range(len(self.echo)):
            key = self.echo[j][0]
            last = len(keys) - 1 - keys[::-1].index(key) if key in keys else -1
            self._source[j] = last if 0 <= last < KEPT_READERS else -1
            self._is_request_id[j] = request_id >= 0 and key == keys[request_id]
            self._slot[j] = _first_position(keys, key)

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        cdef dict data
        cdef tuple pair
        cdef Py_ssize_t position = 0
        cdef PyObject* found
        # Per reader below KEPT_READERS: the header bytes it echoes as they came (a new
        # reference, or NULL) and the value it read (borrowed from ``data``).
        cdef PyObject* kept[KEPT_READERS]
        cdef PyObject* got[KEPT_READERS]
        cdef dict mapping = <dict>scope if type(scope) is dict else None
        owned = None
        headers = _scope_get(scope, "headers", None) or ()
        if self.source is None:
            data = {}
        else:
            initial = self.source(scope)
            if type(initial) is not dict:
                raise TypeError(f"source must return a dict, not {_type_name(initial)}")
            data = <dict>initial
        memset(kept, 0, sizeof(kept))
        memset(got, 0, sizeof(got))
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
                    if position < KEPT_READERS:
                        got[position] = <PyObject*>value
                    position += 1
            except MiddleWareValidationError as exc:
                if self.refuse is None:
                    raise
                ex._refusal = _Refusal(self.refuse, exc)
                return 1
            id_token = None
            if owned is not None:
                scope[ID_SCOPE_KEY] = owned
                id_token = PyContextVar_Set(_id_var, owned)
            # (context token, request id token, echo the request id?, the context, then per
            # echo entry the value read and its header entry from the bytes as they came, or
            # None twice): at the response start the entry is echoed as it is if the context
            # still holds that very value.
            state = self._state(PyContextVar_Set(_context_var, data), id_token, owned is not None or self.request_id < 0, data, kept, got)
        finally:
            for position in range(KEPT_READERS):
                Py_XDECREF(kept[position])
        ex._states[index] = state
        return 0

    cdef tuple _state(self, token, id_token, bint with_request_id, dict data, PyObject** kept, PyObject** got):
        cdef Py_ssize_t count = PyTuple_GET_SIZE(self.echo), j, source
        cdef tuple state = PyTuple_New(STATE_ECHO + 2 * count)
        flag = True if with_request_id else False
        Py_INCREF(token)
        PyTuple_SET_ITEM(state, 0, token)
        Py_INCREF(id_token)
        PyTuple_SET_ITEM(state, 1, id_token)
        Py_INCREF(flag)
        PyTuple_SET_ITEM(state, 2, flag)
        Py_INCREF(data)
        PyTuple_SET_ITEM(state, 3, data)
        for j in range(count):
            source = self._source[j]
            if source < 0 or kept[source] == NULL or got[source] == NULL:
                Py_INCREF(None)
                PyTuple_SET_ITEM(state, STATE_ECHO + 2 * j, None)
                Py_INCREF(None)
                PyTuple_SET_ITEM(state, STATE_ECHO + 2 * j + 1, None)
                continue
            entry = ((<tuple>PyTuple_GET_ITEM(self.echo, j))[1], <object>kept[source])
            Py_INCREF(<object>got[source])
            PyTuple_SET_ITEM(state, STATE_ECHO + 2 * j, <object>got[source])
            Py_INCREF(entry)
            PyTuple_SET_ITEM(state, STATE_ECHO + 2 * j + 1, entry)
        return state

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        cdef tuple pair, saved = <tuple>state
        cdef Py_ssize_t count = PyTuple_GET_SIZE(self.echo), j, position
        cdef bint with_request_id = saved[2] is True
        # The context this stage set, as the app left it (values it stored are echoed).
        cdef dict data = <dict>PyTuple_GET_ITEM(saved, 3)
        cdef PyObject* key
        cdef PyObject* found
        for j in range(count):
            if self._is_request_id[j] and not with_request_id:
                continue  # the component that resolved the id echoes it
            pair = <tuple>PyTuple_GET_ITEM(self.echo, j)
            # Where the stage put the key, unless the app removed it since: no hashing.
            position = self._slot[j]
            if not PyDict_Next(data, &position, &key, &found) or key != PyTuple_GET_ITEM(pair, 0):
                found = PyDict_GetItemWithError(data, pair[0])
                if found == NULL:
                    continue
            if <object>found is None:
                continue
            if PyTuple_GET_ITEM(saved, STATE_ECHO + 2 * j) == found:
                # The header's own bytes, already checked by the reader, in their entry.
                entry = <tuple>PyTuple_GET_ITEM(saved, STATE_ECHO + 2 * j + 1)
                if self.replace:
                    _set(headers, <bytes>entry[0], <bytes>entry[1])
                else:
                    headers.append(entry)
                continue
            value_now = <object>found
            try:
                raw = encode_header_value(value_now if type(value_now) is str else str(value_now))
            except ValueError:
                continue
            if self.replace:
                _set(headers, <bytes>pair[1], <bytes>raw)
            else:
                headers.append((pair[1], raw))
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        # Like starlette-context, an exception leaves the context readable by outer handlers.
        if exc is None:
            PyContextVar_Reset(_context_var, (<tuple>state)[0])
            if (<tuple>state)[1] is not None:
                PyContextVar_Reset(_id_var, (<tuple>state)[1])
        return exc


cdef Py_ssize_t _first_position(list keys, key):
    """The position ``key`` gets among the distinct ``keys`` inserted in order into a dict
    (0 if that cannot be told: the echo then looks the key up)."""
    try:
        return list(dict.fromkeys(keys)).index(key)
    except (TypeError, ValueError):
        return 0


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

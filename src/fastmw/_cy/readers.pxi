# Header readers: the context plugins' values read from raw request headers.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.



@cython.final
cdef class HeaderReader:
    """``reader(headers)``: the first ``name`` header of raw ASGI headers as latin-1 text, or None."""

    cdef readonly bytes name

    def __init__(self, name):
        self.name = _lookup_key(name)

    cdef object _read(self, headers):
        raw = _find(headers, self.name, None)
        return None if raw is None else (<bytes>raw).decode("latin-1")

    def __call__(self, headers):
        return self._read(headers)


@cython.final
cdef class UUIDHeaderReader:
    """``reader(headers)``: a UUID plugin's value, the ``name`` header or a new 32-hex uuid4.

    An absent or empty header (or ``force_new``) gives ``new_request_id()``. A sent
    value is kept when it is at most ``max_length`` characters and, with ``validate``,
    a UUID ``uuid.UUID`` accepts with no control character; without ``validate``,
    when it may be echoed in a response header. Anything else is passed to
    ``on_invalid(value)``, whose result is returned (it may raise); without
    ``on_invalid`` a ``ValueError`` is raised.
    """

    cdef readonly bytes name
    cdef public bint force_new, validate
    cdef readonly Py_ssize_t max_length
    cdef readonly object on_invalid

    def __init__(self, name, *, force_new=False, validate=True, max_length=MAX_UUID_HEADER, on_invalid=None):
        if type(max_length) is not int or not 0 <= max_length <= PY_SSIZE_T_MAX:
            raise ValueError("max_length must be an int from 0 to sys.maxsize")
        if on_invalid is not None and not callable(on_invalid):
            raise TypeError(f"on_invalid must be callable or None, not {_type_name(on_invalid)}")
        self.name = _lookup_key(name)
        self.force_new = bool(force_new)
        self.validate = bool(validate)
        self.max_length = max_length
        self.on_invalid = on_invalid

    cdef object _read(self, headers):
        return self._read_keeping(headers, NULL)

    cdef object _read_keeping(self, headers, PyObject** kept):
        """``_read``; when the value is the header's bytes as they came, a new reference
        to those bytes goes to ``kept[0]`` (if given): the context stage echoes them as they are."""
        raw = None if self.force_new else _find(headers, self.name, None)
        if raw is None or PyBytes_GET_SIZE(raw) == 0:
            return new_request_id()
        cdef Py_ssize_t size = PyBytes_GET_SIZE(raw)
        cdef str value
        if self.validate and size <= self.max_length:
            if _uuid_text_version(<const unsigned char*>PyBytes_AS_STRING(raw), size) >= 0:
                # The usual header, a plain or canonical UUID: hex and dashes, so ASCII.
                value = PyUnicode_New(size, 127)
                memcpy(PyUnicode_DATA(value), PyBytes_AS_STRING(raw), size)
                if kept != NULL:
                    Py_INCREF(raw)
                    kept[0] = <PyObject*>raw
                return value
        value = (<bytes>raw).decode("latin-1")
        if PyUnicode_GET_LENGTH(value) <= self.max_length:
            if self.validate:
                # A plain or canonical UUID is hex and dashes only; other forms
                # uuid.UUID accepts may hide control characters in the whitespace it strips.
                if _fast_uuid_version(value) >= 0 or (_uuid_version(value) >= 0 and value.isprintable()):
                    return value
            elif is_header_value(value):
                return value
        if self.on_invalid is None:
            raise ValueError(f"invalid UUID header value {_shown(value)}")
        return self.on_invalid(value)

    def __call__(self, headers):
        return self._read(headers)


cdef tuple _pair(item, str what):
    """``item`` as a 2-tuple; the same TypeError in both twins otherwise."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{what} must be a pair, not {_type_name(item)} {_shown(repr(item))}")
    return (item[0], item[1])


cdef tuple _reader_pair(pair):
    key, reader = _pair(pair, "a context reader entry")
    if not callable(reader):
        raise TypeError(f"context reader for {key!r} must be callable, not {_type_name(reader)}")
    return key, reader


cdef tuple _echo_pair(pair):
    key, name = _pair(pair, "an echo entry")
    return key, encode_header_name(name)

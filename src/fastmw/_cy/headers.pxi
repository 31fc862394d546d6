# Header names, values and raw ASGI header lists (Starlette semantics).
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

cdef str SAFE_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=:@-"
# 1 for an RFC 9110 token byte (allowed in a header name).
cdef uint8_t TOKEN_TABLE[256]
# 1 for a control byte refused in a header value (all CTLs but HTAB).
cdef uint8_t VALUE_FORBIDDEN_TABLE[256]
# value of a hex digit, or 255.
cdef uint8_t HEX_VALUE[256]
# 1 for a byte allowed in a request id by default: [A-Za-z0-9._~+/=:@-].
cdef uint8_t SAFE_ID_TABLE[256]
cdef const char* HEX_CHARS = b"0123456789abcdef"


cdef void _init_tables():
    cdef int c
    cdef bytes token = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for c in range(256):
        TOKEN_TABLE[c] = 0
        VALUE_FORBIDDEN_TABLE[c] = 1 if (c < 0x20 and c != 0x09) or c == 0x7F else 0
        HEX_VALUE[c] = 255
        SAFE_ID_TABLE[c] = 1 if chr(c) in SAFE_ID_CHARS else 0
    for c in token:
        TOKEN_TABLE[c] = 1
    for c in range(10):
        HEX_VALUE[ord("0") + c] = c
    for c in range(6):
        HEX_VALUE[ord("a") + c] = 10 + c
        HEX_VALUE[ord("A") + c] = 10 + c


_init_tables()


# --------------------------------------------------------------------------- errors


cdef str _shown(value):
    text = repr(value[:SHOWN_CHARS])
    return text + "..." if len(value) > SHOWN_CHARS else text


cdef inline str _type_name(value):
    return type(value).__name__


# --------------------------------------------------------------------------- header names and values


cdef bytes _ascii_lower(bytes raw):
    """``raw.lower()`` that returns ``raw`` itself when it has no upper-case byte."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i
    cdef const unsigned char* src = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef unsigned char* dst
    for i in range(n):
        if 65 <= src[i] <= 90:
            break
    else:
        return raw
    result = PyBytes_FromStringAndSize(NULL, n)
    dst = <unsigned char*>PyBytes_AS_STRING(result)
    for i in range(n):
        dst[i] = src[i] + 32 if 65 <= src[i] <= 90 else src[i]
    return result


cdef bytes _lookup_key(name):
    if PyBytes_Check(name):
        return _ascii_lower(<bytes>name)
    if isinstance(name, str):
        try:
            return _ascii_lower(PyUnicode_AsLatin1String(name))
        except UnicodeEncodeError:
            pass
        raise ValueError(f"HTTP header name {_shown(name)} is not latin-1 encodable")
    raise TypeError(f"header name must be str or bytes, not {_type_name(name)}")


cpdef bytes encode_header_name(name):
    """Lower-cased latin-1 bytes of ``name``; refuses anything but an RFC 9110 token."""
    cdef bytes key = _lookup_key(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key), i
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(key)
    if n == 0:
        raise ValueError(f"invalid HTTP header name {_shown(name)}: only RFC 9110 token characters are allowed")
    for i in range(n):
        if not TOKEN_TABLE[p[i]]:
            raise ValueError(f"invalid HTTP header name {_shown(name)}: only RFC 9110 token characters are allowed")
    return key


cpdef bytes encode_header_value(value):
    """Latin-1 bytes of ``value``; refuses CR, LF, NUL and other control characters."""
    cdef bytes raw
    if PyBytes_Check(value):
        raw = <bytes>value
    elif PyUnicode_CheckExact(value) and PyUnicode_IS_ASCII(value):
        # The common case (ids, numbers, tokens): the ASCII data is the latin-1 encoding,
        # and a word-at-a-time check clears it of control characters.
        raw = PyBytes_FromStringAndSize(<const char*>PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value))
        if fastmw_ascii_printable(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw)):
            return raw
    elif isinstance(value, str):
        try:
            raw = PyUnicode_AsLatin1String(value)
        except UnicodeEncodeError:
            raw = None
        if raw is None:
            raise ValueError(f"HTTP header value {_shown(value)} is not latin-1 encodable")
    else:
        raise TypeError(f"header value must be str or bytes, not {_type_name(value)}")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw), i
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    for i in range(n):
        if VALUE_FORBIDDEN_TABLE[p[i]]:
            raise ValueError(
                f"invalid HTTP header value {_shown(value)}: control characters (CR, LF, NUL, ...) are not allowed"
            )
    return raw


cpdef bint is_header_value(value) except -1:
    """Whether ``encode_header_value`` takes ``value``: it may go out in a header (no CR, LF, NUL, ...)."""
    try:
        encode_header_value(value)
    except (TypeError, ValueError):
        return False
    return True


cdef int _entry(object entry, PyObject** name, PyObject** value) except -1:
    """Borrow the name and value of a raw header entry after checking its shape."""
    cdef Py_ssize_t size
    if type(entry) is tuple:
        size = PyTuple_GET_SIZE(entry)
        if size == 2:
            name[0] = PyTuple_GET_ITEM(entry, 0)
            value[0] = PyTuple_GET_ITEM(entry, 1)
        else:
            raise TypeError(f"ASGI header entry must have 2 items, not {size}")
    elif isinstance(entry, (tuple, list)):
        size = len(entry)
        if size != 2:
            raise TypeError(f"ASGI header entry must have 2 items, not {size}")
        if isinstance(entry, list):
            name[0] = PyList_GET_ITEM(entry, 0)
            value[0] = PyList_GET_ITEM(entry, 1)
        else:
            name[0] = PyTuple_GET_ITEM(entry, 0)
            value[0] = PyTuple_GET_ITEM(entry, 1)
    else:
        raise TypeError(f"ASGI header entry must be a (name, value) pair, not {_type_name(entry)}")
    if not PyBytes_Check(<object>name[0]):
        raise TypeError(f"ASGI header name must be bytes, not {_type_name(<object>name[0])}")
    if not PyBytes_Check(<object>value[0]):
        raise TypeError(f"ASGI header value must be bytes, not {_type_name(<object>value[0])}")
    return 0


cdef inline bint _same_name(PyObject* name, bytes key):
    """Case-insensitive ASCII comparison of a header name with a lower-case key, allocation free."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<object>name), i
    if n != PyBytes_GET_SIZE(key):
        return False
    cdef const unsigned char* a = <const unsigned char*>PyBytes_AS_STRING(<object>name)
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(key)
    cdef unsigned char c
    for i in range(n):
        c = a[i]
        if 65 <= c <= 90:
            c += 32
        if c != b[i]:
            return False
    return True


cdef inline list _mutable(headers):
    if type(headers) is list or isinstance(headers, list):
        return <list>headers
    raise TypeError(f"headers must be a list, not {_type_name(headers)}")


cdef object _find(headers, bytes key, object default):
    cdef PyObject* found
    cdef PyObject* name
    cdef PyObject* value
    cdef Py_ssize_t i
    cdef int irregular = 0
    if type(headers) is list:
        # What servers send, a list of (bytes, bytes) tuples, is searched in plain C;
        # anything else takes the checked loop, which raises on the first bad entry.
        found = fastmw_find_header(headers, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &irregular)
        if not irregular:
            return <object>found if found != NULL else default
        # No Python code runs inside this loop, so the list cannot change under it.
        for i in range(PyList_GET_SIZE(headers)):
            _entry(<object>PyList_GET_ITEM(headers, i), &name, &value)
            if _same_name(name, key):
                return <object>value
        return default
    for item in headers:
        _entry(item, &name, &value)
        if _same_name(name, key):
            return <object>value
    return default


cpdef object header_get(headers, name, object default=None):
    """Value of the first header called ``name`` (any case), or ``default``."""
    return _find(headers, _lookup_key(name), default)


cpdef list header_getlist(headers, name):
    """Values of every header called ``name``, in order."""
    cdef bytes key = _lookup_key(name)
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef list found = []
    for entry in headers:
        _entry(entry, &item_name, &item_value)
        if _same_name(item_name, key):
            found.append(<object>item_value)
    return found


cpdef bint header_contains(headers, name) except -1:
    """Whether a header called ``name`` is present."""
    return _find(headers, _lookup_key(name), _MISSING) is not _MISSING


cdef Py_ssize_t _only_header(list items, bytes key, int* irregular) noexcept:
    """The index of the one ``key`` header (lower-case) in ``items``, -1 when there is none,
    ``HEADER_REPEATED`` when there are more; ``irregular`` is set (and the answer is not
    to be used) at an entry that is not a (bytes, bytes) tuple."""
    cdef const char* text = PyBytes_AS_STRING(key)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t first = fastmw_header_index(items, text, size, 0, irregular)
    if first >= 0 and fastmw_header_index(items, text, size, first + 1, irregular) >= 0:
        return HEADER_REPEATED
    return first


cdef int _set(list items, bytes key, bytes raw) except -1:
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef int irregular = 0
    # The usual list, (bytes, bytes) tuples with the name at most once, is searched in plain C.
    cdef Py_ssize_t first = _only_header(items, key, &irregular), index = 0
    if first != HEADER_REPEATED and not irregular:
        if first < 0:
            items.append((key, raw))
        else:
            items[first] = (key, raw)
        return 0
    # Duplicates to drop, or an entry to check (the first bad one raises).
    first = -1
    while index < PyList_GET_SIZE(items):
        _entry(<object>PyList_GET_ITEM(items, index), &item_name, &item_value)
        if _same_name(item_name, key):
            if first < 0:
                first = index
            else:
                del items[index]
                continue
        index += 1
    if first < 0:
        items.append((key, raw))
    else:
        items[first] = (key, raw)
    return 0


cpdef header_set(headers, name, value):
    """Replace the first ``name`` header in place, drop its duplicates, or append."""
    cdef list items = _mutable(headers)
    cdef bytes key = encode_header_name(name)
    _set(items, key, encode_header_value(value))


cpdef bytes header_setdefault(headers, name, value):
    """The existing value of ``name``, or append ``value`` and return it."""
    cdef list items = _mutable(headers)
    cdef bytes key = encode_header_name(name)
    cdef bytes raw = encode_header_value(value)
    existing = _find(items, key, _MISSING)
    if existing is not _MISSING:
        return existing
    items.append((key, raw))
    return raw


cpdef header_append(headers, name, value):
    """Append a header, keeping any existing ones of the same name."""
    cdef list items = _mutable(headers)
    cdef bytes key = encode_header_name(name)
    items.append((key, encode_header_value(value)))


cpdef Py_ssize_t header_delete(headers, name) except -1:
    """Remove every ``name`` header; return how many were removed."""
    cdef list items = _mutable(headers)
    cdef bytes key = _lookup_key(name)
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef Py_ssize_t index = 0, removed = 0
    while index < PyList_GET_SIZE(items):
        _entry(<object>PyList_GET_ITEM(items, index), &item_name, &item_value)
        if _same_name(item_name, key):
            del items[index]
            removed += 1
        else:
            index += 1
    return removed


cpdef header_update(headers, other):
    """``header_set`` each pair of a mapping or an iterable of pairs."""
    cdef list items = _mutable(headers)
    pairs = other.items() if isinstance(other, Mapping) else other
    for name, value in pairs:
        header_set(items, name, value)


cpdef list header_items(headers):
    """(name, value) pairs decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list pairs = []
    for entry in headers:
        _entry(entry, &name, &value)
        pairs.append(((<bytes>name).decode("latin-1"), (<bytes>value).decode("latin-1")))
    return pairs


cpdef list header_keys(headers):
    """Header names decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list keys = []
    for entry in headers:
        _entry(entry, &name, &value)
        keys.append((<bytes>name).decode("latin-1"))
    return keys


cpdef list header_values(headers):
    """Header values decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list values = []
    for entry in headers:
        _entry(entry, &name, &value)
        values.append((<bytes>value).decode("latin-1"))
    return values


cpdef add_vary_header(headers, vary):
    """Join ``vary`` onto an existing Vary header (``", "``) or add one."""
    cdef list items = _mutable(headers)
    cdef bytes raw = encode_header_value(vary)
    existing = _find(items, b"vary", None)
    if existing is not None:
        # The joined value is checked again, as the pure twin's header_set does: an
        # existing Vary value with control characters is refused, not passed on.
        raw = encode_header_value(<bytes>existing + b", " + raw)
    _set(items, b"vary", raw)


cpdef list message_headers(message):
    """The header list of an ASGI message or scope, made a list in place if needed."""
    if not isinstance(message, dict):
        raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
    cdef PyObject* found = PyDict_GetItemWithError(message, "headers")
    if found != NULL and type(<object>found) is list:
        return <list>found
    if found == NULL or <object>found is None:
        headers = []
    elif isinstance(<object>found, (list, tuple)):
        headers = list(<object>found)
    else:
        raise TypeError(f"ASGI 'headers' must be a list or tuple, not {_type_name(<object>found)}")
    PyDict_SetItem(message, "headers", headers)
    return headers


cdef list _owned_headers(message):
    """A fresh copy of the message's header list, stored back in the message.

    The list an app sends may be shared (a Starlette ``Response`` sends its own
    ``raw_headers``; one error response often serves every request), so edits go to
    a copy, as Starlette's ``MutableHeaders(scope=...)`` does.
    """
    cdef list found = message_headers(message)
    cdef list headers = PyList_GetSlice(found, 0, PyList_GET_SIZE(found))
    if type(message) is dict:
        PyDict_SetItem(message, "headers", headers)
    else:
        message["headers"] = headers
    return headers


class MutableHeaders(_StarletteMutableHeaders):
    """Starlette's ``MutableHeaders`` with case-insensitive lookups and validated writes."""

    def __init__(self, headers=None, raw=None, scope=None):
        if scope is not None and headers is None and raw is None:
            _StarletteMutableHeaders.__init__(self, raw=_owned_headers(scope))
        else:
            _StarletteMutableHeaders.__init__(self, headers, raw, scope)

    def __getitem__(self, key):
        value = _find(self._list, _lookup_key(key), None)
        if value is None:
            raise KeyError(key)
        return (<bytes>value).decode("latin-1")

    def get(self, key, default=None):
        value = _find(self._list, _lookup_key(key), None)
        return default if value is None else (<bytes>value).decode("latin-1")

    def __contains__(self, key):
        return header_contains(self._list, key)

    def getlist(self, key):
        return [(<bytes>value).decode("latin-1") for value in header_getlist(self._list, key)]

    def mutablecopy(self):
        return MutableHeaders(raw=self._list[:])

    def __setitem__(self, key, value):
        header_set(self._list, key, value)

    def __delitem__(self, key):
        header_delete(self._list, key)

    def setdefault(self, key, value):
        return header_setdefault(self._list, key, value).decode("latin-1")

    def update(self, other=(), /, **kwargs):
        header_update(self._list, other)
        if kwargs:
            header_update(self._list, kwargs)

    def append(self, key, value):
        header_append(self._list, key, value)

    def add_vary_header(self, vary):
        add_vary_header(self._list, vary)

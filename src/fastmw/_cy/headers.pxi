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


cdef inline bytes _exact_bytes(value):
    """The bytes a ``bytes`` (or subclass) object holds, as an exact ``bytes``, running no Python code."""
    if PyBytes_CheckExact(value):
        return <bytes>value
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


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
        # A subclass is read for its bytes (its own methods are not called), as in the pure twin.
        return _ascii_lower(_exact_bytes(name))
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
        raw = _exact_bytes(value)
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


cdef object _entry(object entry, PyObject** name, PyObject** value):
    """Borrow the name and value of a raw header entry after checking its shape.

    Returns the object that owns them (the entry itself, or the (bytes, bytes) tuple read
    from an entry of any other shape): the caller holds it while it uses them."""
    if not fastmw_regular_entry(entry):
        entry = _entry_pair(entry)
    name[0] = PyTuple_GET_ITEM(entry, 0)
    value[0] = PyTuple_GET_ITEM(entry, 1)
    return entry


@cython.boundscheck(True)
cdef tuple _entry_pair(object entry):
    """The pure twin's read of an entry that is not a (bytes, bytes) tuple: a tuple or list
    (or subclass) of len() 2 whose items [0] and [1] are bytes, copied as exact bytes.
    A subclass's own methods run here, so nothing read before them is trusted after."""
    if not isinstance(entry, (tuple, list)):
        raise TypeError(f"ASGI header entry must be a (name, value) pair, not {_type_name(entry)}")
    if len(entry) != 2:
        raise TypeError(f"ASGI header entry must have 2 items, not {len(entry)}")
    name = entry[0]
    value = entry[1]
    if not PyBytes_Check(name):
        raise TypeError(f"ASGI header name must be bytes, not {_type_name(name)}")
    if not PyBytes_Check(value):
        raise TypeError(f"ASGI header value must be bytes, not {_type_name(value)}")
    return (_exact_bytes(name), _exact_bytes(value))


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
    cdef int irregular = 0
    if type(headers) is list:
        # What servers send, a list of (bytes, bytes) tuples, is searched in plain C;
        # anything else takes the checked loop, which raises on the first bad entry.
        found = fastmw_find_header(headers, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), &irregular)
        if not irregular:
            return <object>found if found != NULL else default
    # An entry's own methods may run here (and change the list): the loop holds each entry
    # and re-reads the list's size at every step, as the pure twin's iteration does.
    for item in headers:
        owner = _entry(item, &name, &value)
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
        owner = _entry(entry, &item_name, &item_value)
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
    cdef int irregular = 0
    cdef Py_ssize_t first
    cdef tuple pair = (key, raw)
    if type(items) is list:
        # The usual list, (bytes, bytes) tuples with the name at most once, is searched in
        # plain C. Nothing runs between the scan and the write, so ``first`` is in bounds.
        first = _only_header(items, key, &irregular)
        if first != HEADER_REPEATED and not irregular:
            if first < 0:
                items.append(pair)
            else:
                items[first] = pair
            return 0
    # Duplicates to drop, an entry to check (the first bad one raises), or a list subclass.
    return _set_checked(items, key, pair)


@cython.boundscheck(True)
cdef int _set_checked(object items, bytes key, tuple pair) except -1:
    """``_set`` as the pure twin's header_set runs it: ``len``, indexing, ``del`` and
    ``append`` through the list's own methods, every index checked (they may change it)."""
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef Py_ssize_t first = -1, index = 0
    while index < len(items):
        owner = _entry(items[index], &item_name, &item_value)
        if _same_name(item_name, key):
            if first < 0:
                first = index
            else:
                del items[index]
                continue
        index += 1
    if first < 0:
        items.append(pair)
    else:
        items[first] = pair
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


@cython.boundscheck(True)
cpdef Py_ssize_t header_delete(headers, name) except -1:
    """Remove every ``name`` header; return how many were removed."""
    cdef object items = _mutable(headers)
    cdef bytes key = _lookup_key(name)
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef Py_ssize_t index = 0, removed = 0
    # len(), indexing and del through the list's own methods (a subclass's may change it).
    while index < len(items):
        owner = _entry(items[index], &item_name, &item_value)
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
    for pair in pairs:
        name, value = _update_pair(pair)
        header_set(items, name, value)


@cython.boundscheck(True)
cdef tuple _update_pair(pair):
    """A (name, value) pair of ``header_update``: a tuple or list of len() 2 (its own
    messages, not the interpreter's unpacking ones, so both twins say the same)."""
    if type(pair) is tuple and PyTuple_GET_SIZE(pair) == 2:
        return <tuple>pair
    if not isinstance(pair, (tuple, list)):
        raise TypeError(f"header_update takes (name, value) pairs, not {_type_name(pair)}")
    if len(pair) != 2:
        raise TypeError(f"header_update takes (name, value) pairs, not {len(pair)} items")
    name = pair[0]
    value = pair[1]
    return (name, value)


cpdef list header_items(headers):
    """(name, value) pairs decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list pairs = []
    for entry in headers:
        owner = _entry(entry, &name, &value)
        pairs.append(((<bytes>name).decode("latin-1"), (<bytes>value).decode("latin-1")))
    return pairs


cpdef list header_keys(headers):
    """Header names decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list keys = []
    for entry in headers:
        owner = _entry(entry, &name, &value)
        keys.append((<bytes>name).decode("latin-1"))
    return keys


cpdef list header_values(headers):
    """Header values decoded from latin-1."""
    cdef PyObject* name
    cdef PyObject* value
    cdef list values = []
    for entry in headers:
        owner = _entry(entry, &name, &value)
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
    # Held, not borrowed: list() below may run a subclass's methods, which may change the message.
    headers = None if found == NULL else <object>found
    if headers is None:
        headers = []
    elif isinstance(headers, (list, tuple)):
        headers = list(headers)
    else:
        raise TypeError(f"ASGI 'headers' must be a list or tuple, not {_type_name(headers)}")
    _store_headers(message, headers)
    return headers


cdef inline int _store_headers(message, list headers) except -1:
    """``message["headers"] = headers`` (a dict subclass's own __setitem__ runs, as in the pure twin)."""
    if type(message) is dict:
        PyDict_SetItem(message, "headers", headers)
    else:
        message["headers"] = headers
    return 0


cdef list _owned_headers(message):
    """A fresh copy of the message's header list, stored back in the message.

    The list an app sends may be shared (a Starlette ``Response`` sends its own
    ``raw_headers``; one error response often serves every request), so edits go to
    a copy, as Starlette's ``MutableHeaders(scope=...)`` does.
    """
    cdef list found = message_headers(message)
    cdef list headers = PyList_GetSlice(found, 0, PyList_GET_SIZE(found))
    _store_headers(message, headers)
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

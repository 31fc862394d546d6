# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""Compiled core of fastmw. ``fastmw._core_py`` is its specification: same names,
signatures, results, exceptions and messages. Change both in one commit."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.contextvars cimport PyContextVar_Get, PyContextVar_Reset, PyContextVar_Set
from cpython.dict cimport PyDict_GetItemWithError, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_GetSlice
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsLatin1String
from libc.stdint cimport uint8_t
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memcpy, memset

import os
import uuid
import warnings
from collections.abc import Coroutine, Mapping, MutableMapping

from starlette.datastructures import MutableHeaders as _StarletteMutableHeaders

from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import ConfigurationError, ContextDoesNotExistError, MiddleWareValidationError

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    int PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    object PyUnicode_New(Py_ssize_t size, unsigned int maxchar)

cdef extern from "Python.h":
    # PYGEN_RETURN 0, PYGEN_ERROR -1 (exception set), PYGEN_NEXT 1; CPython 3.10+.
    int PyIter_Send(object iterator, object arg, PyObject** presult) except -1
    bint PyCoro_CheckExact(object)
    bint PyUnicode_CheckExact(object)
    bint PyIter_Check(object)
    object _method_new "PyMethod_New"(object func, object self)
    bint PyGen_CheckExact(object)

cdef extern from *:
    """
    /* Whether n ASCII bytes hold no control character (0x00-0x1F, 0x7F), eight at a time. */
    static int fastmw_ascii_printable(const char* data, Py_ssize_t n) {
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        const uint64_t below = 0x2020202020202020ULL, del = 0x7F7F7F7F7F7F7F7FULL;
        uint64_t word, flip;
        Py_ssize_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&word, data + i, 8);
            flip = word ^ del;
            if (((word - below) & ~word & highs) | ((flip - ones) & ~flip & highs)) return 0;
        }
        for (; i < n; i++) {
            unsigned char c = (unsigned char)data[i];
            if (c < 0x20 || c == 0x7F) return 0;
        }
        return 1;
    }

    /* vectorcall for the per-request callables, so calling one builds no argument tuple. */
    typedef PyObject* (*fastmw_call1_fn)(PyObject*, PyObject*);
    typedef PyObject* (*fastmw_call3_fn)(PyObject*, PyObject*, PyObject*, PyObject*);
    static fastmw_call1_fn fastmw_call1 = NULL;
    static fastmw_call3_fn fastmw_call3 = NULL;

    /* Irregular arguments: the type's tp_call raises its usual errors (or accepts them). */
    static PyObject* fastmw_vectorcall_fallback(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
        PyObject* tuple = PyTuple_New(nargs);
        PyObject* kwargs = NULL;
        PyObject* result = NULL;
        if (tuple == NULL) return NULL;
        for (i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        if (nkw) {
            kwargs = PyDict_New();
            if (kwargs == NULL) goto done;
            for (i = 0; i < nkw; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) goto done;
            }
        }
        result = Py_TYPE(callable)->tp_call(callable, tuple, kwargs);
    done:
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }

    static PyObject* fastmw_vectorcall1(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 1 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call1(callable, args[0]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    static PyObject* fastmw_vectorcall3(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 3 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call3(callable, args[0], args[1], args[2]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    typedef PyObject* (*fastmw_call4_fn)(PyObject*, PyObject*, PyObject*, PyObject*, PyObject*);
    static fastmw_call4_fn fastmw_call4 = NULL;

    static PyObject* fastmw_vectorcall4(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 4 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call4(callable, args[0], args[1], args[2], args[3]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    /* An object of this type in a class body is called like a function defined there:
       instance.attr(...) and type(instance).__call__ pass the instance first, unbound. */
    static int fastmw_enable_method(PyObject* type, Py_ssize_t offset, void* call4) {
        PyTypeObject* t = (PyTypeObject*)type;
        fastmw_call4 = (fastmw_call4_fn)call4;
        t->tp_vectorcall_offset = offset;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR;
        PyType_Modified(t);
        return 0;
    }
    #define FASTMW_VECTORCALL4 ((void*)fastmw_vectorcall4)

    static int fastmw_enable_vectorcall(PyObject* type, Py_ssize_t offset, void* call1, void* call3) {
        PyTypeObject* t = (PyTypeObject*)type;
        if (call1 != NULL) fastmw_call1 = (fastmw_call1_fn)call1;
        if (call3 != NULL) fastmw_call3 = (fastmw_call3_fn)call3;
        t->tp_vectorcall_offset = offset;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
        PyType_Modified(t);
        return 0;
    }
    /* The value of the first header whose name is `key` (lower-case) in any case, borrowed;
       NULL when absent. Sets *irregular, and stops, at an entry that is not a
       (bytes, bytes) tuple: the caller then runs its checked loop. */
    static PyObject* fastmw_find_header(PyObject* list, const char* key, Py_ssize_t size, int* irregular) {
        Py_ssize_t i, j, n = PyList_GET_SIZE(list);
        for (i = 0; i < n; i++) {
            PyObject* entry = PyList_GET_ITEM(list, i);
            PyObject *name, *value;
            const unsigned char* text;
            if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2) goto irregular;
            name = PyTuple_GET_ITEM(entry, 0);
            value = PyTuple_GET_ITEM(entry, 1);
            if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) goto irregular;
            if (PyBytes_GET_SIZE(name) != size) continue;
            text = (const unsigned char*)PyBytes_AS_STRING(name);
            for (j = 0; j < size; j++) {
                unsigned char c = text[j];
                if (c >= 'A' && c <= 'Z') c += 32;
                if (c != (unsigned char)key[j]) break;
            }
            if (j == size) return value;
        }
        return NULL;
    irregular:
        *irregular = 1;
        return NULL;
    }

    /* A new list: the items of `list`, then those of `extra` (a tuple). */
    static PyObject* fastmw_list_plus_tuple(PyObject* list, PyObject* extra) {
        Py_ssize_t n = PyList_GET_SIZE(list), k = PyTuple_GET_SIZE(extra), i;
        PyObject* result = PyList_New(n + k);
        if (result == NULL) return NULL;
        for (i = 0; i < n; i++) {
            PyObject* item = PyList_GET_ITEM(list, i);
            Py_INCREF(item);
            PyList_SET_ITEM(result, i, item);
        }
        for (i = 0; i < k; i++) {
            PyObject* item = PyTuple_GET_ITEM(extra, i);
            Py_INCREF(item);
            PyList_SET_ITEM(result, n + i, item);
        }
        return result;
    }

    #define FASTMW_VECTORCALL1 ((void*)fastmw_vectorcall1)
    #define FASTMW_VECTORCALL3 ((void*)fastmw_vectorcall3)
    """
    bint fastmw_ascii_printable(const char* data, Py_ssize_t n)
    PyObject* fastmw_find_header(object headers, const char* key, Py_ssize_t size, int* irregular)
    list fastmw_list_plus_tuple(list headers, tuple extra)
    int fastmw_enable_vectorcall(object type, Py_ssize_t offset, void* call1, void* call3) except -1
    void* FASTMW_VECTORCALL1
    void* FASTMW_VECTORCALL3
    void* FASTMW_VECTORCALL4
    int fastmw_enable_method(object type, Py_ssize_t offset, void* call4) except -1

cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(clockid_t, timespec*)
    clockid_t CLOCK_MONOTONIC

cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)(), void (*parent)(), void (*child)())

__all__ = [
    "ContextRunner",
    "HeaderReader",
    "HeaderSend",
    "JsonLinesWriter",
    "MutableHeaders",
    "ReceiveRecorder",
    "SendRecorder",
    "UUIDHeaderReader",
    "_Context",
    "add_vary_header",
    "context_get",
    "context_reset",
    "context_set",
    "encode_access_record",
    "encode_header_name",
    "encode_header_value",
    "header_append",
    "header_contains",
    "header_delete",
    "header_get",
    "header_getlist",
    "header_items",
    "header_keys",
    "header_set",
    "header_setdefault",
    "header_update",
    "header_values",
    "is_uuid",
    "is_uuid4",
    "is_visible_ascii",
    "message_headers",
    "monotonic",
    "new_request_id",
    "solo_call",
]

cdef enum:
    SHOWN_CHARS = 64
    RANDOM_POOL = 4096
    # A UUID header longer than this is refused before it is parsed (8 KiB).
    MAX_UUID_HEADER = 8 * 1024
    # inspect.CO_ITERABLE_COROUTINE: a @types.coroutine generator may be awaited.
    CO_ITERABLE_COROUTINE = 0x100
    PYGEN_RETURN = 0
    # Readers whose header bytes the runner can keep for the echo (a fixed C array).
    KEPT_READERS = 8

cdef object _MISSING = object()
cdef object _context_var = REQUEST_CONTEXT

# 1 for an RFC 9110 token byte (allowed in a header name).
cdef uint8_t TOKEN_TABLE[256]
# 1 for a control byte refused in a header value (all CTLs but HTAB).
cdef uint8_t VALUE_FORBIDDEN_TABLE[256]
# value of a hex digit, or 255.
cdef uint8_t HEX_VALUE[256]
cdef const char* HEX_CHARS = b"0123456789abcdef"


cdef void _init_tables():
    cdef int c
    cdef bytes token = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for c in range(256):
        TOKEN_TABLE[c] = 0
        VALUE_FORBIDDEN_TABLE[c] = 1 if (c < 0x20 and c != 0x09) or c == 0x7F else 0
        HEX_VALUE[c] = 255
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


cdef int _set(list items, bytes key, bytes raw) except -1:
    cdef PyObject* item_name
    cdef PyObject* item_value
    cdef Py_ssize_t first = -1, index = 0
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


# --------------------------------------------------------------------------- ids and clock


cpdef double monotonic():
    """Seconds on the monotonic clock (``time.monotonic``'s clock)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


# A pool of CSPRNG bytes (os.urandom) consumed 16 at a time; emptied in a forked
# child so parent and child never hand out the same ids.
cdef unsigned char _random_pool[RANDOM_POOL]
cdef Py_ssize_t _random_used = RANDOM_POOL


cdef void _forget_random_pool() noexcept nogil:
    global _random_used
    _random_used = RANDOM_POOL


pthread_atfork(NULL, NULL, _forget_random_pool)


cpdef str new_request_id():
    """A random (CSPRNG) uuid4 as 32 lower-case hex characters."""
    global _random_used
    cdef bytes fresh
    cdef unsigned char raw[16]
    cdef Py_ssize_t i
    if _random_used + 16 > RANDOM_POOL:
        fresh = os.urandom(RANDOM_POOL)
        memcpy(_random_pool, PyBytes_AS_STRING(fresh), RANDOM_POOL)
        _random_used = 0
    memcpy(raw, _random_pool + _random_used, 16)
    _random_used += 16
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    result = PyUnicode_New(32, 127)
    cdef char* out = <char*>PyUnicode_DATA(result)
    for i in range(16):
        out[2 * i] = HEX_CHARS[raw[i] >> 4]
        out[2 * i + 1] = HEX_CHARS[raw[i] & 0x0F]
    return result


cdef int _fast_uuid_version(str value):
    """Version of a plain (32 hex) or canonical (8-4-4-4-12) UUID string;
    -1 when it is neither, so the caller falls back to ``uuid.UUID``."""
    if not PyUnicode_IS_ASCII(value):
        return -1
    return _uuid_text_version(<const unsigned char*>PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value))


cdef int _uuid_text_version(const unsigned char* p, Py_ssize_t n) noexcept:
    """``_fast_uuid_version`` of ``n`` bytes (ASCII text)."""
    cdef Py_ssize_t i
    cdef unsigned int seen = 0
    cdef int version_nibble, variant_nibble
    # HEX_VALUE is 0-15 for a hex digit and 255 otherwise: OR them all, test once.
    if n == 32:
        for i in range(32):
            seen |= HEX_VALUE[p[i]]
        version_nibble = HEX_VALUE[p[12]]
        variant_nibble = HEX_VALUE[p[16]]
    elif n == 36:
        if p[8] != 45 or p[13] != 45 or p[18] != 45 or p[23] != 45:  # '-'
            return -1
        for i in range(36):
            if i != 8 and i != 13 and i != 18 and i != 23:
                seen |= HEX_VALUE[p[i]]
        version_nibble = HEX_VALUE[p[14]]
        variant_nibble = HEX_VALUE[p[19]]
    else:
        return -1
    if seen > 15:
        return -1
    # uuid.UUID.version is None (here 0) unless the variant is RFC 4122 (10xx).
    if (variant_nibble & 0xC) != 0x8:
        return 0
    return version_nibble


cdef int _uuid_version(value):
    if not isinstance(value, str):
        return -1
    cdef int version = _fast_uuid_version(<str>value)
    if version >= 0:
        return version
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError):
        return -1
    return parsed.version or 0


cpdef bint is_uuid(value) except -1:
    """Whether ``uuid.UUID(value)`` accepts ``value`` (any form, any version)."""
    return _uuid_version(value) >= 0


cpdef bint is_uuid4(value) except -1:
    """Whether ``value`` parses as a UUID whose version is 4."""
    return _uuid_version(value) == 4


cpdef bint is_visible_ascii(value, Py_ssize_t max_length) except -1:
    """Whether ``value`` is a non-empty str of printable ASCII (0x21-0x7E) no longer than ``max_length``."""
    if not isinstance(value, str):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value), i
    if n == 0 or n > max_length or not PyUnicode_IS_ASCII(value):
        return False
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(value)
    for i in range(n):
        if p[i] < 0x21 or p[i] > 0x7E:
            return False
    return True


# --------------------------------------------------------------------------- send / receive wrapping


@cython.freelist(16)
cdef class SendRecorder:
    """Wraps an ASGI ``send``: records the response as it passes, never buffers it.

    Headers registered with ``add_header``/``set_header`` and the ``on_start``
    callback are applied to ``http.response.start`` (and ``websocket.accept``).
    """

    cdef readonly object send
    cdef public object on_start
    cdef readonly bint started, complete, accepted
    cdef readonly object status, headers, close_code
    cdef readonly Py_ssize_t body_bytes
    cdef readonly double t_start, t_first_byte, t_last_byte
    cdef list _pending

    def __init__(self, send, on_start=None):
        self.send = send
        self.on_start = on_start
        self.started = False
        self.complete = False
        self.accepted = False
        self.status = None
        self.headers = None
        self.close_code = None
        self.body_bytes = 0
        self.t_start = monotonic()
        self.t_first_byte = 0.0
        self.t_last_byte = 0.0
        self._pending = None

    def add_header(self, name, value):
        """Append this header to the response start (duplicates kept)."""
        entry = (False, encode_header_name(name), encode_header_value(value))
        if self._pending is None:
            self._pending = []
        self._pending.append(entry)

    def set_header(self, name, value):
        """Set this header on the response start (replacing the app's)."""
        entry = (True, encode_header_name(name), encode_header_value(value))
        if self._pending is None:
            self._pending = []
        self._pending.append(entry)

    cdef list _apply(self, dict message):
        cdef list headers = _owned_headers(message)
        cdef tuple entry
        cdef PyObject* name
        cdef PyObject* value
        cdef Py_ssize_t i
        # A malformed entry is refused here, at the innermost layer, before anything is sent.
        for i in range(PyList_GET_SIZE(headers)):
            _entry(<object>PyList_GET_ITEM(headers, i), &name, &value)
        if self._pending is not None:
            for entry in self._pending:
                if entry[0]:
                    _set(headers, <bytes>entry[1], <bytes>entry[2])
                else:
                    headers.append((entry[1], entry[2]))
        if self.on_start is not None:
            self.on_start(self, message)
        return headers

    def __call__(self, message):
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        cdef dict msg = <dict>message
        kind = msg.get("type")
        if kind == "http.response.body" or kind == "websocket.http.response.body":
            body = msg.get("body", b"")
            if PyBytes_Check(body):
                self.body_bytes += PyBytes_GET_SIZE(body)
            elif isinstance(body, bytearray):
                self.body_bytes += len(body)
            else:
                raise TypeError(f"{kind} 'body' must be bytes, not {_type_name(body)}")
            if not msg.get("more_body", False):
                self.complete = True
                self.t_last_byte = monotonic()
        elif kind == "http.response.start" or kind == "websocket.http.response.start":
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            status = msg.get("status")
            if not isinstance(status, int):
                raise TypeError(f"{kind} 'status' must be an int, not {_type_name(status)}")
            self.headers = self._apply(msg)
            self.status = status
            self.started = True
            self.t_first_byte = monotonic()
        elif kind == "websocket.accept":
            self.headers = self._apply(msg)
            self.accepted = True
            self.t_first_byte = monotonic()
        elif kind == "websocket.close":
            self.close_code = msg.get("code", 1000)
            self.t_last_byte = monotonic()
        return self.send(message)


@cython.freelist(16)
cdef class ReceiveRecorder:
    """Wraps an ASGI ``receive``: counts request body bytes, notes disconnects,
    and keeps a copy of the body up to ``body_limit`` bytes without consuming it."""

    cdef readonly object receive
    cdef readonly Py_ssize_t body_limit, body_bytes
    cdef readonly bint body_truncated, disconnected
    cdef bytearray _copy

    def __init__(self, receive, body_limit=0):
        if type(body_limit) is not int or body_limit < 0:
            raise ValueError("body_limit must be a non-negative int")
        self.receive = receive
        self.body_limit = body_limit
        self.body_bytes = 0
        self.body_truncated = False
        self.disconnected = False
        self._copy = bytearray()

    @property
    def body(self):
        """The copy of the request body read so far (at most ``body_limit`` bytes)."""
        return bytes(self._copy)

    def release(self):
        """Drop the body copy."""
        self._copy = bytearray()

    async def __call__(self):
        message = await self.receive()
        kind = message.get("type")
        cdef Py_ssize_t size, room
        if kind == "http.request":
            body = message.get("body", b"")
            size = len(body)
            self.body_bytes += size
            room = self.body_limit - len(self._copy)
            if size > room:
                self.body_truncated = True
                size = room
            if size > 0:
                self._copy += body[:size]
        elif kind == "http.disconnect" or kind == "websocket.disconnect":
            self.disconnected = True
        return message


# --------------------------------------------------------------------------- context storage


cpdef context_set(data):
    """Make ``data`` the current request context; returns the token to reset it."""
    if not isinstance(data, dict):
        raise TypeError(f"context data must be a dict, not {_type_name(data)}")
    return PyContextVar_Set(_context_var, data)


cpdef context_reset(token):
    """Restore the context that was current before ``context_set`` returned ``token``."""
    PyContextVar_Reset(_context_var, token)


cdef inline object _current_or_none():
    cdef PyObject* value = NULL
    PyContextVar_Get(_context_var, NULL, &value)
    if value == NULL:
        return None
    result = <object>value
    Py_XDECREF(value)
    return result


cpdef object context_get():
    """The current request context dict; raises ``ContextDoesNotExistError`` outside a request."""
    data = _current_or_none()
    if data is None:
        raise ContextDoesNotExistError()
    return data


# --------------------------------------------------------------------------- context runner
# The request-context middleware's hot path: plugin values read from the raw
# request headers, the context set, the echo headers registered with a
# SendRecorder, and the app run; the context is reset once the app returns.


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
        to those bytes goes to ``kept[0]`` (if given): the runner echoes them as they are."""
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
            elif _echoable(value):
                return value
        if self.on_invalid is None:
            raise ValueError(f"invalid UUID header value {_shown(value)}")
        return self.on_invalid(value)

    def __call__(self, headers):
        return self._read(headers)


cdef bint _echoable(str value):
    try:
        encode_header_value(value)
    except ValueError:
        return False
    return True


@cython.final
cdef class ContextRunner:
    """Runs ``app`` with a request context built from the raw request headers.

    ``runner(scope, receive, send)`` returns a coroutine (compiled: an awaitable that
    ``asyncio`` takes as one): nothing runs until it is first stepped, so the context
    is set in the task that awaits it. On ``http`` and ``websocket`` scopes the context
    dict is ``{key: reader(headers)}`` over ``readers`` (``(key, reader)`` pairs, in
    order); a reader raising
    ``MiddleWareValidationError`` hands the request to
    ``refuse(scope, receive, send, exc)`` instead (re-raised without ``refuse``).
    For each ``(key, header name)`` of ``echo`` the context value (``str()`` of it)
    goes on the response start, appended or, with ``replace``, set; a value that
    cannot be a header value is skipped. The context is reset when the app returns
    and left set when it raises, so outer exception handlers can read it. Other
    scopes go to ``app`` untouched.
    """

    cdef void* _vectorcall
    cdef readonly object app
    cdef readonly tuple readers, echo
    cdef readonly bint replace
    cdef readonly object refuse
    # Per echo entry: the index of the UUIDHeaderReader that fills its key (the last
    # reader with that key), below KEPT_READERS, else -1; its header bytes are echoed as is.
    cdef tuple _echo_reader

    def __init__(self, app, readers, echo=(), *, replace=False, refuse=None):
        self._vectorcall = FASTMW_VECTORCALL3
        self.app = app
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        self.refuse = refuse
        self._echo_reader = tuple([_echo_reader(self.readers, pair[0]) for pair in self.echo])

    def __call__(self, scope, receive, send):
        return _runner_call(self, scope, receive, send)


cdef inline _ContextAwait _pending(object runner, scope, receive, send):
    """An awaitable that enters ``runner`` on its first step, like a coroutine would."""
    cdef _ContextAwait waiter = _ContextAwait.__new__(_ContextAwait)
    waiter._runner = runner
    waiter._scope = scope
    waiter._receive = receive
    waiter._send = send
    return waiter


cdef object _runner_call(ContextRunner self, scope, receive, send):
    return _pending(self, scope, receive, send)


cdef HeaderSend _echo_send(ContextRunner self, dict data, PyObject** kept, send):
    """``send`` wrapped to echo the context values named by ``self.echo``."""
    # The echoed entries straight into a tuple (what HeaderSend keeps); a skipped
    # value leaves it one shorter.
    cdef Py_ssize_t echo_count = PyTuple_GET_SIZE(self.echo), filled = 0, position = 0, index
    cdef tuple echoed = PyTuple_New(echo_count)
    cdef tuple pair
    cdef PyObject* found
    for pair in self.echo:
        index = <Py_ssize_t>self._echo_reader[position]
        position += 1
        if index >= 0 and kept[index] != NULL:
            # The header's own bytes, already checked by the reader.
            raw = <object>kept[index]
        else:
            found = PyDict_GetItemWithError(data, pair[0])
            if found == NULL or <object>found is None:
                continue  # nothing to echo (an absent header, a key no reader fills)
            value = <object>found
            try:
                raw = encode_header_value(value if type(value) is str else str(value))
            except ValueError:
                continue
        entry = (pair[1], raw)
        Py_INCREF(entry)
        PyTuple_SET_ITEM(echoed, filled, entry)
        filled += 1
    if filled < echo_count:
        echoed = echoed[:filled]
    cdef HeaderSend wrapper = HeaderSend.__new__(HeaderSend)
    wrapper._vectorcall = FASTMW_VECTORCALL1
    wrapper.send = send
    wrapper.headers = echoed
    wrapper.replace = self.replace
    return wrapper


cdef int _runner_enter(ContextRunner self, _ContextAwait waiter, scope, receive, send) except -1:
    """Build the context and start the app into ``waiter`` (``_target``, ``_token``)."""
    cdef PyObject* found
    if type(scope) is dict:
        found = PyDict_GetItemWithError(scope, "type")
        kind = <object>found if found != NULL else scope["type"]
    else:
        kind = scope["type"]
    if kind != "http" and kind != "websocket":
        waiter._target = _await_target(self.app(scope, receive, send))
        return 0
    if type(scope) is dict:
        found = PyDict_GetItemWithError(scope, "headers")
        headers = <object>found if found != NULL else None
    else:
        headers = scope.get("headers")
    if not headers:
        headers = ()
    cdef dict data = {}
    cdef tuple pair
    cdef PyObject* kept[KEPT_READERS]
    cdef Py_ssize_t index
    memset(kept, 0, sizeof(kept))
    try:
        try:
            index = 0
            for pair in self.readers:
                reader = pair[1]
                if type(reader) is UUIDHeaderReader:
                    value = (<UUIDHeaderReader>reader)._read_keeping(
                        headers, &kept[index] if index < KEPT_READERS else NULL
                    )
                elif type(reader) is HeaderReader:
                    value = (<HeaderReader>reader)._read(headers)
                else:
                    value = reader(headers)
                PyDict_SetItem(data, pair[0], value)
                index += 1
        except MiddleWareValidationError as exc:
            if self.refuse is None:
                raise
            waiter._target = _await_target(self.refuse(scope, receive, send, exc))
            return 0
        if self.echo:
            send = _echo_send(self, data, kept, send)
    finally:
        for index in range(KEPT_READERS):
            Py_XDECREF(kept[index])
    waiter._token = PyContextVar_Set(_context_var, data)
    waiter._target = _await_target(self.app(scope, receive, send))
    return 0


async def _solo_call_signature(self, scope, receive, send):
    # Never called: its code object gives solo_call the signature and the coroutine
    # flag that inspect.iscoroutinefunction and asyncio.iscoroutinefunction look for.
    pass


@cython.final
cdef class _AsyncMethod:
    """An ASGI ``__call__`` for a middleware that may run as one core runner.

    ``solo_call(self, scope, receive, send)`` awaits ``self._solo(scope, receive,
    send)`` when ``self._solo`` is set (a ``ContextRunner``), ``self._layer(scope,
    receive, send)`` otherwise. Compiled, it is a method implemented in C that returns
    a coroutine-like awaitable (an ``asyncio`` coroutine that runs nothing until its
    first step), so a request costs no coroutine frame; it looks like an ``async def``
    to ``inspect`` and ``asyncio``.
    """

    cdef void* _vectorcall

    def __call__(self, middleware, scope, receive, send):
        return _solo_call(self, middleware, scope, receive, send)

    def __get__(self, instance, owner):
        return self if instance is None else _method_new(self, instance)

    @property
    def __code__(self):
        return _solo_call_signature.__code__

    @property
    def __name__(self):
        return "solo_call"

    @property
    def __qualname__(self):
        return "solo_call"

    @property
    def __module__(self):
        return "fastmw._core"

    @property
    def __defaults__(self):
        return None

    @property
    def __kwdefaults__(self):
        return None

    @property
    def __annotations__(self):
        return {}

    def __repr__(self):
        return "<fastmw._core.solo_call>"


cdef object _solo_call(object method, middleware, scope, receive, send):
    runner = middleware._solo
    if runner is None:
        return middleware._layer(scope, receive, send)
    cdef _ContextAwait waiter
    if type(runner) is ContextRunner:
        waiter = _pending(runner, scope, receive, send)
        waiter._from_solo = True
        return waiter
    return _await_solo(runner, scope, receive, send)


async def _await_solo(runner, scope, receive, send):
    await runner(scope, receive, send)


cdef _AsyncMethod _new_solo_call():
    cdef _AsyncMethod method = _AsyncMethod.__new__(_AsyncMethod)
    cdef Py_ssize_t offset = <char*>&method._vectorcall - <char*><PyObject*>method
    fastmw_enable_method(_AsyncMethod, offset, <void*>_solo_call)
    method._vectorcall = FASTMW_VECTORCALL4
    return method


@cython.final
@cython.freelist(16)
cdef class HeaderSend:
    """Wraps an ASGI ``send``: puts ``headers`` on the response start, passes the rest on.

    On the first ``http.response.start``, ``websocket.accept`` or
    ``websocket.http.response.start`` the message gets a copy of its header list
    (the app's may be shared) with each ``(name, value)`` of ``headers``
    appended or, with ``replace``, set (Starlette's ``MutableHeaders`` semantics).
    A second response start raises ``RuntimeError``; nothing is buffered.
    """

    cdef void* _vectorcall
    cdef readonly object send
    cdef readonly tuple headers
    cdef readonly bint replace, started

    def __init__(self, send, headers, *, replace=False):
        self._vectorcall = FASTMW_VECTORCALL1
        self.send = send
        pairs = [_pair(item, "a header") for item in headers]
        self.headers = tuple([(encode_header_name(name), encode_header_value(value)) for name, value in pairs])
        self.replace = bool(replace)
        self.started = False

    def __call__(self, message):
        return _header_send_call(self, message)

    cdef int _apply(self, dict message) except -1:
        cdef list headers
        cdef PyObject* name
        cdef PyObject* value
        cdef Py_ssize_t i
        cdef tuple pair
        if self.replace:
            headers = _owned_headers(message)
        else:
            headers = message_headers(message)
        # A malformed entry is refused here, before anything is sent.
        for i in range(PyList_GET_SIZE(headers)):
            _entry(<object>PyList_GET_ITEM(headers, i), &name, &value)
        if self.replace:
            for pair in self.headers:
                _set(headers, <bytes>pair[0], <bytes>pair[1])
        else:
            # The copy and the appended entries in one allocation.
            PyDict_SetItem(message, "headers", fastmw_list_plus_tuple(headers, self.headers))
        return 0


cdef object _header_send_call(HeaderSend self, message):
    if type(message) is not dict and not isinstance(message, dict):
        raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
    cdef PyObject* kind = PyDict_GetItemWithError(message, "type")
    if kind != NULL and _opens_response(<object>kind):
        if self.started:
            raise RuntimeError(f"{<object>kind} was already sent for this request")
        self._apply(<dict>message)
        self.started = True
    return self.send(message)


cdef inline bint _opens_response(kind):
    """Whether a message type is http.response.start, websocket.accept or websocket.http.response.start."""
    if not PyUnicode_CheckExact(kind):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(kind)
    # Lengths first: body messages (the common case) never reach a comparison.
    if n == 19:
        return kind == "http.response.start"
    if n == 16:
        return kind == "websocket.accept"
    if n == 29:
        return kind == "websocket.http.response.start"
    return False


cdef int _echo_reader(tuple readers, key) except -2:
    cdef Py_ssize_t index
    for index in range(len(readers) - 1, -1, -1):
        if readers[index][0] == key:
            if index < KEPT_READERS and type(readers[index][1]) is UUIDHeaderReader:
                return index
            return -1
    return -1


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


cdef object _await_target(value):
    """The iterator ``await value`` drives; the same TypeError in both twins otherwise."""
    if PyCoro_CheckExact(value):
        return value
    method = getattr(type(value), "__await__", None)
    if method is not None:
        # What the await expression itself checks.
        target = method(value)
        if PyCoro_CheckExact(target):
            raise TypeError("__await__() returned a coroutine")
        if not PyIter_Check(target):
            raise TypeError(f"__await__() returned non-iterator of type '{_type_name(target)}'")
        return target
    if PyGen_CheckExact(value) and value.gi_code.co_flags & CO_ITERABLE_COROUTINE:
        return value
    raise TypeError(f"the app returned {_type_name(value)}, which cannot be awaited")


@cython.final
@cython.freelist(16)
cdef class _ContextAwait:
    """Awaits the app for ``ContextRunner``; resets the request context when it returns.

    ``await`` drives it through the C slots installed below (no Python frame, no
    StopIteration object for the usual ``None`` result); ``send``/``throw``/``close``
    serve callers that drive it by hand.
    """

    cdef object _target
    cdef object _token
    # Until the first step: what to enter (a ContextRunner) and the request.
    cdef object _runner, _scope, _receive, _send
    # Made by solo_call (else by ContextRunner.__call__): the name in the warning below.
    cdef bint _from_solo

    def __dealloc__(self):
        # As CPython warns for a coroutine that was never awaited. (In __dealloc__, not
        # __del__: a finalizer runs once per memory block, and the freelist reuses blocks.)
        if self._runner is not None:
            name = "solo_call" if self._from_solo else "ContextRunner._run"
            warnings.warn(f"coroutine '{name}' was never awaited", RuntimeWarning, stacklevel=1)

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self._resume(None)

    def send(self, value):
        return self._resume(value)

    def throw(self, typ, val=None, tb=None):
        if self._target is None:
            # Not started: like a coroutine, the exception is raised at its start.
            self._drop_pending()
            if val is None and tb is None:
                raise typ
            if val is None:
                val = typ()
            raise val.with_traceback(tb) if tb is not None else val
        try:
            if val is None and tb is None:
                return self._target.throw(typ)
            return self._target.throw(typ, val, tb)
        except StopIteration:
            self._finish()
            raise

    def close(self):
        self._drop_pending()
        close = getattr(self._target, "close", None)
        if close is not None:
            close()

    cdef void _drop_pending(self) noexcept:
        self._runner = self._scope = self._receive = self._send = None

    cdef int _start(self) except -1:
        runner = self._runner
        scope, receive, send = self._scope, self._receive, self._send
        self._drop_pending()
        _runner_enter(<ContextRunner>runner, self, scope, receive, send)
        return 0

    cdef object _resume(self, value):
        cdef PyObject* result = NULL
        status = _await_step(<PyObject*>self, <PyObject*>value, &result)
        returned = <object>result
        Py_XDECREF(result)
        if status == 1:
            return returned
        if returned is None:
            raise StopIteration
        raise StopIteration(returned)

    cdef int _finish(self) except -1:
        token = self._token
        self._target = None
        if token is not None:
            self._token = None
            PyContextVar_Reset(_context_var, token)
        return 0


cdef int _await_step(PyObject* waiter, PyObject* value, PyObject** result) except -1:
    """One step of the app: 1 with the yielded value, 0 with the returned one (context reset)."""
    cdef _ContextAwait self = <_ContextAwait>waiter
    if self._runner is not None:
        if <object>value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self._start()
    elif self._target is None:
        raise RuntimeError("cannot reuse already awaited coroutine")
    if PyIter_Send(self._target, <object>value, result) != PYGEN_RETURN:
        return 1
    try:
        self._finish()
    except BaseException:
        Py_XDECREF(result[0])
        result[0] = NULL
        raise
    return 0


cdef extern from *:
    """
    typedef int (*fastmw_step_fn)(PyObject*, PyObject*, PyObject**);
    static fastmw_step_fn fastmw_await_step = NULL;

    /* tp_iternext: a None result ends the iteration with no exception set, which
       every caller (SEND, PyIter_Send, next()) reads as StopIteration(None). */
    static PyObject* fastmw_await_iternext(PyObject* self) {
        PyObject* result = NULL;
        PyObject* stop;
        int status = fastmw_await_step(self, Py_None, &result);
        if (status == 1) return result;
        if (status < 0) return NULL;
        if (result != Py_None) {
            stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(result);
        return NULL;
    }

    /* am_send (CPython 3.10+): PyIter_Send's fast path, any sent value, no exceptions. */
    static PySendResult fastmw_await_am_send(PyObject* self, PyObject* arg, PyObject** presult) {
        int status = fastmw_await_step(self, arg, presult);
        if (status < 0) {
            *presult = NULL;
            return PYGEN_ERROR;
        }
        return status == 1 ? PYGEN_NEXT : PYGEN_RETURN;
    }

    static int fastmw_install_await_slots(PyObject* type, fastmw_step_fn step) {
        PyTypeObject* t = (PyTypeObject*)type;
        if (t->tp_as_async == NULL || t->tp_as_async->am_await == NULL) {
            PyErr_SetString(PyExc_SystemError, "fastmw: awaitable type has no tp_as_async");
            return -1;
        }
        fastmw_await_step = step;
        t->tp_iternext = fastmw_await_iternext;
        t->tp_as_async->am_send = fastmw_await_am_send;
        PyType_Modified(t);
        return 0;
    }
    """
    int fastmw_install_await_slots(object type, int (*step)(PyObject*, PyObject*, PyObject**) except -1) except -1


fastmw_install_await_slots(_ContextAwait, _await_step)


cdef int _enable_vectorcalls() except -1:
    # The offset of each type's per-instance vectorcall pointer, read off a probe instance.
    cdef HeaderSend send_probe = HeaderSend.__new__(HeaderSend)
    cdef ContextRunner runner_probe = ContextRunner.__new__(ContextRunner)
    cdef Py_ssize_t send_offset = <char*>&send_probe._vectorcall - <char*><PyObject*>send_probe
    cdef Py_ssize_t runner_offset = <char*>&runner_probe._vectorcall - <char*><PyObject*>runner_probe
    fastmw_enable_vectorcall(HeaderSend, send_offset, <void*>_header_send_call, NULL)
    fastmw_enable_vectorcall(ContextRunner, runner_offset, NULL, <void*>_runner_call)
    return 0


_enable_vectorcalls()
solo_call = _new_solo_call()
# asyncio (create_task, iscoroutine) takes the runner's awaitable as a coroutine, as it
# does Cython's own coroutines.
Coroutine.register(_ContextAwait)


cdef class _Context:
    """A dict-like view of the current request's context (starlette-context's ``context``)."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise ConfigurationError("Can't instantiate with attributes")

    @property
    def data(self):
        """The context dict itself, for dumping (e.g. to JSON)."""
        return context_get()

    def exists(self):
        """Whether a request context is active."""
        return _current_or_none() is not None

    def copy(self):
        """A shallow copy of the context dict."""
        return context_get().copy()

    def __getitem__(self, key):
        return context_get()[key]

    def __setitem__(self, key, value):
        context_get()[key] = value

    def __delitem__(self, key):
        del context_get()[key]

    def __contains__(self, key):
        return key in context_get()

    def __len__(self):
        return len(context_get())

    def __iter__(self):
        return iter(context_get())

    def __eq__(self, other):
        data = context_get()
        if isinstance(other, _Context):
            return data == other.data
        return data == other

    def get(self, key, default=None):
        return context_get().get(key, default)

    def keys(self):
        return context_get().keys()

    def values(self):
        return context_get().values()

    def items(self):
        return context_get().items()

    def pop(self, key, *default):
        return context_get().pop(key, *default)

    def popitem(self):
        return context_get().popitem()

    def setdefault(self, key, default=None):
        return context_get().setdefault(key, default)

    def update(self, other=(), /, **kwargs):
        context_get().update(other, **kwargs)

    def clear(self):
        context_get().clear()

    def __ior__(self, other):
        context_get().update(other)
        return self

    def __repr__(self):
        data = _current_or_none()
        return f"<fastmw.ctx._Context {data if data is not None else {}}>"

    def __str__(self):
        data = _current_or_none()
        return str(data if data is not None else {})


MutableMapping.register(_Context)


# --------------------------------------------------------------------------- JSON-lines access records
# Used by the access log's fast sink: one flat JSON object per line, ASCII only
# (json.dumps' ensure_ascii escaping), so any header bytes give a valid line.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.math cimport isfinite


# The letter after the backslash for \b \t \n \f \r (indexes 8, 9, 10, 12, 13).
cdef const char* ESCAPE_LETTER = b"........btn.fr"


cdef struct _JsonBuf:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _jb_reserve(_JsonBuf* buf, Py_ssize_t extra) except -1:
    cdef Py_ssize_t wanted = buf.size + extra, capacity = buf.capacity
    cdef char* grown
    if wanted <= capacity:
        return 0
    while capacity < wanted:
        capacity = capacity * 2 if capacity else 256
    grown = <char*>PyMem_Realloc(buf.data, capacity)
    if grown == NULL:
        raise MemoryError()
    buf.data = grown
    buf.capacity = capacity
    return 0


cdef int _jb_put(_JsonBuf* buf, const char* text, Py_ssize_t n) except -1:
    _jb_reserve(buf, n)
    memcpy(buf.data + buf.size, text, n)
    buf.size += n
    return 0


cdef inline void _jb_unit(char* out, unsigned int unit) noexcept:
    # "\\uXXXX" with lower-case hex, like json.dumps.
    out[0] = 92
    out[1] = 117
    out[2] = HEX_CHARS[(unit >> 12) & 0xF]
    out[3] = HEX_CHARS[(unit >> 8) & 0xF]
    out[4] = HEX_CHARS[(unit >> 4) & 0xF]
    out[5] = HEX_CHARS[unit & 0xF]


cdef int _jb_char(_JsonBuf* buf, unsigned int c) except -1:
    cdef char* out
    cdef unsigned int n
    if 0x20 <= c <= 0x7E and c != 34 and c != 92:
        _jb_reserve(buf, 1)
        buf.data[buf.size] = <char>c
        buf.size += 1
        return 0
    _jb_reserve(buf, 12)
    out = buf.data + buf.size
    if c == 34 or c == 92:
        out[0] = 92
        out[1] = <char>c
        buf.size += 2
    elif c == 10 or c == 13 or c == 9 or c == 8 or c == 12:
        out[0] = 92
        out[1] = ESCAPE_LETTER[c]
        buf.size += 2
    elif c > 0xFFFF:
        n = c - 0x10000
        _jb_unit(out, 0xD800 | ((n >> 10) & 0x3FF))
        _jb_unit(out + 6, 0xDC00 | (n & 0x3FF))
        buf.size += 12
    else:
        _jb_unit(out, c)
        buf.size += 6
    return 0


cdef int _jb_str(_JsonBuf* buf, str text) except -1:
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    _jb_reserve(buf, n + 2)
    buf.data[buf.size] = 34
    buf.size += 1
    for i in range(n):
        _jb_char(buf, <unsigned int>PyUnicode_READ(kind, data, i))
    _jb_put(buf, b'"', 1)
    return 0


cdef int _jb_bytes(_JsonBuf* buf, const unsigned char* raw, Py_ssize_t n) except -1:
    # latin-1: every byte is the code point of the same value.
    cdef Py_ssize_t i
    _jb_put(buf, b'"', 1)
    for i in range(n):
        _jb_char(buf, raw[i])
    _jb_put(buf, b'"', 1)
    return 0


cdef int _jb_ascii(_JsonBuf* buf, str text) except -1:
    cdef bytes raw = text.encode("ascii")
    _jb_put(buf, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    return 0


cdef int _jb_value(_JsonBuf* buf, key, value) except -1:
    if value is None:
        _jb_put(buf, b"null", 4)
    elif value is True:
        _jb_put(buf, b"true", 4)
    elif value is False:
        _jb_put(buf, b"false", 5)
    elif isinstance(value, int):
        _jb_ascii(buf, int.__repr__(value))
    elif isinstance(value, float):
        if isfinite(<double>value):
            _jb_ascii(buf, float.__repr__(value))
        else:
            _jb_put(buf, b"null", 4)
    elif isinstance(value, str):
        _jb_str(buf, <str>value)
    elif PyBytes_Check(value):
        _jb_bytes(buf, <const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    elif isinstance(value, bytearray):
        _jb_bytes(buf, <const unsigned char*>PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value))
    else:
        raise TypeError(
            f"access record value for {key!r} must be None, bool, int, float, str or bytes, not {_type_name(value)}"
        )
    return 0


cpdef bytes encode_access_record(keys, values):
    """One JSON object (ASCII bytes ending in a newline) pairing ``keys`` with ``values``."""
    if not isinstance(keys, (tuple, list)):
        raise TypeError(f"keys must be a tuple or list, not {_type_name(keys)}")
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"values must be a tuple or list, not {_type_name(values)}")
    cdef Py_ssize_t i, n = len(keys)
    if n != len(values):
        raise ValueError(f"{len(values)} values for {n} keys")
    cdef _JsonBuf buf
    buf.data = NULL
    buf.size = 0
    buf.capacity = 0
    try:
        _jb_put(&buf, b"{", 1)
        for i in range(n):
            key = keys[i]
            if not isinstance(key, str):
                raise TypeError(f"access record key must be str, not {_type_name(key)}")
            if i:
                _jb_put(&buf, b",", 1)
            _jb_str(&buf, <str>key)
            _jb_put(&buf, b":", 1)
            _jb_value(&buf, key, values[i])
        _jb_put(&buf, b"}\n", 2)
        return PyBytes_FromStringAndSize(buf.data, buf.size)
    finally:
        PyMem_Free(buf.data)


cdef class JsonLinesWriter:
    """Buffers JSON lines and writes them to a binary stream ``batch_lines`` at a time.

    Write errors propagate to the caller; the failed batch is dropped, not retried.
    """

    cdef readonly object stream
    cdef readonly Py_ssize_t batch_lines
    cdef bytearray _buffer
    cdef Py_ssize_t _lines

    def __init__(self, stream, batch_lines=64):
        if type(batch_lines) is not int or batch_lines < 1:
            raise ValueError("batch_lines must be a positive int")
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {_type_name(stream)}")
        self.stream = stream
        self.batch_lines = batch_lines
        self._buffer = bytearray()
        self._lines = 0

    @property
    def pending(self):
        """How many lines wait in the buffer."""
        return self._lines

    def write(self, line):
        """Buffer one encoded line; write the batch out once it is full."""
        if not PyBytes_Check(line):
            raise TypeError(f"line must be bytes, not {_type_name(line)}")
        self._buffer += <bytes>line
        self._lines += 1
        if self._lines >= self.batch_lines:
            self.flush()

    def write_record(self, keys, values):
        """``write(encode_access_record(keys, values))``."""
        self.write(encode_access_record(keys, values))

    def flush(self):
        """Write out the buffered lines and flush the stream."""
        if not self._lines:
            return
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._lines = 0
        self.stream.write(data)
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()
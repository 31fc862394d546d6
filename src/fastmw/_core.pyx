# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True
"""Compiled core of fastmw. ``fastmw._core_py`` is its specification: same names,
signatures, results, exceptions and messages. Change both in one commit."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
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
from libc.string cimport memcmp, memcpy, memset
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.math cimport isfinite

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

cdef extern from "fastmw.h":
    bint fastmw_ascii_printable(const char* data, Py_ssize_t n)
    PyObject* fastmw_find_header(object headers, const char* key, Py_ssize_t size, int* irregular)
    list fastmw_list_plus_tuple(list headers, tuple extra)


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
    "TraceContext",
    "UUIDHeaderReader",
    "_Context",
    "add_vary_header",
    "context_get",
    "context_reset",
    "context_set",
    "encode_access_record",
    "encode_header_name",
    "encode_header_value",
    "format_traceparent",
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
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "parse_tracestate",
    "replace_trace_headers",
    "solo_call",
    "trace_from_headers",
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


include "_cy/headers.pxi"
include "_cy/ids.pxi"
include "_cy/recorders.pxi"
include "_cy/context.pxi"
include "_cy/readers.pxi"
include "_cy/context_runner.pxi"
include "_cy/json_lines.pxi"
include "_cy/tracestate.pxi"
include "_cy/trace.pxi"
include "_cy/trace_context.pxi"

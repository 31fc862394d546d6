# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False, cdivision=True, auto_pickle=False
"""Compiled core of fastmw. ``fastmw._core_py`` is its specification: same names,
signatures, results, exceptions and messages. Change both in one commit.

One ``_cy/*.pxi`` per concept, included below; C helpers in ``_cy/fastmw.h``."""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.contextvars cimport PyContextVar_Get, PyContextVar_Reset, PyContextVar_Set
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_GetSlice
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsLatin1String
from libc.math cimport fabs, floor, isfinite, llround, rint, signbit
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy, memset, strlen

import inspect as _inspect
import json as _json
import logging
import os
import sys as _sys
import uuid
from asyncio import CancelledError as _CancelledError
from collections.abc import Iterable, Mapping, MutableMapping
from urllib.parse import quote as _quote

from starlette.datastructures import MutableHeaders as _StarletteMutableHeaders

from fastmw._await import interpreter_await as _interpreter_await
from fastmw._route import overridden as _overridden
from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT, REQUEST_STATE
from fastmw.errors import ConfigurationError, ContextDoesNotExistError, MiddleWareValidationError

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    int PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    object PyUnicode_New(Py_ssize_t size, unsigned int maxchar)
    bint PyUnicode_CheckExact(object)
    bint PyCoro_CheckExact(object)
    Py_ssize_t PySequence_Fast_GET_SIZE(object)

cdef extern from "fastmw.h":
    bint fastmw_ascii_printable(const char* data, Py_ssize_t n)
    bint fastmw_regular_entry(object entry)
    PyObject* fastmw_find_header(object headers, const char* key, Py_ssize_t size, int* irregular)
    Py_ssize_t fastmw_header_index(object headers, const char* key, Py_ssize_t size, Py_ssize_t start,
                                   int* irregular)
    int fastmw_two_headers(object headers, const char* a, Py_ssize_t size_a, const char* b, Py_ssize_t size_b,
                           Py_ssize_t* at_a, Py_ssize_t* at_b)
    int fastmw_monotonic_ns(int64_t* out) except -1
    int fastmw_wall_ns(int64_t* out) except -1
    void fastmw_pool_lock() noexcept nogil
    void fastmw_pool_unlock() noexcept nogil
    void fastmw_pool_lock_reset() noexcept nogil

# The same list, in the same order, as the pure twin's and the stub's (tests/test_impl.py checks).
__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_JSON_FIELDS",
    "ACCESS_JSON_TRACE_FIELDS",
    "ACCESS_TRACE_FIELDS",
    "CHUNK_SIZE",
    "COUNTERS_HEADER",
    "COUNTER_WORDS",
    "DEFAULT_MAX_ROUTES",
    "DURATION_BUCKETS",
    "ENTRY_PAD",
    "ENTRY_ROUTE",
    "ENTRY_SERIES",
    "EXEMPLAR_MODES",
    "EXEMPLAR_WORDS",
    "METRIC_METHODS",
    "OVERFLOW_ROUTE",
    "ROUTE_CACHE_LIMIT",
    "SERIES_HEAD",
    "SIZE_BUCKETS",
    "UNMATCHED_ROUTE",
    "W_USED",
    "AccessLogStage",
    "BodyCacheStage",
    "ContextStage",
    "ErrorStage",
    "HeaderReader",
    "HistogramChunks",
    "JsonLinesWriter",
    "MetricsStage",
    "MetricsTable",
    "MutableHeaders",
    "Pipeline",
    "Published",
    "ReceiveRecorder",
    "RequestIdStage",
    "SendRecorder",
    "Stage",
    "TimingStage",
    "TraceContext",
    "TraceStage",
    "UUIDHeaderReader",
    "_Context",
    "access_status",
    "access_values",
    "add_vary_header",
    "context_get",
    "context_reset",
    "context_set",
    "current_body",
    "current_timing",
    "current_trace",
    "encode_access_record",
    "encode_header_name",
    "encode_header_value",
    "error_body",
    "format_fixed",
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
    "is_header_value",
    "is_safe_id",
    "is_uuid",
    "is_uuid4",
    "is_visible_ascii",
    "message_headers",
    "method_index",
    "monotonic",
    "new_request_id",
    "new_span_id",
    "new_trace_id",
    "note_request_id",
    "parse_traceparent",
    "parse_tracestate",
    "replace_trace_headers",
    "round_decimals",
    "run_pipeline",
    "series_words",
    "trace_from_headers",
]

cdef enum:
    SHOWN_CHARS = 64
    RANDOM_POOL = 4096
    # A UUID header longer than this is refused before it is parsed (8 KiB).
    MAX_UUID_HEADER = 8 * 1024
    # The most stages one pipeline runs (path filters pick them with a 64-bit mask).
    MAX_STAGES = 64
    # The longest request id kept by default.
    DEFAULT_ID_LENGTH = 128
    # Readers whose header bytes the context stage keeps for the echo; echo entries at most.
    KEPT_READERS = 8
    MAX_ECHO = 64
    # Where a context stage's request state holds its echo entries.
    STATE_ECHO = 4
    # _only_header's answer for a name that is there more than once.
    HEADER_REPEATED = -2
    ERROR_STATUS = 500
    WEBSOCKET_INTERNAL_ERROR = 1011
    STATUS_APP_ERROR = 500
    STATUS_CLIENT_GONE = 499
    STATUS_WEBSOCKET_ACCEPTED = 101
    STATUS_WEBSOCKET_DENIED = 403

ECHO_MODES = ("set", "append", None)
# The resolved request id, kept in the scope so every component of the request reuses it.
cdef str ID_SCOPE_KEY = "fastmw.request_id"
# The body cache's recorder is also put in scope["state"] under this key.
cdef str BODY_STATE_KEY = "fastmw.body_cache"
cdef str SCOPE_HTTP = "http"
cdef str SCOPE_WEBSOCKET = "websocket"
cdef bytes SERVER_TIMING = b"server-timing"
cdef bytes TRACERESPONSE = b"traceresponse"
cdef bytes SERVER_TIMING_PREFIX = b"app;dur="
cdef str ERROR_CODE = "internal_error"
# What a request's recorders raise when called after its pipeline finished.
cdef str SEND_AFTER_END = (
    "ASGI send called after the request finished: the app, or a task it started, kept send past its end"
)
cdef str RECEIVE_AFTER_END = (
    "ASGI receive called after the request finished: the app, or a task it started, kept receive past its end"
)
# How many lines a JsonLinesWriter holds by default before it drops (about 16 MiB of records).
cdef Py_ssize_t DEFAULT_MAX_PENDING = 65536
cdef str REQUEST_ID_ATTRIBUTE = "fastmw_request_id"
cdef str REQUEST_ID_NOTE = "request id: "
cdef tuple CLOSE_HEADER = (b"connection", b"close")
# The end of an unhandled exception's line when it is re-raised (logged without its traceback).
cdef str _RERAISED = "; re-raised (the server logs the traceback)"
ACCESS_FIELDS = (
    "method", "path", "query", "http_version", "status", "duration_ms", "ttfb_ms",
    "response_bytes", "request_bytes", "client_addr", "user_agent", "request_id",
)
ACCESS_JSON_FIELDS = ("time", *ACCESS_FIELDS)
# With a current trace the record also carries its ids.
ACCESS_TRACE_FIELDS = (*ACCESS_FIELDS, "trace_id", "span_id")
ACCESS_JSON_TRACE_FIELDS = ("time", *ACCESS_TRACE_FIELDS)
# uvicorn's access line ('%s - "%s %s HTTP/%s" %d') plus the duration.
cdef str ACCESS_TEXT_FORMAT = '%s - "%s %s HTTP/%s" %d %.2fms'
# What a stdlib record says of its caller when there is none to look up (as with
# ``logging._srcfile = None``): an access record is made after the response, by the stage.
cdef str NO_CALLER_FILE = "(unknown file)"
cdef str NO_CALLER_FUNCTION = "(unknown function)"
# A Logger subclass overriding one of these gets logger.log() calls, not records made by the stage.
cdef tuple RECORD_MAKING_METHODS = ("log", "_log", "findCaller", "makeRecord")

cdef object _MISSING = object()
cdef object _context_var = REQUEST_CONTEXT
# The request id's and the stages' variables as C globals too: a module-dict lookup per use
# is a measurable share of a request's instructions.
cdef object _id_var = CORRELATION_ID
cdef object _state_var = REQUEST_STATE
cdef object _internal_logger = logging.getLogger("fastmw")
cdef object _timing_logger = logging.getLogger("fastmw.timing")
cdef object _error_logger = logging.getLogger("fastmw.error")


include "_cy/headers.pxi"
include "_cy/ids.pxi"
include "_cy/recorders.pxi"
include "_cy/context.pxi"
include "_cy/readers.pxi"
include "_cy/engine.pxi"
include "_cy/stages.pxi"
include "_cy/error_stage.pxi"
include "_cy/context_stage.pxi"
include "_cy/access.pxi"
include "_cy/json_lines.pxi"
include "_cy/tracestate.pxi"
include "_cy/trace.pxi"
include "_cy/trace_context.pxi"
include "_cy/trace_stage.pxi"
include "_cy/metrics.pxi"
include "_cy/metrics_render.pxi"

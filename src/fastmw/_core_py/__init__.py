"""Pure-Python twin of ``fastmw._core``: the specification of the core.

One module per ``_cy/*.pxi`` of the compiled core, same names. Every public name
exists in the compiled module with the same signature, defaults, results,
exception types and messages. Change both in one commit.
"""

from fastmw._core_py.context import _Context, context_get, context_reset, context_set
from fastmw._core_py.context_runner import ContextRunner, HeaderSend, solo_call
from fastmw._core_py.headers import (
    MutableHeaders,
    add_vary_header,
    encode_header_name,
    encode_header_value,
    header_append,
    header_contains,
    header_delete,
    header_get,
    header_getlist,
    header_items,
    header_keys,
    header_set,
    header_setdefault,
    header_update,
    header_values,
    message_headers,
)
from fastmw._core_py.ids import is_uuid, is_uuid4, is_visible_ascii, monotonic, new_request_id
from fastmw._core_py.json_lines import JsonLinesWriter, encode_access_record
from fastmw._core_py.readers import HeaderReader, UUIDHeaderReader
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._core_py.trace import format_traceparent, new_span_id, new_trace_id, parse_traceparent
from fastmw._core_py.trace_context import TraceContext, replace_trace_headers, trace_from_headers
from fastmw._core_py.tracestate import parse_tracestate

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

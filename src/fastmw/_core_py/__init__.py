"""Pure-Python twin of ``fastmw._core``: the specification of the core.

One module per ``_cy/*.pxi`` of the compiled core, same names. Every public name
exists in the compiled module with the same signature, defaults, results,
exception types and messages. Change both in one commit.
"""

from fastmw._core_py.access import (
    ACCESS_FIELDS,
    ACCESS_JSON_FIELDS,
    ACCESS_JSON_TRACE_FIELDS,
    ACCESS_TRACE_FIELDS,
    AccessLogStage,
    access_status,
    access_values,
    round_decimals,
)
from fastmw._core_py.context import _Context, context_get, context_reset, context_set
from fastmw._core_py.context_stage import ContextStage
from fastmw._core_py.engine import Pipeline, Published, Stage, current_body, current_timing, current_trace, run_pipeline
from fastmw._core_py.error_stage import ErrorStage, error_body
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
    is_header_value,
    message_headers,
)
from fastmw._core_py.ids import is_uuid, is_uuid4, is_visible_ascii, monotonic, new_request_id
from fastmw._core_py.json_lines import JsonLinesWriter, encode_access_record
from fastmw._core_py.readers import HeaderReader, UUIDHeaderReader
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._core_py.stages import BodyCacheStage, RequestIdStage, TimingStage, format_fixed, is_safe_id
from fastmw._core_py.trace import format_traceparent, new_span_id, new_trace_id, parse_traceparent
from fastmw._core_py.trace_context import TraceContext, replace_trace_headers, trace_from_headers
from fastmw._core_py.trace_stage import TraceStage
from fastmw._core_py.tracestate import parse_tracestate

__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_JSON_FIELDS",
    "ACCESS_JSON_TRACE_FIELDS",
    "ACCESS_TRACE_FIELDS",
    "AccessLogStage",
    "BodyCacheStage",
    "ContextStage",
    "ErrorStage",
    "HeaderReader",
    "JsonLinesWriter",
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
    "monotonic",
    "new_request_id",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "parse_tracestate",
    "replace_trace_headers",
    "round_decimals",
    "run_pipeline",
    "trace_from_headers",
]

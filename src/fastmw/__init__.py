"""fastmw: Cython-accelerated ASGI middleware for Starlette, FastAPI and any ASGI app."""

from fastmw import plugins, trace
from fastmw._impl import COMPILED
from fastmw._storage import CORRELATION_ID as correlation_id

# starlette-context's private name for the context variable: real user plugins read it.
from fastmw._storage import REQUEST_CONTEXT as _request_scope_context_storage  # noqa: F401
from fastmw.ctx import context, request_cycle_context
from fastmw.logging import CorrelationIdFilter
from fastmw.middleware import (
    AccessLogMiddleware,
    BodyCacheMiddleware,
    ContextMiddleware,
    CorrelationIdMiddleware,
    ErrorMiddleware,
    RawContextMiddleware,
    RequestIdMiddleware,
    TimingMiddleware,
    TraceContextMiddleware,
)
from fastmw.middleware._json_sink import JsonLinesSink
from fastmw.stack import stack

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "AccessLogMiddleware",
    "BodyCacheMiddleware",
    "ContextMiddleware",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "ErrorMiddleware",
    "JsonLinesSink",
    "RawContextMiddleware",
    "RequestIdMiddleware",
    "TimingMiddleware",
    "TraceContextMiddleware",
    "__version__",
    "context",
    "correlation_id",
    "plugins",
    "request_cycle_context",
    "stack",
    "trace",
]

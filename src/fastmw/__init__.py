"""fastmw: Cython-accelerated ASGI middleware for Starlette, FastAPI and any ASGI app."""

from fastmw import plugins, trace
from fastmw._impl import COMPILED, core
from fastmw._storage import CELERY_CURRENT_ID as celery_current_id
from fastmw._storage import CELERY_PARENT_ID as celery_parent_id
from fastmw._storage import CORRELATION_ID as correlation_id

# starlette-context's private name for the context variable: real user plugins read it.
from fastmw._storage import REQUEST_CONTEXT as _request_scope_context_storage  # noqa: F401
from fastmw.ctx import context, request_cycle_context
from fastmw.logging import CeleryTracingIdsFilter, CorrelationIdFilter
from fastmw.middleware import (
    AccessLogMiddleware,
    BodyCacheMiddleware,
    ContextMiddleware,
    CorrelationIdMiddleware,
    ErrorMiddleware,
    MetricsMiddleware,
    RawContextMiddleware,
    RequestIdMiddleware,
    TimingMiddleware,
    TraceContextMiddleware,
)
from fastmw.sink import JsonLinesSink
from fastmw.stack import stack

# Request-id validators: the default (ids proxies send) and the opt-in UUID checks.
is_safe_id = core.is_safe_id
is_uuid = core.is_uuid
is_uuid4 = core.is_uuid4

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "AccessLogMiddleware",
    "BodyCacheMiddleware",
    "CeleryTracingIdsFilter",
    "ContextMiddleware",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "ErrorMiddleware",
    "JsonLinesSink",
    "MetricsMiddleware",
    "RawContextMiddleware",
    "RequestIdMiddleware",
    "TimingMiddleware",
    "TraceContextMiddleware",
    "__version__",
    "celery_current_id",
    "celery_parent_id",
    "context",
    "correlation_id",
    "is_safe_id",
    "is_uuid",
    "is_uuid4",
    "plugins",
    "request_cycle_context",
    "stack",
    "trace",
]

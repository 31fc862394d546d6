"""fastmw middleware, one per module (starlette-context's ``starlette_context.middleware`` names included)."""

from fastmw.middleware.access_log import AccessLogMiddleware
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.middleware.context_middleware import ContextMiddleware
from fastmw.middleware.error_handler import ErrorMiddleware
from fastmw.middleware.metrics import MetricsMiddleware
from fastmw.middleware.raw_middleware import RawContextMiddleware
from fastmw.middleware.request_id import CorrelationIdMiddleware, RequestIdMiddleware
from fastmw.middleware.timing import TimingMiddleware
from fastmw.middleware.trace_context import TraceContextMiddleware

__all__ = [
    "AccessLogMiddleware",
    "BodyCacheMiddleware",
    "ContextMiddleware",
    "CorrelationIdMiddleware",
    "ErrorMiddleware",
    "MetricsMiddleware",
    "RawContextMiddleware",
    "RequestIdMiddleware",
    "TimingMiddleware",
    "TraceContextMiddleware",
]

"""fastmw middleware, one per module."""

from fastmw.middleware.access_log import AccessLogMiddleware
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.middleware.error_handler import ErrorMiddleware
from fastmw.middleware.request_id import CorrelationIdMiddleware, RequestIdMiddleware
from fastmw.middleware.timing import TimingMiddleware

__all__ = [
    "AccessLogMiddleware",
    "BodyCacheMiddleware",
    "CorrelationIdMiddleware",
    "ErrorMiddleware",
    "RequestIdMiddleware",
    "TimingMiddleware",
]

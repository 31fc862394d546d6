"""fastmw: Cython-accelerated ASGI middleware for Starlette, FastAPI and any ASGI app."""

from fastmw._impl import COMPILED
from fastmw._storage import CORRELATION_ID as correlation_id
from fastmw._storage import REQUEST_CONTEXT as _request_scope_context_storage
from fastmw.logging import CorrelationIdFilter
from fastmw.middleware.access_log import AccessLogMiddleware
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.middleware.error_handler import ErrorMiddleware
from fastmw.middleware.request_id import CorrelationIdMiddleware, RequestIdMiddleware
from fastmw.middleware.timing import TimingMiddleware
from fastmw.stack import stack

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "AccessLogMiddleware",
    "BodyCacheMiddleware",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "ErrorMiddleware",
    "RequestIdMiddleware",
    "TimingMiddleware",
    "__version__",
    "correlation_id",
    "stack",
]

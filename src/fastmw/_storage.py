"""The one ContextVar that holds the per-request context dict.

Both core twins read and write this same variable, so data stored through the
compiled core is visible through the pure one and vice versa.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_CONTEXT: ContextVar[dict[Any, Any]] = ContextVar("fastmw_context")

# The current request/correlation id (asgi-correlation-id's ``correlation_id``).
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# The current request's TraceContext (either twin's), or None: read with fastmw.trace.current().
TRACE_CONTEXT: ContextVar[Any] = ContextVar("fastmw_trace", default=None)

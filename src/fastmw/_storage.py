"""The ContextVars of a request: the context dict, the request id, the recorders, Celery ids.

Both core twins read and write this same variable, so data stored through the
compiled core is visible through the pure one and vice versa.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_CONTEXT: ContextVar[dict[Any, Any]] = ContextVar("fastmw_context")

# The current request/correlation id (asgi-correlation-id's ``correlation_id``).
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# The SendRecorder timing the current request (``fastmw.middleware.timing.current_timing``).
TIMING_RECORDER: ContextVar[Any] = ContextVar("fastmw_timing_recorder", default=None)

# The ReceiveRecorder keeping the current request's body (``fastmw.middleware.body_cache``).
BODY_RECORDER: ContextVar[Any] = ContextVar("fastmw_body_recorder", default=None)

# asgi-correlation-id's Celery tracing ids: set in a worker while a task runs
# (fastmw.extensions.celery.load_celery_current_and_parent_ids), read by CeleryTracingIdsFilter.
CELERY_PARENT_ID: ContextVar[str | None] = ContextVar("celery_parent", default=None)
CELERY_CURRENT_ID: ContextVar[str | None] = ContextVar("celery_current", default=None)

# The current request's TraceContext (either twin's), or None: read with fastmw.trace.current().
TRACE_CONTEXT: ContextVar[Any] = ContextVar("fastmw_trace", default=None)

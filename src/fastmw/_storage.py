"""The ContextVars of a request: the context dict, the request id, what its stages publish, Celery ids.

Both core twins read and write this same variable, so data stored through the
compiled core is visible through the pure one and vice versa.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastmw._core_py.engine import Published

REQUEST_CONTEXT: ContextVar[dict[Any, Any]] = ContextVar("fastmw_context")

# The current request/correlation id (asgi-correlation-id's ``correlation_id``).
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# The current request's ``core.Published`` (either twin's), or None: its timing recorder,
# body recorder and trace, read with ``core.current_timing/current_body/current_trace``.
REQUEST_STATE: ContextVar[Published | None] = ContextVar("fastmw_request_state", default=None)

# asgi-correlation-id's Celery tracing ids: set in a worker while a task runs
# (fastmw.extensions.celery.load_celery_current_and_parent_ids), read by CeleryTracingIdsFilter.
CELERY_PARENT_ID: ContextVar[str | None] = ContextVar("celery_parent", default=None)
CELERY_CURRENT_ID: ContextVar[str | None] = ContextVar("celery_current", default=None)

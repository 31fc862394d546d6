"""Sentry (``pip install fastmw[sentry]``): the request or task id as the ``transaction_id`` tag.

asgi-correlation-id's ``get_sentry_extension`` and ``set_transaction_id``. ``RequestIdMiddleware``
and ``CorrelationIdMiddleware`` call ``set_transaction_id`` for every request when sentry-sdk is
installed (decided once, when the middleware is built).

One addition: a global event processor gives each event the id last set *in the context it is
captured in*. Without it, two concurrent requests that share an isolation scope (a raw ASGI app
with no Sentry ASGI integration forking one per request) overwrite each other's tag.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

try:
    import sentry_sdk
    from sentry_sdk.scope import add_global_event_processor
except ImportError as exc:  # tested in a subprocess
    raise ImportError(
        f"fastmw.extensions.sentry needs sentry-sdk, which is not installed ({exc}): pip install fastmw[sentry]"
    ) from exc

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

__all__ = ["get_sentry_extension", "set_transaction_id"]

TAG = "transaction_id"

# The id set_transaction_id last gave in this context (a request's task, a worker thread).
_TRANSACTION_ID: ContextVar[str | None] = ContextVar("fastmw_sentry_transaction_id", default=None)


def get_sentry_extension() -> Callable[[str], None]:
    """``set_transaction_id`` (this module only imports where sentry-sdk is installed)."""
    return set_transaction_id


def set_transaction_id(correlation_id: str) -> None:
    """Tag the current Sentry scope: ``transaction_id`` = ``correlation_id``.

    sentry-sdk 2.x: the isolation scope; 1.x: ``configure_scope``.
    """
    _TRANSACTION_ID.set(correlation_id)
    # Looked up per call, not at import: tests (and users) may patch sentry_sdk.
    get_isolation_scope = getattr(sentry_sdk, "get_isolation_scope", None)
    if get_isolation_scope is not None:
        get_isolation_scope().set_tag(TAG, correlation_id)
        return
    with sentry_sdk.configure_scope() as scope:  # sentry-sdk 1.x
        scope.set_tag(TAG, correlation_id)


def _tag_event(event: Event, hint: Hint) -> Event:
    """Runs after the scopes' tags are applied, so the capturing context's own id wins."""
    value = _TRANSACTION_ID.get()
    if value is not None:
        event.setdefault("tags", {})[TAG] = value
    return event


add_global_event_processor(_tag_event)

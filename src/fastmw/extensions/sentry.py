"""Sentry (``pip install fastmw[sentry]``): the request or task id as the ``transaction_id`` tag.

asgi-correlation-id tags each request's Sentry scope from its middleware, a Python call per
request whether or not an event follows. fastmw registers one global event processor instead
(on import; the request-id middlewares import this module when sentry-sdk is installed): when
an event is built, it tags it with the id of the request (or Celery task) it is built in:

* the id ``set_transaction_id`` gave in the capturing context, if it was called there;
* else the current request's or task's id (``fastmw.correlation_id``, a context variable, so
  concurrent requests never see each other's id);
* else, for an exception that left a request before it was captured (Sentry's ASGI
  integration outside the middleware), the id the request marked it with
  (``exc.fastmw_request_id``).

Requests pay nothing for it; only events do. ``get_sentry_extension`` and
``set_transaction_id`` are asgi-correlation-id's, for code that calls them itself.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

try:
    import sentry_sdk
    from sentry_sdk.scope import add_global_event_processor
except ImportError as exc:  # tested in a subprocess
    raise ImportError(
        f"fastmw.extensions.sentry needs sentry-sdk, which is not installed ({exc}): pip install fastmw[sentry]"
    ) from exc

from fastmw._storage import CORRELATION_ID

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

__all__ = ["get_sentry_extension", "set_transaction_id"]

TAG = "transaction_id"
# What an exception leaving a request carries (fastmw's core marks it): its id, and a
# traceback note sentry-sdk would otherwise append to the event's exception value.
REQUEST_ID_ATTRIBUTE = "fastmw_request_id"
REQUEST_ID_NOTE = "request id: "

# The id set_transaction_id last gave in this context (a request's task, a worker thread).
_TRANSACTION_ID: ContextVar[str | None] = ContextVar("fastmw_sentry_transaction_id", default=None)


def get_sentry_extension() -> Callable[[str], None]:
    """``set_transaction_id`` (this module only imports where sentry-sdk is installed)."""
    return set_transaction_id


def set_transaction_id(correlation_id: str) -> None:
    """Tag the current Sentry scope: ``transaction_id`` = ``correlation_id``.

    sentry-sdk 2.x: the isolation scope; 1.x: ``configure_scope``. fastmw's middlewares do
    not call it (the event processor tags events); it is here for code that does.
    """
    _TRANSACTION_ID.set(correlation_id)
    # Looked up per call, not at import: tests (and users) may patch sentry_sdk.
    get_isolation_scope = getattr(sentry_sdk, "get_isolation_scope", None)
    if get_isolation_scope is not None:
        get_isolation_scope().set_tag(TAG, correlation_id)
        return
    with sentry_sdk.configure_scope() as scope:  # sentry-sdk 1.x
        scope.set_tag(TAG, correlation_id)


def _marked_exception(hint: Hint) -> BaseException | None:
    exc_info = hint.get("exc_info") if isinstance(hint, dict) else None
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _without_note(event: Event, request_id: str) -> None:
    """Drop the request-id note from the exception values (the tag says it): the value stays
    the same for every request, so Sentry groups the events as before."""
    note = "\n" + REQUEST_ID_NOTE + request_id
    values = event.get("exception", {}).get("values") if isinstance(event.get("exception"), dict) else None
    for value in values if isinstance(values, list) else ():
        text = value.get("value") if isinstance(value, dict) else None
        if isinstance(text, str) and note in text:
            value["value"] = text.replace(note, "", 1)


def _tag_event(event: Event, hint: Hint) -> Event:
    """Runs after the scopes' tags are applied, so the capturing context's own id wins."""
    try:
        exc = _marked_exception(hint)
        marked = getattr(exc, REQUEST_ID_ATTRIBUTE, None) if exc is not None else None
        if isinstance(marked, str):
            _without_note(event, marked)
        value: Any = _TRANSACTION_ID.get() or CORRELATION_ID.get() or marked
        if value is not None:
            event.setdefault("tags", {})[TAG] = value
    except Exception:  # an odd event must still be sent
        pass
    return event


add_global_event_processor(_tag_event)

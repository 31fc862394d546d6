"""Logging integration: request id and context keys on every log record.

``ContextFilter`` is a stdlib ``logging.Filter``; ``StructlogContextProcessor`` does the
same for structlog (a plain callable, no structlog import); ``CorrelationIdFilter`` and
``CeleryTracingIdsFilter`` are asgi-correlation-id's filters with the same arguments, setting
``record.correlation_id`` and ``record.celery_parent_id`` / ``record.celery_current_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from fastmw._impl import core
from fastmw._storage import CELERY_CURRENT_ID, CELERY_PARENT_ID, CORRELATION_ID, REQUEST_CONTEXT

__all__ = ["CeleryTracingIdsFilter", "ContextFilter", "CorrelationIdFilter", "StructlogContextProcessor"]

DEFAULT_VALUE = "-"
REQUEST_ID_FIELD = "request_id"


def _field_map(keys: Iterable[str] | Mapping[str, str]) -> tuple[tuple[Any, str], ...]:
    """(context key, record attribute) pairs; "X-Request-ID" becomes ``x_request_id``."""
    if isinstance(keys, str):
        raise TypeError("keys must be a list or mapping of context keys, not a single string")
    if isinstance(keys, Mapping):
        return tuple((key, str(attr)) for key, attr in keys.items())
    return tuple((key, str(key).lower().replace("-", "_")) for key in keys)


class _Fields:
    """What both the filter and the structlog processor add, computed the same way."""

    def __init__(self, keys: Iterable[str] | Mapping[str, str], default: Any, request_id_field: str | None) -> None:
        self.fields = _field_map(keys)
        self.default = default
        self.request_id_field = request_id_field

    def pairs(self) -> list[tuple[str, Any]]:
        """(attribute, value) pairs for the current request (or the defaults outside one)."""
        default = self.default
        found: list[tuple[str, Any]] = []
        if self.request_id_field is not None:
            value = CORRELATION_ID.get()
            found.append((self.request_id_field, default if value is None else value))
        if self.fields:
            data = REQUEST_CONTEXT.get(None)
            for key, attr in self.fields:
                found.append((attr, default if data is None else data.get(key, default)))
        # The W3C trace ids of the current request; nothing at all outside a trace.
        trace = core.current_trace()
        if trace is not None:
            found.append(("trace_id", trace.trace_id))
            found.append(("span_id", trace.span_id))
        return found


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and chosen request-context keys to every record; never raises."""

    def __init__(
        self,
        name: str = "",
        *,
        keys: Iterable[str] | Mapping[str, str] = (),
        default: Any = DEFAULT_VALUE,
        request_id_field: str | None = REQUEST_ID_FIELD,
    ) -> None:
        super().__init__(name)
        self._fields = _Fields(keys, default, request_id_field)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            for attr, value in self._fields.pairs():
                setattr(record, attr, value)
        except Exception:  # a broken context value must not lose the log line
            pass
        return True


class StructlogContextProcessor:
    """A structlog processor adding the request id and chosen context keys (existing keys win)."""

    def __init__(
        self,
        *,
        keys: Iterable[str] | Mapping[str, str] = (),
        default: Any = None,
        request_id_field: str | None = REQUEST_ID_FIELD,
    ) -> None:
        self._fields = _Fields(keys, default, request_id_field)

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        try:
            for attr, value in self._fields.pairs():
                event_dict.setdefault(attr, value)
        except Exception:
            pass
        return event_dict


class _IdFilter(logging.Filter):
    """asgi-correlation-id's filters' options: each id set on a record is trimmed to
    ``uuid_length``, and is ``default_value`` when unset."""

    def __init__(self, name: str = "", uuid_length: int | None = None, default_value: str | None = None) -> None:
        super().__init__(name=name)
        self.uuid_length = uuid_length
        self.default_value = default_value


class CorrelationIdFilter(_IdFilter):
    """asgi-correlation-id's filter: sets ``record.correlation_id`` (trimmed to ``uuid_length``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _trim(CORRELATION_ID.get(self.default_value), self.uuid_length)
        return True


class CeleryTracingIdsFilter(_IdFilter):
    """asgi-correlation-id's Celery filter: sets ``record.celery_parent_id`` and
    ``record.celery_current_id`` (each trimmed to ``uuid_length``; ``default_value`` when unset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.celery_parent_id = _trim(CELERY_PARENT_ID.get(self.default_value), self.uuid_length)
        record.celery_current_id = _trim(CELERY_CURRENT_ID.get(self.default_value), self.uuid_length)
        return True


def _trim(value: str | None, length: int | None) -> str | None:
    """The first ``length`` characters of ``value`` (None and empty values pass unchanged)."""
    return value[:length] if length is not None and value else value

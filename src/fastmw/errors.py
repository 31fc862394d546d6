"""Exceptions, named and shaped like starlette-context's so imports can move over."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = [
    "ConfigurationError",
    "ContextDoesNotExistError",
    "DateFormatError",
    "FastMWError",
    "MiddleWareValidationError",
    "StarletteContextError",
    "WrongUUIDError",
]

CONTEXT_DOES_NOT_EXIST_MESSAGE = (
    "You didn't use the required middleware or "
    "you're trying to access `context` object "
    "outside of the request-response cycle."
)


class StarletteContextError(Exception):
    """Base class of every fastmw error."""


FastMWError = StarletteContextError


class ContextDoesNotExistError(RuntimeError, StarletteContextError):
    """The request context was read outside a request."""

    def __init__(self) -> None:
        self.message = CONTEXT_DOES_NOT_EXIST_MESSAGE
        super().__init__(self.message)


class ConfigurationError(StarletteContextError):
    """A middleware, plugin or the context object was set up wrongly."""


class MiddleWareValidationError(StarletteContextError):
    """Raised by a plugin to refuse a request; `error_response` is sent instead."""

    def __init__(self, *args: Any, error_response: Response | None = None) -> None:
        super().__init__(*args)
        self.error_response = error_response


class WrongUUIDError(MiddleWareValidationError):
    """A UUID header was not a well-formed UUID."""


class DateFormatError(MiddleWareValidationError):
    """A Date header was not an RFC 1123 date."""

"""Option checks: each option is checked once, at construction, and refused with ``ConfigurationError``.

What a core stage takes (header names, precision, limits, hooks) is checked by the stage
itself (it refuses any object, whoever builds it); ``build_stage`` turns that refusal into
the ``ConfigurationError`` the middleware documents, with the stage's message. Options the
middleware alone reads are checked in its ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastmw.errors import ConfigurationError

__all__ = ["build_stage", "check_callable", "check_response"]

T = TypeVar("T")


def build_stage(make: Callable[..., T], *args: Any, **options: Any) -> T:
    """``make(*args, **options)``, its ``TypeError``/``ValueError`` raised as ``ConfigurationError``."""
    try:
        return make(*args, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None


def check_callable(value: object, option: str, *, optional: bool = False) -> None:
    """Refuse ``value`` unless it is callable (or None, when ``optional``)."""
    if value is None and optional:
        return
    if not callable(value):
        raise ConfigurationError(f"{option} must be callable{' or None' if optional else ''}, got {value!r}")


def check_response(value: object, option: str, *, optional: bool = False) -> None:
    """Refuse ``value`` unless it is a Starlette ``Response`` (or None, when ``optional``)."""
    from starlette.responses import Response

    if value is None and optional:
        return
    if not isinstance(value, Response):
        allowed = "a starlette Response or None" if optional else "a starlette Response"
        raise ConfigurationError(f"{option} must be {allowed} such as Response(status_code=400), got {value!r}")

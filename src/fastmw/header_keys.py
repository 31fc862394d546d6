"""Names of the request headers the built-in plugins read (starlette-context's ``HeaderKeys``)."""

from __future__ import annotations

import sys
from enum import Enum

__all__ = ["HeaderKeys"]

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    from enum import StrEnum
else:  # pragma: no cover - version dependent

    class StrEnum(str, Enum):
        """``enum.StrEnum`` for 3.10: ``str(member)`` is the value, as on 3.11+."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, spec: str) -> str:
            return str.__format__(str(self), spec)


class HeaderKeys(StrEnum):
    """Header names; each member compares and hashes equal to its value."""

    api_key = "X-API-Key"
    correlation_id = "X-Correlation-ID"
    request_id = "X-Request-ID"
    date = "Date"
    forwarded_for = "X-Forwarded-For"
    user_agent = "User-Agent"

"""``ApiKeyPlugin``: stores the API key."""

from __future__ import annotations

from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import Plugin

__all__ = ["ApiKeyPlugin"]


class ApiKeyPlugin(Plugin):
    """Stores the API key in the context."""

    key = HeaderKeys.api_key

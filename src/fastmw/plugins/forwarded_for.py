"""``ForwardedForPlugin``: stores the X-Forwarded-For header."""

from __future__ import annotations

from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import Plugin

__all__ = ["ForwardedForPlugin"]


class ForwardedForPlugin(Plugin):
    """Stores the X-Forwarded-For header in the context."""

    key = HeaderKeys.forwarded_for

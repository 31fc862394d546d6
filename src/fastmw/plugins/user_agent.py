"""``UserAgentPlugin``: stores the User-Agent header."""

from __future__ import annotations

from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import Plugin

__all__ = ["UserAgentPlugin"]


class UserAgentPlugin(Plugin):
    """Stores the User-Agent header in the context."""

    key = HeaderKeys.user_agent
